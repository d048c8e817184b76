"""__NAME__: a warmlane page parser. `./build.sh` builds __NAME__.wasm;
`./test.sh` builds it and tries it on sample.pdf with `warmlane run --parser`.

The host hands `parse` one batch of pages as a small PDF of its own. This
template finds the batch's pages (its `/Type /Page` objects, in the order
they appear) and answers each with an error saying no text was read: reading
the text is yours to write. A page's error never fails its neighbours; an
error for the whole batch makes the host retry its pages one by one.
"""

import re
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import page_parser

PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z0-9])")


class PageParser(exports.PageParser):
    def parse(self, pdf: bytes, first_page: int) -> List[page_parser.ParsedPage]:
        count = len(PAGE.findall(pdf))
        if count == 0:
            raise Err("the batch holds no page object")
        return [
            page_parser.ParsedPage(
                number=first_page + i,
                text=Err(
                    "no text read: __NAME__ is the `warmlane component new` template; "
                    "write `parse` in app.py"
                ),
            )
            for i in range(count)
        ]
