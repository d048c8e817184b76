// __NAME__: a warmlane chunker. `./build.sh` builds __NAME__.wasm;
// `./test.sh` builds it and tries it on sample.pdf with `warmlane run
// --chunker`.
//
// It cuts each page's text into pieces of at most `maxSize` characters, each
// repeating the last `overlap` characters of the one before; chunks never
// span pages. It counts characters only, so run it with `--unit characters`
// (or `pipeline.chunk_unit = "characters"`).

const encoder = new TextEncoder();

export const chunker = {
  split(pages, options) {
    if (options.unit !== "characters") {
      // A `result`'s error leaves as a thrown value.
      throw "this chunker counts characters: run it with --unit characters";
    }
    if (options.maxSize < 1 || options.overlap >= options.maxSize) {
      throw "max-size must be at least 1, and overlap smaller";
    }
    const size = options.maxSize;
    const step = options.maxSize - options.overlap;
    const chunks = [];
    for (const page of pages) {
      const chars = [...page.text];
      // Byte offsets of the page's characters, and of its end.
      const bounds = [0];
      for (const ch of chars) bounds.push(bounds[bounds.length - 1] + encoder.encode(ch).length);
      for (let first = 0; first < chars.length; first += step) {
        const last = Math.min(first + size, chars.length);
        chunks.push({
          text: chars.slice(first, last).join(""),
          firstPage: page.number,
          lastPage: page.number,
          start: page.offset + bounds[first],
          end: page.offset + bounds[last],
          size: last - first,
        });
        if (last === chars.length) break;
      }
    }
    return chunks;
  },
};
