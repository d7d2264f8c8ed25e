"""Ctrl-C during attnrank.train: KeyboardInterrupt, promptly, and a valid run directory."""
import json
import os
import subprocess
import sys
import textwrap

import attnrank
from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import attnrank
    out = sys.argv[1]
    config = {"model": {"dim": 8, "heads": 2, "ffn": 32}, "task": {"points": 4},
              "train": {"steps": 10000000, "batch": 32, "log_every": 200}}
    # SIGINT to this process once training has started, as Ctrl-C would send it.
    def interrupt():
        while not os.path.exists(os.path.join(out, "metrics.csv")):
            time.sleep(0.01)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    start = time.perf_counter()
    try:
        attnrank.train(config, out=out)
    except KeyboardInterrupt:
        print("KeyboardInterrupt after %.2f s" % (time.perf_counter() - start))
        sys.exit(0)
    print("not interrupted")
    sys.exit(1)
""")


def test_keyboard_interrupt_stops_cleanly(tmp_path, binary):
    out = str(tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    result = subprocess.run([sys.executable, "-c", SCRIPT, out], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    seconds = float(result.stdout.split("KeyboardInterrupt after ")[1].split()[0])
    assert seconds < 10, "the stop took too long"  # 10M steps would take hours
    assert "status interrupted" in result.stderr

    # A complete run directory: summary, metrics so far, a loadable checkpoint.
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 10000000
    assert summary["test_mse"] is None  # no held-out evaluation after a stop
    run = attnrank.Run(out)
    assert run.status == "interrupted"
    metrics = run.metrics
    assert list(metrics) == ["step", "train_loss", "lr", "grad_norm"]
    # Rows every 200 steps, then one for the steps since the last row.
    steps = list(metrics["step"])
    assert steps[-1] == summary["steps"] and len(steps) >= 2
    model = run.model
    x, y = model.training_batch(4)
    assert model.forward(x).shape == (4, 4, 8)
    # The C++ binary reads it too.
    evaluation = subprocess.run([binary, "eval", "--checkpoint", out], capture_output=True,
                                text=True, check=True)
    assert evaluation.stdout.startswith("test_mse ")
