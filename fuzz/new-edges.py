#!/usr/bin/env python3
"""Where a fuzzing run's new edges were, and when.

Reads the log of a libFuzzer run started with `-print_pcs=1` under
`setarch -R` (so addresses are the same in every run of the binary), dates
each `NEW_PC` by the status line that follows it (runs / runs per second),
symbolizes it with `llvm-symbolizer`, and sorts it into `hash` (inside a
hash table's own probing: hashbrown, indexmap, std's hashing, whose paths
depend on std's random seed as much as on the input), `rng` (inside the
thread-local random generator, which `lopdf` draws from for each
encrypted document: it reseeds from the OS once the process has drawn
64 KiB, whatever the input in hand) or `code`.

    new-edges.py LOG [LOG ...] BINARY [--since MINUTES] [--every MINUTES]

prints one line per edge found at or after `--since` (minute, kind,
address, the crate whose source holds it, file and line, function), then
the count of each kind in every `--every`-minute window (default 10), and
of the edges in code, by crate: ours (`pdf-pages`, `pdf-syntax`, ...) or
a dependency's (`lopdf`, `nom`, ...). Given the logs of
several processes of one run (one work directory, started together), it
counts each edge once, at the first minute any of them found it.
"""
import argparse
import json
import re
import subprocess
from collections import Counter

PIE_BASE = 0x555555554000  # where the kernel maps a PIE with ASLR off
HASH_FILES = ("/hashbrown-", "/indexmap-", "/core/src/hash/", "/std/src/hash/")
HASH_PATHS = ("hashbrown::", "indexmap::", "core::hash::", "std::hash::")
RNG_FILES = ("/rand-", "/rand_core-", "/chacha20-", "/getrandom-")
RNG_PATHS = ("rand::", "rand_core::", "chacha20::", "getrandom::")


def new_pcs(log):
    """(minute, address in the binary) for each NEW_PC in `log`."""
    pending, found = [], []
    with open(log, "rb") as lines:
        for line in lines:
            line = line.decode("latin1")
            if "NEW_PC:" in line:
                # libFuzzer prints the next instruction's address; step back one.
                pending.append(int(line.split()[1], 16) - PIE_BASE - 1)
                continue
            status = re.match(r"#(\d+)\s.*exec/s: (\d+)", line)
            if status and pending:
                runs, rate = int(status[1]), int(status[2])
                minute = runs / rate / 60 if rate else 0.0
                found += [(minute, pc) for pc in pending]
                pending = []
    return found


def frames(binary, pcs):
    """The inlined frames, innermost first, of each address."""
    out = subprocess.run(
        ["llvm-symbolizer", f"--obj={binary}", "--output-style=JSON", "--demangle"],
        input="\n".join(hex(pc) for pc in pcs),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line).get("Symbol", []) for line in out.splitlines() if line.strip()]


def classify(stack):
    """`hash`, `rng` or `code`, and the frame that decided it: the innermost
    one outside core and alloc (whose helpers are inlined everywhere),
    judged by its source file (which llvm-symbolizer names even where the
    instrumentation's own block has line 0) or, where that block has no
    line, also by the path of its function."""
    within = lambda f, files: any(h in f.get("FileName", "") for h in files)
    library = lambda f: "/rustc/" in f.get("FileName", "") and not within(f, HASH_FILES)
    inner = next((f for f in stack if not library(f)), stack[0] if stack else {})
    for kind, files, paths in (("hash", HASH_FILES, HASH_PATHS), ("rng", RNG_FILES, RNG_PATHS)):
        if within(inner, files):
            return kind, inner
        if not inner.get("Line", 0) and inner.get("FunctionName", "").lstrip("<").startswith(paths):
            return kind, inner
    return "code", inner


def crate(frame):
    """The crate whose source file holds `frame`: a registry crate's name,
    `std` for the standard library, or the directory above a workspace
    crate's `src/`."""
    name = frame.get("FileName", "")
    registry = re.search(r"/registry/src/[^/]+/([^/]+)-\d+\.\d+[^/]*/", name)
    if registry:
        return registry[1]
    if "/rustc/" in name:
        return "std"
    parts = name.split("/src/")[0].rstrip("/").split("/")
    return parts[-1] or "?"


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("log", nargs="+")
    args.add_argument("binary")
    args.add_argument("--since", type=float, default=0.0)
    args.add_argument("--every", type=int, default=10)
    args = args.parse_args()

    first = {}
    for log in args.log:
        for minute, pc in new_pcs(log):
            first[pc] = min(minute, first.get(pc, minute))
    found = sorted((m, pc) for pc, m in first.items() if m >= args.since)
    windows, crates = Counter(), Counter()
    for (minute, pc), stack in zip(found, frames(args.binary, [pc for _, pc in found])):
        kind, inner = classify(stack)
        windows[(int(minute // args.every) * args.every, kind)] += 1
        owner = crate(inner)
        if kind == "code":
            crates[owner] += 1
        where = f"{inner.get('FileName', '?').split('/src/')[-1]}:{inner.get('Line', 0)}"
        print(f"{minute:6.1f} {kind} {pc:#x} {owner} {where} {inner.get('FunctionName', '?')[:70]}")
    for (start, kind), n in sorted(windows.items()):
        print(f"minutes {start}-{start + args.every}: {n} {kind}")
    print("in code, by crate: " + ", ".join(f"{name} {n}" for name, n in crates.most_common()))


if __name__ == "__main__":
    main()
