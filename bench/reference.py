#!/usr/bin/env python3
"""One command for the throughput comparison: runs every reference configuration
through `attnrank train` (one or more builds side by side, e.g. the release and the
-march=native build) and through the PyTorch peer (bench/torch_peer.py) on this machine,
in this run, and prints a Markdown table: ms/step of each build, PyTorch ms/step,
speed-ups, GFLOP/s, % of the SGEMM peak (measured here by sgemm_peak), peak RSS
and what the run needs (parameters, gradients, AdamW moments, activations).

The peak is probed before the first configuration and again after each one, and the
table divides by the highest probe: on a shared machine a single probe taken in a
slow moment understates the peak (one read 261 GFLOP/s where the day's others read
348-404), and every % of peak with it.

Usage (Debian's interpreter, which has torch):
  /usr/bin/python3 bench/reference.py [--threads 2] [--steps 20] [--repeats 3]
      [--builds release native] [--family reference|small|heads-lm] [--isa avx2]
      [--openblas-auto] [--write docs/performance.md --section NAME]

--isa caps every engine at one instruction set on a CPU that has more: attnrank's
kernels (ATTNRANK_ISA), OpenBLAS (OPENBLAS_CORETYPE) and PyTorch's ATen kernels
(ATEN_CPU_CAPABILITY); `--isa avx2` on an AVX-512 machine measures what an AVX2
machine of the same core would do, apart from clock and cache differences.

The machine this project runs on is shared, and a single measurement can be off
by 50% when a neighbour is busy: each configuration is measured --repeats times,
alternating the engines, and the fastest run of each is reported (the same rule
for all).
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

# The published model: d = 64, N = 16, farthest, ffn 2048, batch 256, post-norm
# sphere norm, biases, AdamW. Rows: (layers, heads, rank, width multiplier).
REFERENCE = dict(dim=64, points=16, ffn=2048, batch=256)
REFERENCE_CONFIGS = [
    (1, 1, 64, 1),
    (1, 8, 8, 1),
    (1, 1, 64, 8),
    (1, 8, 8, 8),
    (1, 2, 32, 64),
    (3, 4, 16, 8),
]
# The fig1-small preset: d = 16, N = 8, ffn 64, batch 128, L = 2, c = 4, r = d/H.
SMALL = dict(dim=16, points=8, ffn=64, batch=128)
SMALL_CONFIGS = [(2, 1, 16, 4), (2, 4, 4, 4), (2, 16, 1, 4)]
# The heads-lm-small preset: causal byte LM, d = 32, N = 32, ffn 128, batch 32,
# L = 2, pre-norm LayerNorm, additive positions; H in {1, 4, 16} with the standard
# head size r = d/H and the fixed one r = N = 32 (H = 1 is the same model in both).
HEADS_LM = dict(dim=32, points=32, ffn=128, batch=32, task="lm")
HEADS_LM_CONFIGS = [(2, 1, 32, 1), (2, 4, 8, 1), (2, 16, 2, 1), (2, 4, 32, 1), (2, 16, 32, 1)]
FAMILIES = {"reference": (REFERENCE, REFERENCE_CONFIGS), "small": (SMALL, SMALL_CONFIGS),
            "heads-lm": (HEADS_LM, HEADS_LM_CONFIGS)}

# Environment variables that cap each engine at one instruction set.
ISA_CAPS = {
    "avx2": {"ATTNRANK_ISA": "avx2", "OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2"},
    "sse2": {"ATTNRANK_ISA": "sse2", "OPENBLAS_CORETYPE": "Prescott", "ATEN_CPU_CAPABILITY": "default"},
}


def ms_cell(ms):
    """ms/step with three significant digits for the small presets' ~1 ms steps."""
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def run_attnrank(binary, shape, layers, heads, rank, modules, threads, steps, env):
    if shape.get("task") == "lm":
        task = ["task.name=lm", f"task.length={shape['points']}", "model.norm=layer",
                "model.norm_first=true", "model.positional=additive"]
    else:
        task = [f"task.points={shape['points']}"]
    with tempfile.TemporaryDirectory() as out:
        command = [binary, "train", "--quiet", f"model.dim={shape['dim']}", *task,
                   f"model.ffn={shape['ffn']}",
                   f"train.batch={shape['batch']}", f"model.layers={layers}",
                   f"model.heads={heads}", f"model.rank={rank}",
                   f"model.width_multiplier={modules}", f"train.threads={threads}",
                   f"train.steps={steps}", "train.log_every=1000", "train.eval_batches=1",
                   "--out", out]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)


