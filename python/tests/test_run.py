"""attnrank.Run: config, summary, metrics, icl_curve; pandas or plain Python."""
import math

import pytest

import attnrank
import attnrank.run

PANDAS = attnrank.run._pandas()  # the tables are DataFrames with pandas, else dicts of lists
from conftest import tiny


@pytest.fixture(scope="module")
def icl_run(tmp_path_factory):
    config = tiny(model={"dim": 8, "heads": 2, "positional": "additive"},
                  task={"name": "icl-linear", "features": 3, "examples": 4, "noise": 0.1})
    return attnrank.train(config, out=tmp_path_factory.mktemp("icl") / "run", quiet=True)


def test_run_of_the_cli(cli_run):
    run = attnrank.Run(cli_run)
    assert run.config["model"] == dict(run.config["model"], dim=4, heads=2, rank=2, value_rank=2)
    assert isinstance(run.config["train"]["lr"], float)
    assert isinstance(run.config["model"]["bias"], bool)
    assert run.config["train"]["betas"] == [0.9, 0.95]
    summary = run.summary
    assert isinstance(summary, PANDAS.Series if PANDAS else dict) and summary["status"] == "done"
    assert summary["steps"] == 120 and 0 < summary["test_mse"] < 2
    metrics = run.metrics
    assert isinstance(metrics, PANDAS.DataFrame if PANDAS else dict)
    assert list(metrics["step"]) == [40, 80, 120]
    assert run.icl_curve is None and "status=done" in repr(run)


def test_icl_curve(icl_run):
    curve = icl_run.icl_curve
    assert list(curve) == ["examples", "model_mse", "least_squares_mse",
                                   "least_squares_expected"]
    assert list(curve["examples"]) == [0, 1, 2, 3, 4]
    # With noise the closed form diverges at m - 1 .. m + 1 examples (m = 3 features).
    assert math.isinf(curve["least_squares_expected"][3])
    assert curve["least_squares_expected"][1] == pytest.approx((3 - 1 + 0.01 * (1 + 1 / 1)) / 3)
    assert icl_run.summary["test_mse_query"] > 0


def test_plain_python_without_pandas(cli_run, icl_run, monkeypatch):
    monkeypatch.setattr(attnrank.run, "_pandas", lambda: None)
    run = attnrank.Run(cli_run)
    assert isinstance(run.summary, dict) and run.summary["status"] == "done"
    metrics = run.metrics
    assert metrics["step"] == [40, 80, 120] and all(isinstance(v, float)
                                                    for v in metrics["train_loss"])
    curve = icl_run.icl_curve
    assert curve["examples"] == [0, 1, 2, 3, 4] and math.isinf(curve["least_squares_expected"][3])


def test_missing_or_unfinished(tmp_path):
    with pytest.raises(FileNotFoundError, match="run: no such directory"):
        attnrank.Run(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="run: missing .*config.yaml"):
        attnrank.Run(tmp_path)
    (tmp_path / "config.yaml").write_text("model:\n  dim: 8\n")
    run = attnrank.Run(tmp_path)
    assert run.summary is None and run.status is None and run.config["model"]["dim"] == 8
    (tmp_path / "config.yaml").write_text("model:\n  dmi: 8\n")
    with pytest.raises(attnrank.ConfigError, match="model.dmi: unknown key"):
        run.config


@pytest.mark.parametrize("pandas", [True, False])
def test_validation_columns(tmp_path, monkeypatch, pandas):
    # train.eval_every = 80: rows at 40, 80, 120; held-out evaluations at 80 and the last step.
    if not pandas:
        monkeypatch.setattr(attnrank.run, "_pandas", lambda: None)
    run = attnrank.train(tiny(train={"eval_every": 80}), out=tmp_path / "run", quiet=True)
    assert run.config["train"]["eval_every"] == 80
    metrics = run.metrics
    assert list(metrics) == ["step", "train_loss", "lr", "grad_norm", "validation_mse"]
    held_out = list(metrics["validation_mse"])
    assert math.isnan(held_out[0]) and all(0 < value < 2 for value in held_out[1:])
    # A validation set of its own: the last evaluation is not the test MSE.
    assert held_out[2] != run.summary["test_mse"] and run.summary["ms_per_validation"] >= 0
    if pandas and PANDAS:
        assert metrics["validation_mse"].isna().tolist() == [True, False, False]
