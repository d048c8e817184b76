"""counter-python: a warmlane tool written in Python.

It keeps named counters in the host's session store, so a count outlives
the instance that served the call (every instance serves one call and is
then thrown away). Build it with `build.sh` beside this file.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import tool
from wit_world.imports import log, session

SCHEMA = {
    "type": "object",
    "properties": {
        "counter": {"type": "string", "minLength": 1, "maxLength": 64},
        "by": {"type": "integer", "minimum": -1000000, "maximum": 1000000},
    },
    "required": ["counter"],
    "additionalProperties": False,
}


class Tool(exports.Tool):
    def describe(self) -> tool.Description:
        return tool.Description(
            name="counter-python",
            description="Adds `by` (default 1) to the session's counter named `counter` "
            "and returns its new value.",
            input_schema=json.dumps(SCHEMA),
        )

    def invoke(self, input: str) -> str:
        # The host has checked `input` against SCHEMA already.
        args = json.loads(input)
        name, by = args["counter"], args.get("by", 1)
        key = "counter:" + name
        try:
            stored = session.get(key)
            value = (int(stored) if stored is not None else 0) + by
            session.set(key, str(value).encode())
        except Err as e:
            raise Err(tool.ToolError_Failed(f"the session store refused: {e.value}"))
        log.write(log.Level.DEBUG, f"{name} = {value}")
        return json.dumps({"counter": name, "value": value})
