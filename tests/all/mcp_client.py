"""Drives warmlane through the Python `mcp` package's client, for the tests
in mcp.rs: the steps come as JSON on stdin, the outcome of each goes to
stdout as one JSON document. The assertions live in the Rust test.

    python3 mcp_client.py http URL MODE    < steps.json
    python3 mcp_client.py stdio BINARY CONFIG MODE < steps.json

MODE is the client's: "auto" (2026-07-28, falling back to the handshake)
or "legacy" (the 2025-11-25 handshake with an Mcp-Session-Id).

A step is one of:
    {"list": true}                          tools/list
    {"call": NAME, "args": {...}, "save": VAR}
                                            tools/call; `save` keeps the
                                            result's `session` as $VAR
    {"http_get": PATH}                      a plain GET beside the client
Strings "$VAR" in args, and $VAR within a PATH, are replaced by what was
saved.
"""

import asyncio
import json
import sys
import urllib.error
import urllib.request

from mcp import StdioServerParameters
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError


def substitute(value, saved):
    if isinstance(value, str) and value.startswith("$"):
        return saved[value[1:]]
    if isinstance(value, dict):
        return {k: substitute(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    return value


def http_get(base, path):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return {"status": r.status, "body": json.loads(r.read() or b"null")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read() or b"null")}


async def run(server, mode, steps, base):
    saved = {}
    outcomes = []
    async with Client(server, mode=mode, read_timeout_seconds=60) as client:
        for step in steps:
            if "list" in step:
                tools = await client.list_tools()
                outcomes.append(
                    {"tools": [{"name": t.name, "inputSchema": t.input_schema} for t in tools.tools]}
                )
            elif "http_get" in step:
                path = step["http_get"]
                for name, value in saved.items():
                    path = path.replace("$" + name, value)
                outcomes.append(http_get(base, path))
            else:
                args = substitute(step.get("args", {}), saved)
                try:
                    result = await client.call_tool(step["call"], args)
                except MCPError as e:
                    outcomes.append({"protocol_error": {"code": e.code, "message": e.message}})
                    continue
                texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
                outcome = {
                    "is_error": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": "\n".join(texts),
                }
                if "save" in step and not result.is_error:
                    saved[step["save"]] = result.structured_content["session"]
                outcomes.append(outcome)
        version = client.session.protocol_version
    return {"protocol_version": version, "steps": outcomes}


def main():
    kind = sys.argv[1]
    if kind == "http":
        url, mode = sys.argv[2], sys.argv[3]
        server, base = url, url.rsplit("/mcp", 1)[0]
    else:
        binary, config, mode = sys.argv[2], sys.argv[3], sys.argv[4]
        server = StdioServerParameters(command=binary, args=["mcp", "--config", config])
        base = None
    steps = json.load(sys.stdin)
    report = asyncio.run(run(server, mode, steps, base))
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
