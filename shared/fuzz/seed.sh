#!/usr/bin/env bash
# Writes seed corpora (example blobs from the encoder, request frames) for the fuzz targets
# (from_bytes, from_bytes_crc_fixed, frames), then runs one:
#   shared/fuzz/seed.sh [target] [runs]      (default: from_bytes_crc_fixed, 1000000 runs)
# Needs nightly and cargo-fuzz (cargo install cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-from_bytes_crc_fixed}"
runs="${2:-1000000}"
mkdir -p corpus/from_bytes corpus/from_bytes_crc_fixed corpus/frames
cargo run --quiet --manifest-path seedgen/Cargo.toml -- corpus
# A few frames (each <= 1024 bytes) say all the link can; blobs need room.
max_len=65536
[ "$target" = frames ] && max_len=4096
cargo +nightly fuzz run -O "$target" -- -runs="$runs" -max_len="$max_len"
