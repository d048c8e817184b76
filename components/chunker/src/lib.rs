//! warmlane's built-in chunker: page texts in, chunks with page provenance
//! out, sized in cl100k tokens or in characters.
//!
//! Pages are joined with a paragraph break into one text (consecutive
//! pieces of one page, whose offsets meet, are joined as they are), split
//! by [`split`], and each chunk's ends are mapped back to (page, offset).

pub mod bpe;
pub mod split;

pub use split::Unit;

/// One page's text (or the tail of one, from `offset`).
pub struct PageText {
    pub number: u32,
    pub offset: u32,
    pub text: String,
}

/// A chunk and where it came from; offsets are UTF-8 bytes into the full
/// page texts of `first_page` and `last_page`.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    pub first_page: u32,
    pub last_page: u32,
    pub start: u32,
    pub end: u32,
    pub size: u32,
}

/// Splits `pages` into chunks of at most `max` units, overlapping by `overlap`.
pub fn chunk(pages: &[PageText], max: u32, overlap: u32, unit: Unit) -> Result<Vec<Chunk>, String> {
    if max == 0 {
        return Err("max-size must be at least 1".into());
    }
    if overlap >= max {
        return Err(format!(
            "overlap ({overlap}) must be smaller than max-size ({max})"
        ));
    }
    // Where each page's text ends, as an offset into its page: every offset
    // the chunks report lies at or before it, so it must fit a u32.
    let ends = pages
        .iter()
        .map(|page| {
            u32::try_from(page.text.len())
                .ok()
                .and_then(|len| page.offset.checked_add(len))
                .ok_or_else(|| {
                    format!(
                        "page {}: offset {} plus {} bytes of text is past 4 GiB",
                        page.number,
                        page.offset,
                        page.text.len()
                    )
                })
        })
        .collect::<Result<Vec<u32>, String>>()?;
    const JOIN: &str = "\n\n";
    let mut text = String::new();
    // (start in `text`, page index)
    let mut starts = Vec::with_capacity(pages.len());
    for (i, page) in pages.iter().enumerate() {
        let continues = i > 0 && pages[i - 1].number == page.number && ends[i - 1] == page.offset;
        if i > 0 && !continues {
            text.push_str(JOIN);
        }
        starts.push(text.len());
        text.push_str(&page.text);
    }
    let locate = |at: usize, is_end: bool| -> (u32, u32) {
        // The page holding byte `at` (for an end, the byte before it).
        let probe = if is_end { at.saturating_sub(1) } else { at };
        let i = starts.partition_point(|&s| s <= probe).saturating_sub(1);
        let page = &pages[i];
        let within = at.saturating_sub(starts[i]).min(page.text.len());
        (page.number, page.offset + within as u32)
    };
    Ok(split::split(&text, max as usize, overlap as usize, unit)
        .into_iter()
        .map(|(s, e, size)| {
            let (first_page, start) = locate(s, false);
            let (last_page, end) = locate(e, true);
            let body = &text[s..e];
            Chunk {
                text: body.to_string(),
                first_page,
                last_page,
                start,
                end,
                size: size as u32,
            }
        })
        .collect())
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "chunker-component", generate_all });

    use exports::warmlane::worker::chunker::{Chunk, Guest, Options, PageText, SizeUnit};

    struct Chunker;

    impl Guest for Chunker {
        fn split(pages: Vec<PageText>, options: Options) -> Result<Vec<Chunk>, String> {
            let unit = match options.unit {
                SizeUnit::Tokens => super::Unit::Tokens,
                SizeUnit::Characters => super::Unit::Characters,
            };
            let pages: Vec<super::PageText> = pages
                .into_iter()
                .map(|p| super::PageText {
                    number: p.number,
                    offset: p.offset,
                    text: p.text,
                })
                .collect();
            Ok(
                super::chunk(&pages, options.max_size, options.overlap, unit)?
                    .into_iter()
                    .map(|c| Chunk {
                        text: c.text,
                        first_page: c.first_page,
                        last_page: c.last_page,
                        start: c.start,
                        end: c.end,
                        size: c.size,
                    })
                    .collect(),
            )
        }
    }

    export!(Chunker);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: u32, text: &str) -> PageText {
        PageText {
            number,
            offset: 0,
            text: text.into(),
        }
    }

    #[test]
    fn chunks_carry_their_pages_and_offsets() {
        let pages = [
            page(1, "Alpha beta gamma."),
            page(2, "Delta epsilon.\n\nZeta eta theta iota."),
        ];
        let chunks = chunk(&pages, 20, 0, Unit::Characters).unwrap();
        assert_eq!(chunks[0].text, "Alpha beta gamma.");
        assert_eq!(
            (
                chunks[0].first_page,
                chunks[0].last_page,
                chunks[0].start,
                chunks[0].end
            ),
            (1, 1, 0, 17)
        );
        let last = chunks.last().unwrap();
        assert_eq!(last.text, "Zeta eta theta iota.");
        assert_eq!((last.first_page, last.start), (2, 16));
        assert_eq!(
            &pages[1].text[last.start as usize..last.end as usize],
            last.text
        );
    }

    #[test]
    fn a_chunk_may_span_pages() {
        let pages = [page(3, "end of one"), page(4, "start of two")];
        let chunks = chunk(&pages, 100, 0, Unit::Characters).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            (chunks[0].first_page, chunks[0].last_page, chunks[0].end),
            (3, 4, 12)
        );
    }

    #[test]
    fn offsets_respect_a_partial_first_page() {
        let pages = [PageText {
            number: 7,
            offset: 100,
            text: "tail text".into(),
        }];
        let c = &chunk(&pages, 50, 0, Unit::Characters).unwrap()[0];
        assert_eq!((c.start, c.end), (100, 109));
    }

    #[test]
    fn pieces_of_one_page_join_as_they_are() {
        let pages = [
            PageText {
                number: 2,
                offset: 0,
                text: "one two ".into(),
            },
            PageText {
                number: 2,
                offset: 8,
                text: "three".into(),
            },
        ];
        let c = &chunk(&pages, 50, 0, Unit::Characters).unwrap()[0];
        assert_eq!(c.text, "one two three");
        assert_eq!((c.first_page, c.last_page, c.start, c.end), (2, 2, 0, 13));
    }

    #[test]
    fn a_page_that_ends_past_4_gib_is_an_error() {
        let near_the_top = |offset| PageText {
            number: 5,
            offset,
            text: "four".into(),
        };
        let c = &chunk(&[near_the_top(u32::MAX - 4)], 50, 0, Unit::Characters).unwrap()[0];
        assert_eq!((c.start, c.end), (u32::MAX - 4, u32::MAX));
        let err = chunk(&[near_the_top(u32::MAX - 3)], 50, 0, Unit::Characters).unwrap_err();
        assert!(
            err.contains("page 5") && err.contains("past 4 GiB"),
            "{err}"
        );
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(chunk(&[], 0, 0, Unit::Tokens).is_err());
        assert!(chunk(&[], 10, 10, Unit::Tokens).is_err());
    }
}