def run_torch(shape, layers, heads, rank, modules, threads, steps, env):
    task = ([f"--task=lm", f"--rank={rank}"] if shape.get("task") == "lm" else [])
    command = ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_peer.py"), *task,
               f"--layers={layers}", f"--heads={heads}", f"--width-multiplier={modules}",
               f"--dim={shape['dim']}", f"--points={shape['points']}", f"--ffn={shape['ffn']}",
               f"--batch={shape['batch']}", f"--threads={threads}", f"--steps={steps}"]
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def isa_flags():
    flags = open("/proc/cpuinfo").read().split()
    return "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def openblas_core(binary, env):
    """The SGEMM kernel OpenBLAS runs under env, as `attnrank info` reports it."""
    info = subprocess.run([binary, "info"], capture_output=True, text=True, env=env).stdout
    for line in info.splitlines():
        if line.startswith("blas:") and ", core " in line:
            return line.rsplit(", core ", 1)[1].strip()
    return "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="attnrank steps per config")
    parser.add_argument("--torch-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements per configuration and engine; the fastest counts")
    parser.add_argument("--builds", nargs="+", default=["release"],
                        help="build directories under build/ to compare (first is the base)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="reference")
    parser.add_argument("--isa", choices=sorted(ISA_CAPS), help="cap every engine at this ISA")
    parser.add_argument("--openblas-auto", action="store_true",
                        help="drop OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from the environment, so "
                             "OpenBLAS picks its kernel for this CPU as on a fresh machine (some "
                             "machines' environments pin them); --isa sets its own")
    parser.add_argument("--write", help="also write this Markdown file (docs/performance.md)")
    parser.add_argument("--section", default="reference table",
                        help="the marked section of --write that the table replaces")
    args = parser.parse_args()
    binaries = [os.path.join(ROOT, "build", build, "attnrank") for build in args.builds]
    peak_binary = os.path.join(ROOT, "build", args.builds[0], "bench", "sgemm_peak")
    for path in binaries + [peak_binary]:
        if not os.path.exists(path):
            sys.exit(f"missing {path}: build with `cmake --preset NAME && cmake --build --preset NAME`")
    env = dict(os.environ)
    if args.openblas_auto:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    if args.isa:
        env.update(ISA_CAPS[args.isa])
    blas_core = openblas_core(binaries[0], env)
    shape, configs = FAMILIES[args.family]

    def probe_peak():
        return json.loads(subprocess.run([peak_binary, str(args.threads)], check=True,
                                         capture_output=True, text=True,
                                         env=env).stdout)["sgemm_peak_gflops"]

    probes = [probe_peak()]
    base = args.builds[0]
    columns = ["#", "L", "H", "r", "c"] + [f"{build} ms/step" for build in args.builds]
    columns += [f"{build}/{base}" for build in args.builds[1:]]
    columns += ["PyTorch ms/step"] + [f"speed-up {build}" for build in args.builds]
    columns += ["GFLOP/step", "GFLOP/s", "% SGEMM peak", "peak RSS MB", "needed MB",
                "PyTorch RSS MB"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    isas = set()
    rows = []  # (cells before the % column, GFLOP/s, cells after it)
    for index, (layers, heads, rank, modules) in enumerate(configs, 1):
        runs = [[] for _ in binaries]
        theirs_runs = []
        for _ in range(max(1, args.repeats)):
            for build_runs, binary in zip(runs, binaries):
                build_runs.append(run_attnrank(binary, shape, layers, heads, rank, modules,
                                               args.threads, args.steps, env))
            theirs_runs.append(run_torch(shape, layers, heads, rank, modules, args.threads,
                                         args.torch_steps, env))
        best = [min(build_runs, key=lambda run: run["ms_per_step"]) for build_runs in runs]
        isas.update(run.get("kernel_isa", "?") for run in best)
        theirs = min(theirs_runs, key=lambda run: run["ms_per_step"])
        ours = best[0]
        gflops = ours["gflops_per_second"]
        cells = [str(index), str(layers), str(heads), str(rank), str(modules)]
        cells += [ms_cell(run['ms_per_step']) for run in best]
        cells += [f"{run['ms_per_step'] / ours['ms_per_step']:.2f}" for run in best[1:]]
        cells += [ms_cell(theirs['ms_per_step'])]
        cells += [f"{theirs['ms_per_step'] / run['ms_per_step']:.2f}x" for run in best]
        cells += [f"{ours['gflop_per_step']:.3f}", f"{gflops:.1f}"]
        after = [f"{ours['peak_rss_mb']:.0f}", f"{ours['model_memory_mb']:.0f}",
                 f"{theirs['peak_rss_mb']:.0f}"]
        rows.append((cells, gflops, after))
        probes.append(probe_peak())
        print(f"configuration {index}: " + ", ".join(
            f"{name} {cell}" for name, cell in zip(columns[5:], cells[5:])) +
            f"; SGEMM peak probe {probes[-1]:.1f} GFLOP/s", flush=True)
    peak = max(probes)
    for cells, gflops, after in rows:
        lines.append("| " + " | ".join(cells + [f"{100 * gflops / peak:.0f}%"] + after) + " |")
    print("\n".join(lines))
    cap = f"every engine capped at {args.isa} ({', '.join(f'{k}={v}' for k, v in ISA_CAPS[args.isa].items())})" if args.isa else "no ISA cap"
    machine = (f"{cpu_name()} ({isa_flags()}), {os.cpu_count()} cores visible, {args.threads} threads; "
               f"attnrank kernels {', '.join(sorted(isas))}; OpenBLAS core {blas_core}"
               f"{' (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE dropped)' if args.openblas_auto else ''}; {cap}; builds {', '.join(args.builds)}; "
               f"{args.family} configurations ({', '.join(f'{k} {v}' for k, v in shape.items() if k != 'task')}); "
               f"SGEMM peak (OpenBLAS, large square) {peak:.1f} GFLOP/s, the highest of "
               f"{len(probes)} probes ({min(probes):.1f}-{peak:.1f}) before and between the configurations; "
               f"fastest of {max(1, args.repeats)} measurements per engine and configuration; "
               f"{datetime.date.today().isoformat()}")
    print(f"\nmachine: {machine}")
    if args.write:
        table = (f"Machine: {machine}.\n\n" + "\n".join(lines) + "\n")
        begin, end = f"<!-- {args.section} -->\n", f"<!-- end of {args.section} -->\n"
        text = open(args.write).read() if os.path.exists(args.write) else ""
        if begin in text and end in text:
            text = text[:text.index(begin) + len(begin)] + table + text[text.index(end):]
        else:
            text += "\n" + begin + table + end
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
