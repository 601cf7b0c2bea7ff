#!/usr/bin/env python3
"""Writes the "Current" table at the top of each BENCHMARKS.md from the logs of the commands that
measure it (tests/bench/current.sh runs them). Each table is keyed by the shipped blob's sha256
and the commit it was measured on; the table it replaces moves under the file's `## History`.

Usage: python3 tests/bench/current.py LOG_DIR

LOG_DIR holds any of (a file that is missing leaves its table as it is):
  shipped.txt         `sqz shipped --qemu ELF` (the README's main job)  -> models/BENCHMARKS.md
  firmware.txt        `bash firmware/ci.sh`                             -> firmware/BENCHMARKS.md
  shared-qemu.txt     `bash shared/qemu/bench.sh`                       -> shared/BENCHMARKS.md
  shared-host.txt     `cargo bench -p sqz-shared --bench kernels` and
                      `cargo bench -p sqz-host --bench inference`       -> shared/BENCHMARKS.md
  train-<batch>.json  `tests/bench/train_throughput.sh` summaries       -> tests/bench/BENCHMARKS.md
  measured-at.txt     commit, clean or dirty, and date when the measuring began (current.sh)
"""
import datetime
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BEGIN = "<!-- current: begin (written by tests/bench/current.sh; edits here are overwritten) -->"
END = "<!-- current: end -->"
HISTORY = "## History"


