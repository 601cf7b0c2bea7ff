#!/usr/bin/env bash
# Training throughput, burn vs PyTorch on the same SqueezeNet, in one run.
#
#   tests/bench/train_throughput.sh [--warmup W] [--steps N] [--repeats R] [--batch B] [--no-record]
#
# Builds and runs `cargo bench -p sqz-host --bench train_throughput`, then
# tests/bench/pytorch_train.py (PyTorch from PyPI: `pip install torch`, see that file) with the
# same settings and 2 threads, prints a table and the ratio burn / PyTorch (PyTorch's faster
# memory layout), and, unless --no-record, writes target/bench-current/train/train-BATCH.json and
# rewrites the current table of tests/bench/BENCHMARKS.md from every such summary there
# (tests/bench/current.py; the table it replaces moves under History).
# Fails if the two networks' parameter counts differ. PYTHON picks the interpreter (python3).
# Run it on an otherwise idle machine: the load average at the start is recorded with the row.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-python3}"
command="tests/bench/train_throughput.sh $*"
warmup=3 steps=10 repeats=3 batch=64 record=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --warmup) warmup="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --no-record) record=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "train_throughput.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
common=(--warmup "$warmup" --steps "$steps" --repeats "$repeats" --batch "$batch")

if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "train_throughput.sh: $py cannot import torch; install it with: $py -m pip install torch" >&2
  exit 1
fi

cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
load_at_start="$(cut -d' ' -f1 /proc/loadavg)"

echo "== building the burn bench (release) ==" >&2
cargo bench -p sqz-host --bench train_throughput --no-run >&2
echo "== burn ==" >&2
cargo bench -q -p sqz-host --bench train_throughput -- "${common[@]}" | tee "$tmp/burn.out"
echo "== pytorch ==" >&2
"$py" "$here/pytorch_train.py" "${common[@]}" --threads 2 | tee "$tmp/torch.out"

logs="$root/target/bench-current/train"
mkdir -p "$logs"
"$py" - "$tmp/burn.out" "$tmp/torch.out" "$logs/train-$batch.json" "$record" "$load_at_start" \
  <<'EOF'
import json, platform, subprocess, sys

burn_out, torch_out, summary, record, load = sys.argv[1:]

def json_lines(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.startswith("{")]

burn = json_lines(burn_out)[-1]
torch_runs = json_lines(torch_out)
best = next(r for r in torch_runs if r.get("best"))
by_layout = {r["variant"]: r for r in torch_runs}
ratio = burn["images_per_s"] / best["images_per_s"]

print()
print(f"| implementation                 | images/s (median) | parameters |")
print(f"|--------------------------------|------------------:|-----------:|")
print(f"| {'burn flex+autodiff':30} | {burn['images_per_s']:17.1f} | {burn['params']:10d} |")
for r in torch_runs:
    mark = " (best)" if r.get("best") else ""
    print(f"| {'pytorch ' + r['variant'] + mark:30} | {r['images_per_s']:17.1f} | {r['params']:10d} |")
print(f"\nratio burn / PyTorch ({best['variant']}): {ratio:.2f}x  (goal >= 1.00x)")

if burn["batch"] != best["batch"]:
    sys.exit(f"batch sizes differ: burn {burn['batch']}, PyTorch {best['batch']}")
if burn["params"] != best["params"]:
    sys.exit(f"parameter counts differ: burn {burn['params']}, PyTorch {best['params']}; "
             "the two networks are not the same architecture, fix pytorch_train.py")

if record != "1":
    sys.exit(0)

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"

cpu = next((l.split(":", 1)[1].strip() for l in sh("lscpu").splitlines()
            if l.startswith("Model name")), platform.processor() or "?")
machine = f"{cpu}, {burn['logical_cpus']} logical CPUs, load {load} at start"
try:
    import tomllib
    with open("Cargo.toml", "rb") as f:
        burn_dep = tomllib.load(f)["workspace"]["dependencies"]["burn"]
    burn_desc = f"burn {burn_dep['version'].lstrip('=')} [{','.join(burn_dep.get('features', []))}]"
except Exception:
    burn_desc = "burn ?"
rustc = sh("rustc", "--version").split(" ")[1] if sh("rustc", "--version") != "?" else "?"
layout = lambda v: round(by_layout[v]["images_per_s"], 1) if v in by_layout else "-"
out = {
    "batch": burn["batch"], "warmup": burn["warmup"], "repeats": burn["repeats"],
    "steps": burn["steps"], "burn": burn["images_per_s"], "contiguous": layout("contiguous"),
    "channels_last": layout("channels_last"), "ratio": ratio, "params": burn["params"],
    "machine": machine,
    "versions": f"rustc {rustc}, {burn_desc}; torch {best['torch']} ({best['threads']} threads)",
}
with open(summary, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1)
print(f"wrote {summary}")
EOF
[ "$record" = 1 ] && "$py" "$here/current.py" "$logs"
exit 0
