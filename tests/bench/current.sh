#!/usr/bin/env bash
# Re-measures what ships today and rewrites the current table at the top of models/, firmware/
# and shared/BENCHMARKS.md (tests/bench/current.py; each table it replaces moves under History).
#
#   tests/bench/current.sh [--no-firmware] [--no-host-bench]
#
#   models/BENCHMARKS.md    the README's main job: sqz shipped --qemu (accuracy, parity, device)
#   firmware/BENCHMARKS.md  bash firmware/ci.sh (flash, RAM, instructions, 200 images, soak)
#   shared/BENCHMARKS.md    bash shared/qemu/bench.sh (Cortex-M4 instruction counts) and the
#                           criterion benches of sqz-shared (kernels) and sqz-host (inference)
# The training table (tests/bench/BENCHMARKS.md) has its own script: train_throughput.sh.
# Logs stay in target/bench-current/. Run it on an otherwise idle machine: the host timings
# and the soak's wall time depend on the load; instruction counts and sizes do not.
set -euo pipefail
cd "$(dirname "$0")/../.."
firmware=1 host_bench=1
for a in "$@"; do
  case "$a" in
    --no-firmware) firmware=0 ;;
    --no-host-bench) host_bench=0 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "current.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done
logs=target/bench-current
mkdir -p "$logs"
rm -f "$logs"/shipped.txt "$logs"/firmware.txt "$logs"/shared-qemu.txt "$logs"/shared-host.txt
# The code measured: the tables name it, not the tree as it is when they are written.
{
  git rev-parse --short HEAD
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then echo dirty; else echo clean; fi
  date -u '+%Y-%m-%d %H:%M UTC'
} > "$logs/measured-at.txt"

bash .ci/main | tee "$logs/shipped.txt"
if [ $firmware = 1 ]; then
  bash firmware/ci.sh 2>&1 | tee "$logs/firmware.txt"
fi
bash shared/qemu/bench.sh | tee "$logs/shared-qemu.txt"
if [ $host_bench = 1 ]; then
  {
    cargo bench -q -p sqz-shared --bench kernels
    cargo bench -q -p sqz-host --bench inference
  } 2>&1 | tee "$logs/shared-host.txt"
fi
python3 tests/bench/current.py "$logs"
