#!/bin/sh
# Builds counter-rust.wasm from src/lib.rs with cargo for wasm32-wasip2
# (`rustup target add wasm32-wasip2` once), against the WIT in the
# repository's wit/.
set -eu
cd "$(dirname "$0")"
out="${1:-counter-rust.wasm}"
cargo build --release --target wasm32-wasip2 --quiet
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/counter_rust.wasm" "$out"
