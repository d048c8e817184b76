#!/bin/sh
# Builds __NAME__.wasm with cargo for wasm32-wasip2 (once: `rustup target add
# wasm32-wasip2`), against the WIT in wit/.
set -eu
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2 --quiet
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/__CRATE__.wasm" __NAME__.wasm
echo "built __NAME__.wasm"
