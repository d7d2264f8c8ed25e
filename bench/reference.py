#!/usr/bin/env python3
"""One command for the throughput comparison of issue "Training throughput":
runs every reference configuration through `attnrank train` and through the
PyTorch peer (bench/torch_peer.py) on this machine, in this run, and prints a
Markdown table: attnrank ms/step, PyTorch ms/step, speed-up, GFLOP/s, % of the
SGEMM peak (measured here by build/release/sgemm_peak), peak RSS and what the run
needs (parameters, gradients, AdamW moments, activations).

Usage (Debian's interpreter, which has torch):
  /usr/bin/python3 bench/reference.py [--threads 2] [--steps 20] [--repeats 3]
                                     [--write docs/performance.md]

The machine this project runs on is shared, and a single measurement can be off
by 50% when a neighbour is busy: each configuration is measured --repeats times,
alternating attnrank and PyTorch, and the fastest run of each is reported (the
same rule for both).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "release", "attnrank")
PEAK = os.path.join(ROOT, "build", "release", "bench", "sgemm_peak")

# (layers, heads, rank, width multiplier): d = 64, N = 16, farthest, ffn 2048,
# batch 256, post-norm sphere norm, biases, AdamW.
CONFIGS = [
    (1, 1, 64, 1),
    (1, 8, 8, 1),
    (1, 1, 64, 8),
    (1, 8, 8, 8),
    (1, 2, 32, 64),
    (3, 4, 16, 8),
]


def run_attnrank(layers, heads, rank, modules, threads, steps):
    with tempfile.TemporaryDirectory() as out:
        command = [BINARY, "train", "--quiet", f"model.layers={layers}", f"model.heads={heads}",
                   f"model.rank={rank}", f"model.width_multiplier={modules}",
                   f"train.threads={threads}", f"train.steps={steps}", "train.log_every=1000",
                   "train.eval_batches=1", "--out", out]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)


def run_torch(layers, heads, modules, threads, steps):
    command = ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_peer.py"),
               f"--layers={layers}", f"--heads={heads}", f"--width-multiplier={modules}",
               f"--threads={threads}", f"--steps={steps}"]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="attnrank steps per config")
    parser.add_argument("--torch-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements per configuration and engine; the fastest counts")
    parser.add_argument("--write", help="also write this Markdown file (docs/performance.md)")
    args = parser.parse_args()
    for path in (BINARY, PEAK):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: build with `cmake --preset release && cmake --build --preset release`")

    peak = json.loads(subprocess.run([PEAK, str(args.threads)], check=True, capture_output=True,
                                     text=True).stdout)["sgemm_peak_gflops"]
    header = ("| # | L | H | r | c | attnrank ms/step | PyTorch ms/step | speed-up | GFLOP/step "
              "| GFLOP/s | % SGEMM peak | peak RSS MB | needed MB | PyTorch RSS MB |")
    lines = [header, "|" + "---|" * 14]
    for index, (layers, heads, rank, modules) in enumerate(CONFIGS, 1):
        ours_runs, theirs_runs = [], []
        for _ in range(max(1, args.repeats)):
            ours_runs.append(run_attnrank(layers, heads, rank, modules, args.threads, args.steps))
            theirs_runs.append(run_torch(layers, heads, modules, args.threads, args.torch_steps))
        ours = min(ours_runs, key=lambda run: run["ms_per_step"])
        theirs = min(theirs_runs, key=lambda run: run["ms_per_step"])
        gflops = ours["gflops_per_second"]
        row = (f"| {index} | {layers} | {heads} | {rank} | {modules} | {ours['ms_per_step']:.1f} "
               f"| {theirs['ms_per_step']:.1f} | {theirs['ms_per_step'] / ours['ms_per_step']:.2f}x "
               f"| {ours['gflop_per_step']:.2f} | {gflops:.1f} | {100 * gflops / peak:.0f}% "
               f"| {ours['peak_rss_mb']:.0f} | {ours['model_memory_mb']:.0f} "
               f"| {theirs['peak_rss_mb']:.0f} |")
        lines.append(row)
        print(row if index > 1 else "\n".join(lines), flush=True)
    machine = (f"{cpu_name()}, {os.cpu_count()} cores visible, {args.threads} threads; "
               f"SGEMM peak (OpenBLAS, large square) {peak:.1f} GFLOP/s; "
               f"fastest of {max(1, args.repeats)} measurements per engine and configuration; "
               f"{datetime.date.today().isoformat()}")
    print(f"\nmachine: {machine}")
    if args.write:
        table = (f"Machine: {machine}.\n\n" + "\n".join(lines) + "\n")
        begin, end = "<!-- reference table -->\n", "<!-- end of reference table -->\n"
        text = open(args.write).read() if os.path.exists(args.write) else ""
        if begin in text and end in text:
            text = text[:text.index(begin) + len(begin)] + table + text[text.index(end):]
        else:
            text += "\n" + begin + table + end
        with open(args.write, "w") as f:
            f.write(text)

if __name__ == "__main__":
    main()
