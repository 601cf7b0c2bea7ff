#!/usr/bin/env python3
"""PyTorch twin of host/benches/train_throughput.rs: training images/s of the SAME network.

Install (PyTorch from PyPI; the default Linux wheel also pulls the CUDA runtime wheels, about
3 GB in all; only the CPU is used here):

    pip install torch            # measured with torch 2.15.0 (CPython 3.11, x86_64)

Run:

    python3 tests/bench/pytorch_train.py [--warmup 3] [--steps 10] [--repeats 3] [--batch 64]
                                         [--threads 2] [--layout both|contiguous|channels_last]
                                         [--json FILE]

The network mirrors host::model::SqueezeNetConfig::fashion_mnist() exactly (checked by its
parameter count, printed and put in the JSON): v1.1 fires from base_e=128, incr_e=128, freq=2,
pct_3x3=0.5, SR=0.125; 3x3/1 pad 1 stem with 64 channels; BatchNorm (eps 1e-5, momentum 0.1)
after every conv but the classifier, those convs without bias; ReLU after stem, squeeze,
expand1, expand3; 3x3/2 ceil-mode max pools after the stem, fire index 1 and fire index 3;
dropout 0.2, classifier conv 1x1 512 -> 10 with bias, ReLU, global average pool.

One step, as in host/src/train/run.rs: forward, cross-entropy with label smoothing 0.1, backward,
AdamW (lr 0.004, weight decay 0.02, eps 1e-8, betas 0.9/0.999) step, reading the loss back.
Inputs are uniform random 1x28x28 images with random labels, made before timing.

Prints images/s per repeat and the median per memory layout, then one JSON line per layout;
the last JSON line is the faster layout, marked "best": true.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The default recipe (host::train::TrainConfig::preset(Preset::Default)).
LR = 0.004
WEIGHT_DECAY = 0.02
LABEL_SMOOTHING = 0.1
POOL = 4  # distinct random batches cycled through, as in the Rust bench


def rust_round(x: float) -> int:
    """f64::round: half away from zero (Python's round() is half to even)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def fire_widths(stem_out=64, base_e=128, incr_e=128, freq=2, pct_3x3=0.5, sr=0.125):
    """(input, squeeze, expand1, expand3) of fire2..fire9, as host::model::Metaparams::fires."""
    out, cin = [], stem_out
    for i in range(8):
        e = base_e + incr_e * (i // max(freq, 1))
        e3 = rust_round(e * pct_3x3)
        s = max(rust_round(e * sr), 1)
        out.append((cin, s, e - e3, e3))
        cin = e
    return out


def conv_bn(cin, cout, k, pad):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, bias=False), nn.BatchNorm2d(cout))


class Fire(nn.Module):
    def __init__(self, cin, s, e1, e3):
        super().__init__()
        self.squeeze = conv_bn(cin, s, 1, 0)
        self.expand1 = conv_bn(s, e1, 1, 0)
        self.expand3 = conv_bn(s, e3, 3, 1)

    def forward(self, x):
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1(s)), F.relu(self.expand3(s))], 1)


class SqueezeNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, dropout=0.2, pools_after=(1, 3)):
        super().__init__()
        self.stem = conv_bn(in_channels, 64, 3, 1)
        widths = fire_widths(64)
        self.fires = nn.ModuleList(Fire(*w) for w in widths)
        self.pools_after = set(pools_after)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(widths[-1][2] + widths[-1][3], num_classes, 1)

    @staticmethod
    def pool(x):
        return F.max_pool2d(x, 3, 2, ceil_mode=True)

    def forward(self, x):
        x = self.pool(F.relu(self.stem(x)))
        for i, fire in enumerate(self.fires):
            x = fire(x)
            if i in self.pools_after:
                x = self.pool(x)
        x = F.relu(self.classifier(self.dropout(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def measure(args, channels_last):
    torch.manual_seed(args.seed)
    model = SqueezeNet()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                              weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    g = torch.Generator().manual_seed(args.seed)
    batches = []
    for _ in range(POOL):
        x = torch.rand(args.batch, 1, 28, 28, generator=g)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batches.append((x, torch.randint(0, 10, (args.batch,), generator=g)))

    def step(i):
        x, y = batches[i % POOL]
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        value = loss.item()
        loss.backward()
        optim.step()
        return value

    i, loss = 0, float("nan")
    for _ in range(args.warmup):
        loss = step(i)
        i += 1
    rates = []
    name = "channels_last" if channels_last else "contiguous"
    for r in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step(i)
            i += 1
        secs = time.perf_counter() - t0
        rates.append(args.steps * args.batch / secs)
        print(f"  {name} repeat {r + 1}/{args.repeats}: {rates[-1]:.1f} images/s "
              f"({1e3 * secs / args.steps:.1f} ms/step)", file=sys.stderr)
    if not math.isfinite(loss):
        sys.exit(f"pytorch_train: loss is {loss}; the measured steps diverged")
    return {
        "impl": "pytorch",
        "variant": name,
        "batch": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
        "repeats": args.repeats,
        "images_per_s": statistics.median(rates),
        "images_per_s_repeats": rates,
        "params": num_params(model),
        "final_loss": loss,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "logical_cpus": os.cpu_count(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--layout", choices=["both", "contiguous", "channels_last"], default="both")
    p.add_argument("--json", help="also append the JSON lines to this file")
    args = p.parse_args()
    if min(args.steps, args.repeats, args.batch) < 1 or args.warmup < 0:
        p.error("--steps, --repeats and --batch must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, SqueezeNet "
          f"fashion_mnist twin, {num_params(SqueezeNet())} parameters, batch {args.batch}, "
          f"{args.warmup} warm-up + {args.repeats} x {args.steps} timed steps", file=sys.stderr)
    layouts = {"both": [False, True], "contiguous": [False], "channels_last": [True]}[args.layout]
    results = [measure(args, cl) for cl in layouts]
    best = max(results, key=lambda r: r["images_per_s"])
    for r in results:
        print(f"pytorch ({r['variant']}): {r['images_per_s']:.1f} images/s median at batch "
              f"{r['batch']} ({r['params']} parameters)")
    lines = [json.dumps({**r, "best": False}) for r in results if r is not best]
    lines.append(json.dumps({**best, "best": True}))
    print("\n".join(lines))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
