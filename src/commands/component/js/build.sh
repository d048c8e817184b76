#!/bin/sh
# Builds __NAME__.wasm from __NAME__.js with jco 1.35 and componentize-js
# 0.23, pinned in package.json, against the WIT in wit/.
#
# Two workarounds, both for these toolchain releases:
# - `--disable http fetch-event`: by default componentize-js makes a
#   component that imports wasi:http (to offer `fetch` and the fetch-event
#   handler); warmlane gives components no HTTP, and refuses a component
#   that imports what it does not provide.
# - package.json's `overrides` pin @bytecodealliance/preview2-shim to 0.25.0
#   (with 0.26 jco cannot read the WIT: "failed to get path metadata") and
#   make jco use componentize-js 0.23 (jco 1.35 asks for 0.22).
set -eu
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/jco ]; then
  npm install --no-audit --no-fund --silent
fi
node_modules/.bin/jco componentize __NAME__.js --wit wit --world-name __WORLD__ \
  --disable http fetch-event -o __NAME__.wasm
