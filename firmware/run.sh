#!/usr/bin/env bash
# cargo runner (see .cargo/config.toml): `cargo run --release [--features ...]` lands here with
# the ELF path. The board is read from the ELF (its Info board string):
#   nucleo-f411re -> probe-rs flashes and runs it (needs `cargo install probe-rs-tools --locked`)
#   mps2-an385    -> QEMU mps2-an385 (the Cortex-M3 build), deterministic instruction counting
#   otherwise     -> QEMU mps2-an386 with deterministic instruction counting.
# QEMU's UART0 goes to $SQZ_SERIAL (QEMU -serial syntax; default: stdio, which prints raw frames),
# e.g. SQZ_SERIAL=tcp:127.0.0.1:4444,server=on,wait=on to serve a host on a loopback port.
# Runs are bounded by $SQZ_QEMU_TIMEOUT seconds (default 600).
set -euo pipefail
elf="$1"
shift
if grep -aq 'nucleo-f411re' "$elf"; then
  command -v probe-rs >/dev/null || {
    echo "run.sh: probe-rs not found: cargo install probe-rs-tools --locked (needs libudev-dev)" >&2
    exit 127
  }
  exec probe-rs run --chip STM32F411RETx "$elf" "$@"
fi
command -v qemu-system-arm >/dev/null || {
  echo "run.sh: qemu-system-arm not found: apt-get install qemu-system-arm" >&2
  exit 127
}
machine=mps2-an386
if grep -aq 'mps2-an385' "$elf"; then machine=mps2-an385; fi
exec timeout "${SQZ_QEMU_TIMEOUT:-600}" qemu-system-arm -M "$machine" -display none -monitor none \
  -icount shift=0,sleep=off -semihosting-config enable=on,target=native \
  -serial "${SQZ_SERIAL:-stdio}" -kernel "$elf" "$@"
