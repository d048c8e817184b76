#!/bin/sh
# Builds __NAME__.wasm and tries it: `warmlane component check` says it loads,
# and `warmlane run` chunks sample.pdf with it. Needs `warmlane` on the PATH
# (or WARMLANE=/its/path).
set -eu
cd "$(dirname "$0")"
warmlane="${WARMLANE:-warmlane}"
./build.sh
"$warmlane" component check __NAME__.wasm
out=$("$warmlane" run --quiet --chunker __NAME__.wasm --unit characters --chunk-size 40 --overlap 8 sample.pdf)
echo "$out"
if echo "$out" | grep -q '"text":"Hello from warmlane'; then
  echo "ok: __NAME__ chunks"
else
  echo "__NAME__ gave no chunk starting with the sample's text" >&2
  exit 1
fi
