#!/usr/bin/env bash
# Firmware CI: build both boards, boot in QEMU (smoke, fault paths, refused blob), classify
# images over the serial link bit-exact against the host kernels, optional soak, sizes.
#
#   firmware/ci.sh            # everything, soak included (about 1.5 min after the builds with the
#                             # example blob; the soak takes longer with a bigger model)
#   firmware/ci.sh --quick    # without the 2,000-frame soak
#
# Blob: $SQZ_BLOB if set, else ../models/shipped.blob if present, else shared's example network
# with a 28x28x1 input (generated). Images: the Fashion-MNIST test split when the model takes
# 28x28x1 and the data is found ($FASHION_MNIST_DIR, data/fashion-mnist, ../shared/data/...). Setup (once; .ci/setup does it): rustup target add thumbv7em-none-eabihf;
# rustup component add llvm-tools; cargo install flip-link; apt-get install qemu-system-arm.
set -euo pipefail
cd "$(dirname "$0")"
FW=$PWD
OUT=$FW/target/ci
mkdir -p "$OUT"
SOAK=1
[ "${1:-}" = "--quick" ] && SOAK=0
N_EVAL=${SQZ_EVAL_IMAGES:-200}
FLASH_BUDGET=$((96 * 1024))

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'ci.sh: FAIL: %s\n' "$*" >&2; exit 1; }
for tool in qemu-system-arm flip-link; do
  command -v "$tool" >/dev/null || fail "$tool not found (see the setup line at the top of ci.sh)"
done
HOST=$(rustc -vV | sed -n 's/^host: //p')
SIZE=$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-size
[ -x "$SIZE" ] || fail "llvm-size not found: rustup component add llvm-tools"

say "host tools (+ tests of host/src/link/, compiled into them)"
(cd tools && cargo build --release --quiet && cargo test --release --quiet 2>&1 | grep 'test result')
TOOLS=$FW/tools/target/$HOST/release/sqz-fw-tools

if [ -n "${SQZ_BLOB:-}" ]; then
  BLOB=$(realpath "$SQZ_BLOB")
elif [ -f ../models/shipped.blob ]; then
  BLOB=$(realpath ../models/shipped.blob)
else
  BLOB=$OUT/example28.blob
  "$TOOLS" blob28 "$BLOB" 7
  echo "note: no models/shipped.blob yet; using shared's example network at 28x28x1 (random weights)"
fi
# Fashion-MNIST test images for the eval, where .ci/setup and the host loader look for them.
DATA=""
for d in "${FASHION_MNIST_DIR:-}" ../data/fashion-mnist ../../shared/data/fashion-mnist; do
  if [ -n "$d" ] && ls "$d"/t10k-images-idx3-ubyte* >/dev/null 2>&1; then DATA=$(realpath "$d"); break; fi
done
[ -n "$DATA" ] || echo "note: no Fashion-MNIST found; the eval uses synthetic images"
export SQZ_BLOB=$BLOB
echo "blob: $BLOB ($(stat -c %s "$BLOB") B)"

build() { # name, cargo args...
  local name=$1
  shift
  cargo build --release --quiet "$@"
  cp target/thumbv7em-none-eabihf/release/sqz-firmware "$OUT/$name.elf"
}
say "build (release): mps2-an386 serve/smoke/fault tests, nucleo-f411re, mps2-an385 (Cortex-M3)"
build serve
build smoke --features smoke
build panic-test --features panic-test
build hardfault-test --features hardfault-test
build stack-overflow-test --features stack-overflow-test
build nucleo-f411re --no-default-features --features nucleo-f411re
# The Cortex-M4 stem kernels, off by default for flash (Cargo.toml `stem-kernels`).
build stem-kernels --features stem-kernels
# The Cortex-M3 (no FPU, no DSP): the same firmware for thumbv7m, the kernels' portable paths.
# Built for speed (`--profile speed`): without the DSP kernels the hot loops are portable Rust.
cargo build --profile speed --quiet --target thumbv7m-none-eabi --no-default-features --features mps2-an385
cp target/thumbv7m-none-eabi/speed/sqz-firmware "$OUT/m3.elf"
# The same board built for ARMv6-M (Thumb-1: what a Cortex-M0/M0+ runs; the M3 runs it too).
cargo build --profile speed --quiet --target thumbv6m-none-eabi --no-default-features --features mps2-an385
cp target/thumbv6m-none-eabi/speed/sqz-firmware "$OUT/m0.elf"

qemu() { # elf, serial -> QEMU exit status
  timeout 120 qemu-system-arm -M mps2-an386 -display none -monitor none -nodefaults \
    -icount shift=0,sleep=off -semihosting-config enable=on,target=native \
    -serial "$2" -kernel "$1"
}

say "no allocator linked"
NM=$(dirname "$SIZE")/llvm-nm
for elf in serve nucleo-f411re; do
  if "$NM" "$OUT/$elf.elf" | grep -qE '__rust_alloc|__rg_alloc|__rust_no_alloc_shim'; then fail "$elf links an allocator"; fi
done
echo "ok: no __rust_alloc in serve.elf or nucleo-f411re.elf"

say "integer only: no soft-float routine linked into the FPU-less builds (Cortex-M3, ARMv6-M)"
SOFT_FLOAT='__aeabi_[fd](add|sub|mul|div|cmp|rsub|2|neg)|__aeabi_[iul]+2[fd]|__aeabi_[fd]2|__(add|sub|mul|div)[sd]f3|__float|__fix|__(eq|ne|lt|le|gt|ge|un)[sd]f2'
for elf in m3 m0; do
  if "$NM" "$OUT/$elf.elf" | grep -E "$SOFT_FLOAT"; then fail "$elf links soft-float routines (above)"; fi
