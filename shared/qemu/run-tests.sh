#!/usr/bin/env bash
# Builds the thumbv7em (Cortex-M4F) test runner and runs it in QEMU mps2-an386.
# Exit status 0 iff the DSP (`asm!` SMLAD) and portable kernels equal the reference twins bit for
# bit and the example blobs run exactly as on the host.
# Needs: rustup target add thumbv7em-none-eabihf; apt-get install qemu-system-arm.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --bin kernel-tests
exec timeout "${SQZ_QEMU_TIMEOUT:-300}" qemu-system-arm -M mps2-an386 -display none -monitor none \
  -icount shift=0,sleep=off -semihosting-config enable=on,target=native \
  -kernel target/thumbv7em-none-eabihf/release/kernel-tests
