"""attnrank.train: in-process training, its output, and the same run as the CLI's."""
import json
import os
import threading
import time

import pytest

import attnrank
from conftest import TINY, tiny, write_yaml


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_train_writes_the_same_run_as_the_cli(cli_run, tmp_path, capsys):
    run = attnrank.train(TINY, out=tmp_path / "py")
    assert isinstance(run, attnrank.Run) and run.status == "done"
    # Same config, seed and thread count: bit-identical curve, checkpoint and config.
    for name in ("metrics.csv", "model.safetensors", "config.yaml"):
        assert read(os.path.join(run.path, name)) == read(os.path.join(cli_run, name)), name
    ours, theirs = run.summary, json.load(open(os.path.join(cli_run, "summary.json")))
    assert ours["test_mse"] == theirs["test_mse"] and ours["steps"] == 120
    out = capsys.readouterr().out
    # Not a terminal: one line per log_every steps, then the CLI's final line.
    assert out.count("\n[") + out.startswith("[") == 3 and "[120/120] loss" in out
    assert out.strip().splitlines()[-1].startswith("done: 120 steps, test_mse ")


def test_config_as_path_dotted_dict_and_overrides(tmp_path):
    path = write_yaml(str(tmp_path / "c.yaml"), TINY)
    a = attnrank.train(path, out=tmp_path / "a", overrides=["model.heads=1"], quiet=True)
    flat = {"%s.%s" % (s, k): v for s, values in TINY.items() for k, v in values.items()}
    flat["model.heads"] = 1
    b = attnrank.train(flat, out=tmp_path / "b", quiet=True)
    assert a.config == b.config and a.config["model"]["rank"] == 4
    assert read(a.path + "/model.safetensors") == read(b.path + "/model.safetensors")


def test_progress_bar_and_quiet(tmp_path, capsys):
    attnrank.train(TINY, out=tmp_path / "bar", progress=True)
    out = capsys.readouterr().out
    assert "\r[" in out and "/120" in out and "ETA" in out
    attnrank.train(TINY, out=tmp_path / "quiet", quiet=True)
    assert capsys.readouterr() == ("", "")


def test_bad_input_raises_clear_exceptions(tmp_path):
    with pytest.raises(attnrank.ConfigError, match=r"^config: model.rnak: unknown key \(did you "
                       r"mean 'model.rank'\?\)$"):
        attnrank.train({"model": {"rnak": 2}}, out=tmp_path / "x")
    with pytest.raises(ValueError, match=r"override 'model.heads=3': .*"):
        attnrank.train(TINY, out=tmp_path / "x", overrides=["model.heads=3"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        attnrank.train(tmp_path / "missing.yaml", out=tmp_path / "x")
    with pytest.raises(ValueError, match="NaN and infinity"):
        attnrank.train(tiny(train={"lr": float("nan")}), out=tmp_path / "x")
    with pytest.raises(TypeError, match="out="):
        attnrank.train(TINY)
    with pytest.raises(TypeError, match="config: expected a dict"):
        attnrank.train(42, out=tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot create directory"):
        attnrank.train(TINY, out=tmp_path / "file" / "run", quiet=True)
    assert not (tmp_path / "x").exists()


def test_diverged_run_returns_its_run(tmp_path, capsys):
    run = attnrank.train(tiny(train={"lr": 1e30}), out=tmp_path / "d")
    assert run.status == "diverged"
    assert "diverged" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(run.path, "model.safetensors"))


def test_gil_is_released_while_training(tmp_path):
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    thread = threading.Thread(target=tick)
    thread.start()
    start = time.perf_counter()
    attnrank.train(tiny(train={"steps": 15000, "log_every": 5000}), out=tmp_path / "g",
                   quiet=True)
    end = time.perf_counter()
    stop.set()
    thread.join()
    during = [t for t in ticks if start < t < end]
    # The other thread kept running: about one tick per 5 ms of training.
    assert end - start > 0.1 and len(during) >= 0.3 * (end - start) / 0.005