/// The entry point for the fuzz target (`fuzz/`) and the test suite's short
/// fuzz run: arbitrary bytes as pages and options; must neither panic nor
/// hang, and every chunk must lie where it says it does.
#[doc(hidden)]
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzz {
    /// The first two bytes choose the size and overlap (and the unit, by
    /// the first byte's low bit); the rest, cut at each 0xFF, are pages.
    pub fn chunk(data: &[u8]) {
        let [a, b, rest @ ..] = data else { return };
        let max = u32::from(*a % 64) + 1;
        let overlap = u32::from(*b) % max;
        let unit = if a & 1 == 0 {
            super::Unit::Tokens
        } else {
            super::Unit::Characters
        };
        let pages: Vec<super::PageText> = rest
            .split(|&c| c == 0xFF)
            .enumerate()
            .map(|(i, p)| super::PageText {
                number: i as u32 + 1,
                offset: 0,
                text: String::from_utf8_lossy(p).into_owned(),
            })
            .collect();
        let Ok(chunks) = super::chunk(&pages, max, overlap, unit) else {
            return;
        };
        for c in chunks {
            let first = &pages[c.first_page as usize - 1].text;
            let last = &pages[c.last_page as usize - 1].text;
            assert!(
                first.is_char_boundary(c.start as usize),
                "start inside a character"
            );
            assert!(
                last.is_char_boundary(c.end as usize),
                "end inside a character"
            );
            if c.first_page == c.last_page {
                assert_eq!(&first[c.start as usize..c.end as usize], c.text);
            }
        }
    }
}
