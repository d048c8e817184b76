#!/usr/bin/env python3
"""Builds cl100k.bin, the chunker's embedded tokenizer table, from cl100k_base.tiktoken.

Run: python3 generate.py PATH/TO/cl100k_base.tiktoken
(The file ships inside the `tiktoken-rs` crate, MIT, under assets/.)

Layout, all integers little-endian u32:
  n                       number of tokens (ranks 0..n)
  offsets[n + 1]          token i's bytes are bytes[offsets[i]..offsets[i+1]]
  sorted[n]               ranks ordered by their bytes, for binary search
  bytes[...]              every token's bytes, in rank order
"""
import base64, struct, sys, pathlib
src = pathlib.Path(sys.argv[1])
toks = {}
for line in src.read_text().splitlines():
    if not line.strip():
        continue
    b64, rank = line.split()
    toks[int(rank)] = base64.b64decode(b64)
n = max(toks) + 1
assert sorted(toks) == list(range(n)), "ranks must be contiguous"
offsets, blob = [0], bytearray()
for i in range(n):
    blob += toks[i]
    offsets.append(len(blob))
order = sorted(range(n), key=lambda i: toks[i])
out = pathlib.Path(__file__).parent / "cl100k.bin"
with open(out, "wb") as f:
    f.write(struct.pack("<I", n))
    f.write(struct.pack(f"<{n+1}I", *offsets))
    f.write(struct.pack(f"<{n}I", *order))
    f.write(blob)
print(out, n, "tokens", out.stat().st_size, "bytes")
