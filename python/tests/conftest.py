"""Shared fixtures. The suite runs from the repository root as
    PYTHONPATH=python python3 -m pytest python/tests -q
(ctest's Python.Pytest does exactly that). ATTNRANK_BUILD_DIR picks the CMake build
whose native module is tested (default: build/release) and ATTNRANK_BINARY the
`attnrank` executable the results are compared with (default: that build's)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ATTNRANK_BUILD_DIR") or os.path.join(ROOT, "build", "release")
sys.path.insert(0, os.path.join(ROOT, "python"))

# The tiny model of configs/tiny.yaml, fewer steps: trains in milliseconds.
TINY = {"model": {"dim": 4, "heads": 2, "ffn": 16}, "task": {"points": 3},
        "train": {"steps": 120, "batch": 16, "lr": 0.01, "eval_batches": 2, "log_every": 40}}


def tiny(**sections):
    """TINY with some keys replaced: tiny(model={"heads": 1})."""
    config = {name: dict(values) for name, values in TINY.items()}
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("ATTNRANK_BINARY") or os.path.join(BUILD, "attnrank")
    assert os.path.isfile(path), "no attnrank binary at %s: build the project first" % path
    return path


def write_yaml(path, config):
    """A config dict as a YAML file (flow style: JSON is YAML)."""
    import json
    with open(path, "w") as f:
        for section, values in config.items():
            f.write("%s: %s\n" % (section, json.dumps(values)))
    return path


@pytest.fixture(scope="session")
def cli_run(binary, tmp_path_factory):
    """A run directory written by the C++ binary for TINY."""
    base = tmp_path_factory.mktemp("cli")
    config = write_yaml(str(base / "tiny.yaml"), TINY)
    out = str(base / "run")
    subprocess.run([binary, "train", "--config", config, "--out", out, "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="session")
def sweep_db(binary, tmp_path_factory):
    """A results database of 8 tiny runs: heads 1, 2 x lr 0.01, 1e30 (diverges) x 2 seeds."""
    base = tmp_path_factory.mktemp("sweep")
    write_yaml(str(base / "tiny.yaml"), tiny(train={"steps": 60}))
    with open(base / "spec.yaml", "w") as f:
        f.write("name: pytest\nbase_config: tiny.yaml\ngrid:\n  model.heads: [1, 2]\n"
                "  train.lr: [0.01, 1.0e+30]\n  train.seed: [0, 1]\n")
    db = str(base / "results.db")
    subprocess.run([binary, "sweep", str(base / "spec.yaml"), "--db", db, "--runs",
                    str(base / "runs"), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return db
