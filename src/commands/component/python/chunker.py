"""__NAME__: a warmlane chunker. `./build.sh` builds __NAME__.wasm; `./test.sh`
builds it and tries it on sample.pdf with `warmlane run --chunker`.

It cuts each page's text into pieces of at most `max_size` characters, each
repeating the last `overlap` characters of the one before; chunks never span
pages. It counts characters only, so run it with `--unit characters` (or
`pipeline.chunk_unit = "characters"`).
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import chunker


class Chunker(exports.Chunker):
    def split(
        self, pages: List[chunker.PageText], options: chunker.Options
    ) -> List[chunker.Chunk]:
        if options.unit != chunker.SizeUnit.CHARACTERS:
            raise Err("this chunker counts characters: run it with --unit characters")
        if options.max_size < 1 or options.overlap >= options.max_size:
            raise Err("max-size must be at least 1, and overlap smaller")
        size, step = options.max_size, options.max_size - options.overlap
        chunks = []
        for page in pages:
            text = page.text
            # Byte offsets of the page's characters, and of its end.
            bounds = [0]
            for ch in text:
                bounds.append(bounds[-1] + len(ch.encode()))
            first = 0
            while first < len(text):
                last = min(first + size, len(text))
                chunks.append(
                    chunker.Chunk(
                        text=text[first:last],
                        first_page=page.number,
                        last_page=page.number,
                        start=page.offset + bounds[first],
                        end=page.offset + bounds[last],
                        size=last - first,
                    )
                )
                if last == len(text):
                    break
                first += step
        return chunks