def sh(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"


def blob_key():
    path = os.path.join(ROOT, "models", "shipped.blob")
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha256(data).hexdigest(), len(data)


def measured_at(logs):
    """(commit, date) of the measurement: what current.sh recorded when it started, so that the
    tables name the code measured, not the state of the tree when they are written."""
    path = os.path.join(logs, "measured-at.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            commit, state, date = (line.strip() for line in f.read().splitlines()[:3])
        return commit + ("+dirty" if state == "dirty" else ""), date
    commit = sh("git", "rev-parse", "--short", "HEAD").strip()
    # The tables this script writes do not make the measured code dirty.
    status = sh("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!*BENCHMARKS.md")
    if status.strip() not in ("", "?"):
        commit += "+dirty"
    return commit, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def heading(what, command, logs):
    sha, size = blob_key()
    commit, date = measured_at(logs)
    return (
        f"## Current: {what}\n\n"
        f"Shipped blob `models/shipped.blob` sha256 `{sha}` ({size:,} B); commit `{commit}`; "
        f"{date}; rustc {sh('rustc', '--version').split(' ')[1] if sh('rustc', '--version') != '?' else '?'}.\n"
        f"Command: `{command}`.\n"
    )


def num(x):
    return f"{int(x):,}"


def must(pattern, text, what):
    m = re.search(pattern, text, re.M)
    if not m:
        sys.exit(f"current.py: no {what} in the log (pattern {pattern!r})")
    return m


def eval_row(line):
    """Fields of a `device::EvalReport` line."""
    m = must(
        r"(\d+) images, logits bit-exact vs host: (\d+)/(\d+)(?:, device top-1 accuracy ([\d.]+) %)?"
        r", cost per inference (\d+) (\w*) \(min (\d+), max (\d+)\), stack high-water mark (\d+) B",
        line,
        "eval report",
    )
    return m.groups()


def firmware_table(log):
    m = must(r"^blob: (\S+) \((\d+) B\)", log, "blob line")
    blob_bytes = int(m.group(2))
    sizes = {
        name: (int(flash), int(code), int(ram))
        for name, flash, code, ram in re.findall(
            r"^(\S+)\s+flash\s+(\d+) B \(code\+rodata without the blob (\d+), blob \d+\)\s+static RAM\s+(\d+) B",
            log,
            re.M,
        )
    }
    arena = must(r"arena=(\d+) B", log, "arena").group(1)
    hwm = must(r"stack_hwm=(\d+) B of (\d+) B", log, "stack high-water mark")
    ev = eval_row(must(r"^eval: (.*)$", log, "eval line").group(1))
    n, exact, _, acc, mean, unit, lo, hi, eval_hwm = ev
    serve, nucleo = sizes.get("serve"), sizes.get("nucleo-f411re")
    m3, m0 = sizes.get("m3"), sizes.get("m0")

    def section_eval(title):
        # The first eval line of the section whose heading starts with `title`.
        m = re.search(rf"^== {title}[^\n]*\n(?:(?!== )[^\n]*\n)*?eval: ([^\n]*)$", log, re.M)
        return eval_row(m.group(1)) if m else None

    m3e, m0e = section_eval("Cortex-M3"), section_eval("ARMv6-M")

    def col(t, i):
        return f"{num(t[i])} B" if t else "-"

    def ev_cost(e):
        return f"{num(e[4])} ({num(e[6])}, {num(e[7])})" if e else "-"

    def ev_exact(e):
        return f"{e[1]}/{e[0]}" if e else "-"

    def ev_acc(e):
        return f"{e[3]} %" if e and e[3] else "-"

    rows = [
        "| figure | mps2-an386 (QEMU, Cortex-M4F) | mps2-an385 (QEMU, Cortex-M3: no FPU, no DSP) "
        "| mps2-an385, ARMv6-M build (Thumb-1, as a Cortex-M0/M0+) | nucleo-f411re (build only) |",
        "|---|---:|---:|---:|---:|",
        f"| flash: vector table + code + read-only data + blob | {col(serve, 0)} | {col(m3, 0)} | {col(m0, 0)} | {col(nucleo, 0)} |",
        f"| of which code and read-only data (flash minus blob) | {col(serve, 1)} | {col(m3, 1)} | {col(m0, 1)} | {col(nucleo, 1)} |",
        f"| of which the blob | {num(blob_bytes)} B | {num(blob_bytes)} B | {num(blob_bytes)} B | {num(blob_bytes)} B |",
        f"| static RAM (.data + .bss + .uninit) | {col(serve, 2)} | {col(m3, 2)} | {col(m0, 2)} | {col(nucleo, 2)} |",
        f"| of which the arena | {num(arena)} B | {num(arena)} B | {num(arena)} B | {num(arena)} B |",
        f"| stack high-water mark (smoke build) | {num(hwm.group(1))} B of {num(hwm.group(2))} B | | | |",
        f"| {unit} per inference, mean over {n} images (min, max) | {num(mean)} ({num(lo)}, {num(hi)}) "
        f"| {ev_cost(m3e)} | {ev_cost(m0e)} | |",
        f"| test images over the serial link: logits bit-exact vs host | {exact}/{n} | {ev_exact(m3e)} "
        f"| {ev_exact(m0e)} | |",
    ]
    if acc:
        rows.append(f"| top-1 on those images | {acc} % | {ev_acc(m3e)} | {ev_acc(m0e)} | |")
    if "ok: m3.elf (thumbv7m) and m0.elf (thumbv6m) link no" in log:
        rows.append("| soft-float routines linked (`llvm-nm`) | (FPU) | none | none | |")
    soak = re.search(
        r"^soak: SoakReport \{ frames: (\d+), good_ok: (\d+), bad_refused: (\d+), refusals: (\[.*?\]), "
        r"wrong: (\d+), accepted_bad: (\d+), hangs: (\d+).*?\} in ([\d.]+) s",
        log,
        re.M,
    )
    if soak:
        frames, good, refused, why, wrong, accepted, hangs, secs = soak.groups()
        rows.append(
            f"| soak, {num(frames)} frames, 1 % corrupted | {good} answered right, {refused} refused "
            f"{why}, {wrong} wrong, {accepted} bad accepted, {hangs} hangs ({secs} s) | | | |"
        )
    return "\n".join(rows) + "\n"


def models_table(log):
    acc = must(
        r"^2\. (\S+) on the shared kernels: ([\d.]+) % test top-1 \((\d+) / (\d+)\), manifest (\d+) "
        r"\(([\d.]+) %\), float ([\d.]+) %",
        log,
        "accuracy line",
    )
    name, pct, correct, total, _, _, float_pct = acc.groups()
    with open(os.path.join(ROOT, "models", "MANIFEST.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    sizes = {e["name"]: e["bytes"] for e in manifest["files"]}
    parity = must(r"^3\. parity with tract:\n((?s:.*?))\n(?=4\. |shipped model OK)", log, "parity")
    device = re.search(r"^4\. firmware in QEMU \(mps2-an386\): (.*)$", log, re.M)
    gap = float(float_pct) - float(pct)
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| int8 test top-1, `shared` kernels, {num(total)} images | **{pct} %** ({num(correct)}) |",
        f"| float test top-1 (the trained network) | {float_pct} % ({gap:.2f} pt above int8) |",
        f"| `{name}` (what the firmware embeds: every conv on the zero-skipping driver) | {num(sizes[name])} B |",
    ]
    if "shipped.fast.blob" in sizes:
        rows.append(f"| `shipped.fast.blob` (same weights, stored for speed) | {num(sizes['shipped.fast.blob'])} B |")
    if device:
        n, exact, _, dacc, mean, unit, *_ = eval_row(device.group(1))
        rows.append(f"| firmware in QEMU: logits bit-exact on {n} test images | {exact}/{n} ({dacc} % top-1) |")
        rows.append(f"| firmware in QEMU: {unit} per inference, mean | {num(mean)} |")
    # The report's own headings sit under this section's "## Current" heading.
    report = re.sub(r"^(#+) ", r"###\1 ", parity.group(1).strip(), flags=re.M)
    out = "\n".join(rows) + "\n\nParity with tract (`sqz shipped`):\n\n" + report + "\n"
    return out


def shared_table(qemu_log, host_log):
    out = ""
    if qemu_log is not None:
        tables, layers, notes = [], [], []
        for line in qemu_log.splitlines():
            if line.startswith("|"):
                tables.append(line)
            elif line.startswith("    layer "):
                layers.append(line.strip())
            elif line.strip() == "" and tables and tables[-1] != "":
                tables.append("")
            elif line.startswith("  (from_bytes") and tables:
                # A note on the network row above it: listed under the table, not inside it.
                network = tables[-1].split("|")[1].strip()
                notes.append(f"* {network}: {line.strip()[1:-1]}")
        out += "Cortex-M4 in QEMU (`bash shared/qemu/bench.sh`, instructions by `-icount shift=0`):\n\n"
        out += "\n".join(tables).strip() + "\n"
        if notes:
            out += "\nLoading each network (`Model::from_bytes`, validation included) and its logits:\n\n"
            out += "\n".join(notes) + "\n"
        if layers:
            out += "\nThe shipped model layer by layer (instructions per observed tensor):\n\n```\n"
            out += "\n".join(layers) + "\n```\n"
    if host_log is not None:
        rows = re.findall(r"^(\S.*?)\s+time:\s+\[(\S+ \S+) (\S+ \S+) (\S+ \S+)\]", host_log, re.M)
        if rows:
            out += "\nHost, criterion (`cargo bench -p sqz-shared --bench kernels`, "
            out += "`cargo bench -p sqz-host --bench inference`), one thread:\n\n"
            out += "| benchmark | low | median | high |\n|---|---:|---:|---:|\n"
            out += "".join(f"| {n.strip()} | {a} | {b} | {c} |\n" for n, a, b, c in rows)
    return out


def train_table(summaries):
    rows = [
        "| batch | warm-up+repeats x steps | burn images/s | PyTorch contiguous | PyTorch channels_last "
        "| burn / best PyTorch | trainable params | machine | versions |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in sorted(summaries, key=lambda s: s["batch"]):
        rows.append(
            f"| {s['batch']} | {s['warmup']}+{s['repeats']}x{s['steps']} | {s['burn']:.1f} | "
            f"{s.get('contiguous', '-')} | {s.get('channels_last', '-')} | **{s['ratio']:.2f}x** | "
            f"{s['params']} | {s['machine']} | {s['versions']} |"
        )
    return "\n".join(rows) + "\n"


def replace_current(md_path, block):
    """Puts `block` between the markers; the block it replaces goes first under History."""
    with open(md_path, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit(f"current.py: {md_path} has no current-table markers")
    head, rest = text.split(BEGIN, 1)
    old, tail = rest.split(END, 1)
    old = old.strip()
    if old == block.strip():
        print(f"current.py: {os.path.relpath(md_path, ROOT)} already current")
        return
    if old and old.split("\n", 1)[0].startswith("## Current"):
        old = "### Was current: " + old[len("## Current: "):]
        if HISTORY in tail:
            before, after = tail.split(HISTORY, 1)
            tail = before + HISTORY + "\n\n" + old + "\n" + after
        else:
            tail = tail.rstrip() + "\n\n" + HISTORY + "\n\n" + old + "\n"
    text = head + BEGIN + "\n" + block.strip() + "\n" + END + tail
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"current.py: wrote the current table of {os.path.relpath(md_path, ROOT)}")


def read(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    logs = sys.argv[1]
    shipped = read(os.path.join(logs, "shipped.txt"))
    if shipped is not None:
        block = heading("the shipped model", "bash .ci/main", logs) + "\n" + models_table(shipped)
        replace_current(os.path.join(ROOT, "models", "BENCHMARKS.md"), block)
    firmware = read(os.path.join(logs, "firmware.txt"))
    if firmware is not None:
        block = heading("firmware on the shipped model", "bash firmware/ci.sh", logs)
        replace_current(os.path.join(ROOT, "firmware", "BENCHMARKS.md"), block + "\n" + firmware_table(firmware))
    qemu = read(os.path.join(logs, "shared-qemu.txt"))
    host = read(os.path.join(logs, "shared-host.txt"))
    if qemu is not None or host is not None:
        block = heading(
            "kernels and whole networks",
            "bash tests/bench/current.sh (shared/qemu/bench.sh, cargo bench)",
            logs,
        )
        replace_current(os.path.join(ROOT, "shared", "BENCHMARKS.md"), block + "\n" + shared_table(qemu, host))
    summaries = []
    for path in sorted(glob.glob(os.path.join(logs, "train-*.json"))):
        with open(path, encoding="utf-8") as f:
            summaries.append(json.load(f))
    if summaries:
        block = heading("training throughput, burn vs PyTorch", "bash tests/bench/train_throughput.sh --batch B", logs)
        replace_current(os.path.join(ROOT, "tests", "bench", "BENCHMARKS.md"), block + "\n" + train_table(summaries))


if __name__ == "__main__":
    main()