done
echo "ok: m3.elf (thumbv7m) and m0.elf (thumbv6m) link no __aeabi_f*/__aeabi_d* or libgcc float routine"

say "smoke (QEMU): boot, validate, one inference, semihosting exit 0"
qemu "$OUT/smoke.elf" null 2>&1 | tee "$OUT/smoke.txt"
grep -q '^smoke: ok' "$OUT/smoke.txt" || fail "smoke did not report ok"

say "fault paths: panic, HardFault and stack overflow report a Fault frame and exit 1"
for t in panic-test hardfault-test stack-overflow-test; do
  set +e
  qemu "$OUT/$t.elf" "file:$OUT/$t.uart" >"$OUT/$t.txt" 2>&1
  rc=$?
  set -e
  cat "$OUT/$t.txt"
  [ $rc -eq 1 ] || fail "$t: QEMU exit $rc, expected 1"
  grep -aq -e 'panicked at' -e 'HardFault at' -e 'stack overflow' "$OUT/$t.uart" || fail "$t: no Fault frame on the UART"
done

say "refused blob: one bit flipped in flash -> ModelInvalid to every request"
"$TOOLS" corrupt-elf "$OUT/serve.elf" "$BLOB" "$OUT/corrupt.elf"
timeout 120 "$TOOLS" expect-refusal "$OUT/corrupt.elf"

say "eval: $N_EVAL test images over the serial link, logits bit-exact vs host kernels"
timeout 600 "$TOOLS" eval "$OUT/serve.elf" "$BLOB" "$N_EVAL" $DATA | tee "$OUT/eval.txt"

say "with the Cortex-M4 stem kernels (feature stem-kernels): 20 test images, logits bit-exact vs host kernels"
timeout 300 "$TOOLS" eval "$OUT/stem-kernels.elf" "$BLOB" 20 $DATA | tee "$OUT/eval-stem-kernels.txt"

say "Cortex-M3 (QEMU mps2-an385: no FPU, no DSP): $N_EVAL test images, logits bit-exact vs host kernels"
timeout 900 "$TOOLS" eval "$OUT/m3.elf" "$BLOB" "$N_EVAL" $DATA | tee "$OUT/eval-m3.txt"

say "ARMv6-M build on the Cortex-M3 (Thumb-1 only): $N_EVAL test images, logits bit-exact vs host kernels"
timeout 1200 "$TOOLS" eval "$OUT/m0.elf" "$BLOB" "$N_EVAL" $DATA | tee "$OUT/eval-m0.txt"

say "full-size shape: shared's SqueezeNet v1.1 28x28 (random Huffman-sparse weights, ~300 KB blob)"
"$TOOLS" blob-v11 "$OUT/v11.blob" 3
SQZ_BLOB=$OUT/v11.blob cargo build --release --quiet
cp target/thumbv7em-none-eabihf/release/sqz-firmware "$OUT/v11.elf"
timeout 600 "$TOOLS" eval "$OUT/v11.elf" "$OUT/v11.blob" "$N_EVAL" $DATA | tee "$OUT/eval-v11.txt"

say "serial-port path (DeviceLink::serial, as for a real board): QEMU UART on a pty, 20 images"
timeout 120 qemu-system-arm -M mps2-an386 -display none -monitor none -nodefaults \
  -semihosting-config enable=on,target=native -serial pty -kernel "$OUT/serve.elf" >"$OUT/pty.txt" 2>&1 &
qpid=$!
pts=""
for _ in $(seq 50); do
  pts=$(grep -o '/dev/pts/[0-9]*' "$OUT/pty.txt" || true)
  [ -n "$pts" ] && break
  sleep 0.1
done
[ -n "$pts" ] || { kill "$qpid"; fail "QEMU did not open a pty"; }
set +e
timeout 120 "$TOOLS" eval-port "$pts" "$BLOB" 20
rc=$?
set -e
kill "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
[ $rc -eq 0 ] || fail "eval over the serial port"

if [ $SOAK -eq 1 ]; then
  say "soak: 2000 frames, 1 % corrupted"
  timeout 900 "$TOOLS" soak "$OUT/serve.elf" "$BLOB" 2000 10 1 | tee "$OUT/soak.txt"
fi

say "sizes (llvm-size -A; flash = .vector_table + .text + .rodata + .data, RAM = .data + .bss + .uninit)"
size_of() { "$SIZE" -A "$1" | awk -v s="$2" '$1 == s { print $2 }'; }
for elf in serve stem-kernels nucleo-f411re m3 m0; do
  f=$OUT/$elf.elf
  vt=$(size_of "$f" .vector_table); text=$(size_of "$f" .text); ro=$(size_of "$f" .rodata)
  data=$(size_of "$f" .data); bss=$(size_of "$f" .bss); un=$(size_of "$f" .uninit)
  flash=$((vt + text + ro + data)); ram=$((data + bss + un))
  printf '%-14s flash %6d B (code+rodata without the blob %d, blob %d)  static RAM %6d B\n' \
    "$elf" "$flash" "$((vt + text + ro - $(stat -c %s "$BLOB")))" "$(stat -c %s "$BLOB")" "$ram"
  [ "$flash" -le "$FLASH_BUDGET" ] || echo "WARNING: $elf flash $flash B exceeds the 96 KB budget"
done
grep -o 'arena=[0-9]* B' "$OUT/smoke.txt" | head -1
grep -o 'stack_hwm=[0-9]* B of [0-9]* B' "$OUT/smoke.txt" | head -1
grep -o 'cost=[0-9]* Instructions' "$OUT/smoke.txt" | head -1
echo "ci.sh: all firmware checks passed"
