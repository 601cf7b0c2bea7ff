#!/usr/bin/env bash
# Every check the project has, in the order a failure is cheapest to find:
# setup, formatting, structure (import cycles, long functions, lint lists), clippy (warnings
# denied, every crate and workspace), host tests, `shared` built for both thumb targets,
# firmware built for both boards and exercised in QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { printf '\n=== %s (t+%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }

step "setup"
bash .ci/setup

step "formatting"
cargo fmt --all -- --check

step "structure: layers import downward only, no function over 150 lines, one lint list"
python3 tests/layers.py --self-test
python3 tests/layers.py

step "host tests (release: the training tests need optimised burn)"
cargo test --release --workspace

step "GPU training backends compile: sqz-host --features wgpu and --features cuda"
cargo check --release -p sqz-host --features wgpu
# cubecl's CUDA compiler fetches an LLVM build from the network in its build script; this
# offline machine cannot, so the CUDA build is type-checked with that fetch skipped (DOCS_RS).
DOCS_RS=1 cargo check --release -p sqz-host --features cuda

step "clippy, warnings denied"
cargo clippy --release --workspace --all-targets -- -D warnings
# The workspaces of their own: the firmware (both boards), its host tools, the QEMU kernel runner.
(cd firmware && cargo clippy --release -- -D warnings)
(cd firmware && cargo clippy --release --no-default-features --features nucleo-f411re -- -D warnings)
(cd firmware && cargo clippy --release --target thumbv7m-none-eabi --no-default-features --features mps2-an385 -- -D warnings)
(cd firmware && cargo clippy --release --target thumbv6m-none-eabi --no-default-features --features mps2-an385 -- -D warnings)
(cd firmware/tools && cargo clippy --release -- -D warnings)
(cd shared/qemu && cargo clippy --release --bins -- -D warnings)

step "shared is no_std: thumbv7em-none-eabihf and thumbv6m-none-eabi"
cargo build --release -p sqz-shared --target thumbv7em-none-eabihf
cargo build --release -p sqz-shared --target thumbv6m-none-eabi

step "shared kernels on the Cortex-M4 in QEMU: every implementation against the reference"
bash shared/qemu/run-tests.sh

step "firmware: both boards built, booted in QEMU, images classified over the serial link"
bash firmware/ci.sh

step "the whole pipeline on a small budget: train, compress with fine-tuning, export, verify, firmware in QEMU"
quick=$(mktemp -d)
cargo build --release -p sqz-host
./target/release/sqz pipeline --quick --out "$quick" --device --device-images 50
rm -rf "$quick"

step "your own pictures: a folder made from Fashion-MNIST (4 classes, recoloured RGB, PNG and JPEG, 20-40 px) at 24x24 through train, compress, fit, tract parity and the firmware in QEMU (images sent in parts)"
pictures=$(mktemp -d)
quick=$(mktemp -d)
./target/release/sqz make-folder --out "$pictures/clothes" --classes 4 --train-per-class 150 \
  --test-per-class 30 --flat --colour --sides 20..40 --jpeg-share 0.5
./target/release/sqz pipeline --quick --images "$pictures/clothes" --input-size 24 --out "$quick" \
  --device --device-images 50
rm -rf "$pictures" "$quick"

step "all checks passed in $(( $(date +%s) - t0 )) s"
