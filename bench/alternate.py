#!/usr/bin/env python3
"""A/B of attnrank binaries on whole training steps, without PyTorch: each
configuration runs through every binary in turn, --rounds times, and the min and
median ms/step (summary.json's median step after warm-up) of each binary are printed.
Alternating the binaries spreads a busy neighbour's slow moments over all of them.

Usage:
  python3 bench/alternate.py [--rounds 5] [--steps 200] [--threads 2]
      [--configs "lm 2 1 32 1;small 2 16 1 4"] BINARY...
e.g. build/start/attnrank build/release/attnrank (the first is the base).

A configuration is "FAMILY L H r c", FAMILY one of lm (the heads-lm shapes of
bench/reference.py), small (the small presets) or reference. The process keeps the
environment it is given (OPENBLAS_CORETYPE included).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

FAMILIES = {
    "reference": dict(dim=64, points=16, ffn=2048, batch=256),
    "small": dict(dim=16, points=8, ffn=64, batch=128),
    "lm": dict(dim=32, points=32, ffn=128, batch=32),
}
DEFAULT_CONFIGS = "lm 2 1 32 1;lm 2 4 8 1;lm 2 16 32 1;small 2 1 16 4;small 2 16 1 4"


def ms_per_step(binary, family, layers, heads, rank, multiplier, steps, threads):
    shape = FAMILIES[family]
    if family == "lm":
        task = ["task.name=lm", f"task.length={shape['points']}", "model.norm=layer",
                "model.norm_first=true", "model.positional=additive"]
    else:
        task = [f"task.points={shape['points']}"]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, "train", "--quiet", f"model.dim={shape['dim']}", *task,
                        f"model.ffn={shape['ffn']}", f"train.batch={shape['batch']}",
                        f"model.layers={layers}", f"model.heads={heads}", f"model.rank={rank}",
                        f"model.width_multiplier={multiplier}", f"train.threads={threads}",
                        f"train.steps={steps}", "train.log_every=1000000",
                        "train.eval_batches=1", "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "summary.json")) as summary:
            return json.load(summary)["ms_per_step"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    args = parser.parse_args()
    for config in args.configs.split(";"):
        fields = config.split()
        if len(fields) != 5 or fields[0] not in FAMILIES:
            sys.exit(f"alternate.py: bad configuration '{config}' (want 'FAMILY L H r c', "
                     f"FAMILY one of {', '.join(FAMILIES)})")
        family, numbers = fields[0], [int(value) for value in fields[1:]]
        times = {binary: [] for binary in args.binaries}
        for _ in range(args.rounds):
            for binary in args.binaries:
                times[binary].append(ms_per_step(binary, family, *numbers, args.steps,
                                                 args.threads))
        cells = [f"{binary} {min(t):.3f}/{statistics.median(t):.3f}"
                 for binary, t in times.items()]
        print(f"{config}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
