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
        "expect": {"type": "integer", "description": "Add only if the counter is this now."},
    },
    "required": ["counter"],
    "additionalProperties": False,
}


def add_if(key: str, by: int, expect: int) -> int:
    """Adds `by` to the counter under `key` only if it is `expect` now."""
    stored = session.get(key)
    now = int(stored) if stored is not None else 0
    if now != expect:
        # An exception is the tool failing, with its message.
        raise ValueError(f"{key} is {now}, not {expect}")
    value = now + by
    # Stored only if nobody changed it since it was read.
    if not session.compare_and_swap(key, stored, str(value).encode()):
        raise ValueError(f"{key} changed while it was being updated")
    return value


class Tool(exports.Tool):
    def describe(self) -> tool.Description:
        return tool.Description(
            name="counter-python",
            description="Adds `by` (default 1) to the session's counter named `counter` "
            "(only if it is `expect`, when given) and returns its new value.",
            input_schema=json.dumps(SCHEMA),
        )

    def invoke(self, input: str) -> str:
        # The host has checked `input` against SCHEMA already.
        args = json.loads(input)
        name, by = args["counter"], args.get("by", 1)
        key = "counter:" + name
        try:
            if "expect" in args:
                value = add_if(key, by, args["expect"])
            else:
                # One atomic step: parallel calls in one session lose nothing
                # (a get followed by a set would).
                value = session.increment(key, by)
        except Err as e:
            raise Err(tool.ToolError_Failed(f"the session store refused: {e.value}"))
        log.write(log.Level.DEBUG, f"{name} = {value}")
        return json.dumps({"counter": name, "value": value})
