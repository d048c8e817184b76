"""__NAME__: a warmlane tool. `./build.sh` builds __NAME__.wasm; `./test.sh`
builds it and tries it with `warmlane component check` and `call`.

Every instance serves one call and is then thrown away: what must outlive a
call goes into the host's session store (`session`).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import tool
from wit_world.imports import log, session

# The input the host checks every call against before it reaches `invoke`.
SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "maxLength": 10000}},
    "required": ["text"],
    "additionalProperties": False,
}


class Tool(exports.Tool):
    def describe(self) -> tool.Description:
        return tool.Description(
            name="__NAME__",
            description="Returns `text` with its length in characters, and counts the "
            "calls made in the session.",
            input_schema=json.dumps(SCHEMA),
        )

    def invoke(self, input: str) -> str:
        text = json.loads(input)["text"]
        try:
            # One atomic step, so parallel calls in a session all count.
            calls = session.increment("calls", 1)
        except Err as e:
            raise Err(tool.ToolError_Failed(f"the session refused: {e.value}"))
        log.write(log.Level.DEBUG, f"call {calls} in this session")
        return json.dumps({"text": text, "characters": len(text), "calls": calls})
