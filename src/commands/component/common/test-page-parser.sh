#!/bin/sh
# Builds __NAME__.wasm and tries it: `warmlane component check` says it loads,
# and `warmlane run` parses sample.pdf with it (its two pages answer with the
# template's error until `parse` reads text). Needs `warmlane` on the PATH
# (or WARMLANE=/its/path).
set -eu
cd "$(dirname "$0")"
warmlane="${WARMLANE:-warmlane}"
./build.sh
"$warmlane" component check __NAME__.wasm
out=$("$warmlane" run --quiet --parser __NAME__.wasm sample.pdf)
echo "$out"
if [ "$(echo "$out" | grep -c '"page":')" -eq 2 ]; then
  echo "ok: __NAME__ answers for both pages"
else
  echo "__NAME__ did not answer for both pages" >&2
  exit 1
fi
