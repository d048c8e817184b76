#!/usr/bin/env python3
"""Regenerates the CID -> Unicode tables from Adobe's CMaps in Debian's poppler-data.

Run: python3 generate.py /usr/share/poppler/cMap
Each output file is a flat array of little-endian u32, one per CID from 0: the Unicode
scalar value the CID stands for, or 0 where Adobe gives none. Where Adobe maps a CID to
several code points (rare), the first is kept.
"""
import re, struct, sys, pathlib

ORDERINGS = {"GB1": "Adobe-GB1", "CNS1": "Adobe-CNS1", "Japan1": "Adobe-Japan1",
             "Korea1": "Adobe-Korea1", "KR": "Adobe-KR"}

def utf16_first(hexstr):
    b = bytes.fromhex(hexstr)
    s = b.decode("utf-16-be", errors="replace")
    return ord(s[0]) if s else None

def parse(path):
    text = path.read_text(encoding="latin-1")
    m = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            u = utf16_first(dst)
            if u is not None:
                m[int(src, 16)] = u
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            u = utf16_first(dst)
            for i, cid in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                m[cid] = u + i
    return m

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/poppler/cMap")
here = pathlib.Path(__file__).parent
for short, full in ORDERINGS.items():
    m = parse(root / full / f"{full}-UCS2")
    table = [0] * (max(m) + 1)
    for cid, u in m.items():
        table[cid] = u
    with open(here / f"{short}.bin", "wb") as f:
        f.write(struct.pack(f"<{len(table)}I", *table))
    print(short, len(table), "CIDs")
