#!/usr/bin/env bash
# Readies OpenAI's tiktoken (the Python package) for the `chunker` bench. Its
# cl100k_base table is taken from the tiktoken-rs crate on crates.io (MIT;
# tiktoken itself would download it from openaipublic.blob.core.windows.net)
# into target/bench-data/tiktoken-cache/, where TIKTOKEN_CACHE_DIR finds it
# and tiktoken checks it against the table's known SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import tiktoken' 2>/dev/null; then
  python3 -m pip install --quiet 'tiktoken>=0.7' || python3 -m pip install --quiet --user 'tiktoken>=0.7'
fi
cache=target/bench-data/tiktoken-cache
# The SHA-1 of the URL tiktoken loads cl100k_base from: its cache key.
key=9b5ad71b2ce5302211f9c61530b329a4922fc6a4
if [ ! -f "$cache/$key" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  curl -sSfL -o "$tmp/tiktoken-rs.crate" https://static.crates.io/crates/tiktoken-rs/tiktoken-rs-0.12.1.crate
  tar -xzf "$tmp/tiktoken-rs.crate" -C "$tmp" tiktoken-rs-0.12.1/assets/cl100k_base.tiktoken
  mv "$tmp/tiktoken-rs-0.12.1/assets/cl100k_base.tiktoken" "$cache/$key"
fi
TIKTOKEN_CACHE_DIR=$cache python3 -c 'import tiktoken; tiktoken.get_encoding("cl100k_base")'
echo "tiktoken ready, cl100k_base in $cache"
