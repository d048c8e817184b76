#!/bin/sh
# Builds counter-python.wasm from app.py with componentize-py (pip install
# componentize-py==0.25.*), against the WIT in the repository's wit/.
set -eu
cd "$(dirname "$0")"
out="${1:-counter-python.wasm}"
componentize-py -d ../../../wit -w tool-component componentize app -o "$out"
