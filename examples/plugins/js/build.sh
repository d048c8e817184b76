#!/bin/sh
# Builds counter-js.wasm from counter.js with jco 1.35 and componentize-js
# 0.23, pinned in package.json (install them first: `npm ci` here), against
# the WIT in the repository's wit/.
#
# Two workarounds, both for these toolchain releases:
# - `--disable http fetch-event`: by default componentize-js makes a
#   component that imports wasi:http (to offer `fetch` and the fetch-event
#   handler); a warmlane tool is not an HTTP handler, and the host refuses
#   components that import what it does not provide.
# - package.json's `overrides` pin @bytecodealliance/preview2-shim to 0.25.0:
#   0.26 gives the WebAssembly tools jco runs no filesystem, so jco fails with
#   "failed to get path metadata" reading the WIT; and they make jco use
#   componentize-js 0.23 (jco 1.35 asks for 0.22).
set -eu
cd "$(dirname "$0")"
out="${1:-counter-js.wasm}"
if [ ! -x node_modules/.bin/jco ]; then
  echo "jco is not installed here; run: npm ci --prefix $(pwd)" >&2
  exit 1
fi
# jco's default features: `wasi:http` is imported (for `fetch`), which the
# host links (a request goes out only to the component's upstreams).
node_modules/.bin/jco componentize counter.js --wit ../../../wit --world-name tool-component \
  -o "$out"
