#!/usr/bin/env bash
# Builds the warmlane container image with podman: a static binary
# (x86_64-unknown-linux-musl) whose built-ins come compiled for the CPU level
# WARMLANE_PRECOMPILE_CPU (default x86-64-v3: every x86-64 server CPU since
# 2013-2015; a node without it compiles the built-ins at start and says so),
# plugins from PLUGIN_DIR precompiled for the same level, the configuration in
# deploy/image/warmlane.toml, and nothing else. Then checks what the image
# holds (no shell, uid 65532, the entrypoint) and starts its binary with its
# configuration directly (running containers is not possible everywhere
# podman builds them), and prints the image's size.
#
#   scripts/build-image.sh [PLUGIN_DIR]
#
# IMAGE names the image (default localhost/warmlane:dev); PODMAN_STORAGE the
# storage driver (default vfs, which works without overlay support).
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-localhost/warmlane:dev}
cpu=${WARMLANE_PRECOMPILE_CPU:-x86-64-v3}
plugins=${1:-}
podman=(podman --storage-driver "${PODMAN_STORAGE:-vfs}")
target=x86_64-unknown-linux-musl

command -v podman >/dev/null || { echo "podman is missing; run: apt-get install podman" >&2; exit 1; }
command -v musl-gcc >/dev/null || { echo "musl-gcc is missing (wasmtime builds C for the static target); run: apt-get install musl-tools" >&2; exit 1; }
rustup target add "$target" >/dev/null

echo "building the static binary (built-ins precompiled for $cpu)"
WARMLANE_PRECOMPILE_CPU=$cpu cargo build --release --locked --target "$target"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "target/$target/release/warmlane" "$context/warmlane"
# The symbol table only names functions in a backtrace nobody reads here.
if command -v strip >/dev/null; then strip "$context/warmlane"; fi
cp deploy/image/warmlane.toml "$context/warmlane.toml"
mkdir "$context/plugins"
if [ -n "$plugins" ]; then
  cp "$plugins"/*.wasm "$context/plugins/"
  "$context/warmlane" compile --cpu "$cpu" "$context/plugins"
fi
"$context/warmlane" config check "$context/warmlane.toml" >/dev/null

"${podman[@]}" build --quiet -f Containerfile -t "$image" "$context" >/dev/null
echo "built $image"

# What the image holds, from its own files: the configuration and the layer.
inspect() { "${podman[@]}" image inspect --format "$1" "$image"; }
[ "$(inspect '{{.Config.User}}')" = "65532:65532" ] || { echo "image does not run as 65532" >&2; exit 1; }
entrypoint=$(inspect '{{join .Config.Entrypoint " "}}')
echo "entrypoint: $entrypoint"
container=$("${podman[@]}" create "$image")
root="$context/root"
mkdir "$root"
"${podman[@]}" export "$container" | tar -x -C "$root"
"${podman[@]}" rm "$container" >/dev/null
shells=$(find "$root" -name sh -o -name bash -o -name busybox -o -name dash)
[ -z "$shells" ] || { echo "the image holds a shell: $shells" >&2; exit 1; }
echo "files:"
(cd "$root" && find . -type f -printf '  %10s %P\n' | sort -k2)

# The image's binary, with the image's configuration (port and volume
# aside), serves.
sed -e 's|^listen = .*|listen = "127.0.0.1:0"|' \
    -e "s|/var/cache/warmlane|$context/cache|" \
    -e "s|/usr/lib/warmlane/plugins|$root/usr/lib/warmlane/plugins|" \
    "$root/etc/warmlane/warmlane.toml" > "$context/run.toml"
"$root/usr/local/bin/warmlane" serve --config "$context/run.toml" 2> "$context/serve.log" &
server=$!
for _ in $(seq 100); do
  addr=$(sed -n 's|^warmlane: listening on http://\([^ ]*\).*|\1|p' "$context/serve.log")
  [ -n "$addr" ] && break
  sleep 0.1
done
ready=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz" || true)
kill "$server"; wait "$server" || true
[ "$ready" = 200 ] || { echo "the image's binary did not become ready:" >&2; cat "$context/serve.log" >&2; exit 1; }
echo "the image's binary serves: /readyz 200 on $addr"

size=$(inspect '{{.Size}}')
echo "image size: $((size / 1024 / 1024)) MiB ($size bytes)"
