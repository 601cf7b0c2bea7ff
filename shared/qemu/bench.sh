#!/usr/bin/env bash
# Instruction counts (deterministic: -icount shift=0,sleep=off) of the fire-module conv shapes on
# the Cortex-M4 DSP path in QEMU mps2-an386; prints a markdown table (see ../BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --bin bench
exec timeout "${SQZ_QEMU_TIMEOUT:-300}" qemu-system-arm -M mps2-an386 -display none -monitor none \
  -icount shift=0,sleep=off -semihosting-config enable=on,target=native \
  -kernel target/thumbv7em-none-eabihf/release/bench
