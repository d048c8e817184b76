#!/bin/sh
# Builds __NAME__.wasm from app.py with componentize-py (once: `pip install
# componentize-py==0.25.*`), against the WIT in wit/.
set -eu
cd "$(dirname "$0")"
componentize-py -d wit -w __WORLD__ componentize app -o __NAME__.wasm
