// __NAME__: a warmlane page parser. `./build.sh` builds __NAME__.wasm;
// `./test.sh` builds it and tries it on sample.pdf with `warmlane run
// --parser`.
//
// The host hands `parse` one batch of pages as a small PDF of its own. This
// template finds the batch's pages (its `/Type /Page` objects, in the order
// they appear) and answers each with an error saying no text was read:
// reading the text is yours to write. A page's error never fails its
// neighbours; an error for the whole batch makes the host retry its pages
// one by one.

/** How many page objects `pdf` (bytes) holds: `/Type /Page`, not `/Type /Pages`. */
function pages(pdf) {
  let text = "";
  for (let i = 0; i < pdf.length; i += 8192) {
    text += String.fromCharCode(...pdf.subarray(i, i + 8192));
  }
  return (text.match(/\/Type\s*\/Page(?![A-Za-z0-9])/g) ?? []).length;
}

export const pageParser = {
  parse(pdf, firstPage) {
    const count = pages(pdf);
    if (count === 0) throw "the batch holds no page object";
    return Array.from({ length: count }, (_, i) => ({
      number: firstPage + i,
      text: {
        tag: "err",
        val: "no text read: __NAME__ is the `warmlane component new` template; write `parse` in __NAME__.js",
      },
    }));
  },
};
