#!/usr/bin/env python3
"""Which of a run's new edges a set of inputs reaches.

Takes the edges `new-edges.py` printed for a run (its lines of minute,
kind, address, place) and a directory of inputs, say a seed `seeds.py`
wrote to aim at them, and replays the inputs through the same binary with
`-merge=1 -merge_control_file`: the control file's `COV` lines name the
edges each input covers, as indices into the binary's `__sancov_pcs`
table, whose addresses are read from its relocations (the binary is a
PIE, so the table holds zeros until it is loaded).

    reaches.py BINARY EDGES INPUTS

prints each edge of EDGES as `reached` or `missed`, then the count; if an
input crashed or stalled the target (the merge goes on past it), keeps the
file libFuzzer wrote for it (`crash-`, `oom-`, `timeout-`, `slow-unit-`) in
the current directory, names it and exits with an error.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def section(binary, name):
    """(address, size) of `binary`'s section `name`."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 5 and fields[1] == name:
            return int(fields[3], 16), int(fields[5], 16)
    raise SystemExit(f"{binary} has no {name} section: was it built by `cargo fuzz build`?")


def pc_table(binary):
    """The address of each edge, by its index in `__sancov_pcs` (entries
    of a pointer-sized address and flags, 16 bytes on x86-64)."""
    start, size = section(binary, "__sancov_pcs")
    out = subprocess.run(["readelf", "-rW", binary], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] == "R_X86_64_RELATIVE":
            at = int(fields[0], 16)
            if start <= at < start + size and (at - start) % 16 == 0:
                table[(at - start) // 16] = int(fields[3], 16)
    return table


def covered(binary, inputs):
    """The addresses of every edge `inputs` cover, and the inputs that
    crashed the target on the way (the merge goes on past them): libFuzzer
    writes each as `crash-HASH` (or `oom-`, `timeout-`, `slow-unit-`),
    which are moved into the current directory."""
    with tempfile.TemporaryDirectory() as scratch:
        control, empty = f"{scratch}/control", f"{scratch}/merged"
        artifacts = f"{scratch}/artifacts/"
        os.mkdir(empty)
        os.mkdir(artifacts)
        subprocess.run(
            ["setarch", "-R", binary, "-merge=1", f"-merge_control_file={control}",
             f"-artifact_prefix={artifacts}", empty, inputs],
            capture_output=True,
            check=True,
        )
        found = sorted(os.listdir(artifacts))
        for name in found:
            shutil.move(artifacts + name, name)
        table = pc_table(binary)
        with open(control) as lines:
            return {table[int(i)] for line in lines if line.startswith("COV ") for i in line.split()[2:]}, found


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("binary")
    args.add_argument("edges", help="new-edges.py's output for the run")
    args.add_argument("inputs", help="a directory of inputs")
    args = args.parse_args()
    edges = [line.split(None, 3) for line in open(args.edges) if line.startswith(" ")]
    reach, found = covered(args.binary, args.inputs)
    hits = 0
    for minute, kind, pc, place in edges:
        hit = int(pc, 16) in reach
        hits += hit
        print(f"{'reached' if hit else 'missed '} {minute:>6} {kind:<4} {pc} {place.rstrip()}")
    print(f"{hits} of {len(edges)} reached")
    if found:
        sys.exit(f"{len(found)} input(s) crashed or stalled the target, kept here: {' '.join(found)}")


if __name__ == "__main__":
    main()
