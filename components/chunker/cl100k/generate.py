#!/usr/bin/env python3
"""Builds cl100k.bin, the chunker's embedded tokenizer table, from cl100k_base.tiktoken.

Run: python3 generate.py PATH/TO/cl100k_base.tiktoken
(The file ships inside the `tiktoken-rs` crate, MIT, under assets/.)

Layout, all integers little-endian u32:
  n                       number of tokens (ranks 0..n)
  slots                   size of the hash table (a power of two)
  offsets[n + 1]          token i's bytes are bytes[offsets[i]..offsets[i+1]]
  table[slots]            open addressing by 32-bit FNV-1a of the bytes, linear
                          probing; each slot holds rank + 1, or 0 when empty
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
def fnv1a(b):
    h = 0x811C9DC5
    for x in b:
        h = ((h ^ x) * 0x01000193) & 0xFFFFFFFF
    return h
slots = 1 << 18
table = [0] * slots
for i in range(n):
    s = fnv1a(toks[i]) & (slots - 1)
    while table[s]:
        s = (s + 1) & (slots - 1)
    table[s] = i + 1
out = pathlib.Path(__file__).parent / "cl100k.bin"
with open(out, "wb") as f:
    f.write(struct.pack("<II", n, slots))
    f.write(struct.pack(f"<{n+1}I", *offsets))
    f.write(struct.pack(f"<{slots}I", *table))
    f.write(blob)
print(out, n, "tokens", out.stat().st_size, "bytes")
