//! __NAME__: a warmlane chunker. `./build.sh` builds __NAME__.wasm;
//! `./test.sh` builds it and tries it on sample.pdf with `warmlane run
//! --chunker`.
//!
//! It cuts each page's text into pieces of at most `max-size` characters,
//! each repeating the last `overlap` characters of the one before; chunks
//! never span pages. It counts characters only, so run it with
//! `--unit characters` (or `pipeline.chunk_unit = "characters"`).

wit_bindgen::generate!({ path: "wit", world: "chunker-component", generate_all });

use exports::warmlane::worker::chunker::{Chunk, Guest, Options, PageText, SizeUnit};

struct Chunker;

impl Guest for Chunker {
    fn split(pages: Vec<PageText>, options: Options) -> Result<Vec<Chunk>, String> {
        if options.unit != SizeUnit::Characters {
            return Err("this chunker counts characters: run it with --unit characters".into());
        }
        if options.max_size == 0 || options.overlap >= options.max_size {
            return Err("max-size must be at least 1, and overlap smaller".into());
        }
        let (max, step) = (
            options.max_size as usize,
            (options.max_size - options.overlap) as usize,
        );
        let mut chunks = Vec::new();
        for page in &pages {
            // Byte offsets of the page's characters, and of its end.
            let bounds: Vec<usize> = page
                .text
                .char_indices()
                .map(|(i, _)| i)
                .chain([page.text.len()])
                .collect();
            let chars = bounds.len() - 1;
            let mut first = 0;
            while first < chars {
                let last = (first + max).min(chars);
                let (start, end) = (bounds[first], bounds[last]);
                chunks.push(Chunk {
                    text: page.text[start..end].to_string(),
                    first_page: page.number,
                    last_page: page.number,
                    start: page.offset + start as u32,
                    end: page.offset + end as u32,
                    size: (last - first) as u32,
                });
                if last == chars {
                    break;
                }
                first += step;
            }
        }
        Ok(chunks)
    }
}

export!(Chunker);
