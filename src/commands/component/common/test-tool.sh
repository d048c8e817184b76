#!/bin/sh
# Builds __NAME__.wasm and tries it: `warmlane component check` says it loads,
# and a call answers. Needs `warmlane` on the PATH (or WARMLANE=/its/path).
set -eu
cd "$(dirname "$0")"
warmlane="${WARMLANE:-warmlane}"
./build.sh
"$warmlane" component check __NAME__.wasm
out=$("$warmlane" component call __NAME__.wasm '{"text":"héllo"}')
echo "$out"
if echo "$out" | grep -Eq '"characters": ?5[,}]'; then
  echo "ok: __NAME__ answers"
else
  echo "__NAME__ answered something else" >&2
  exit 1
fi
