"""attnrank.Results against `attnrank results` on the same database."""
import csv
import io
import math
import os
import sqlite3
import subprocess

import numpy as np
import pytest

import attnrank
import attnrank.run

PANDAS = attnrank.run._pandas()  # the tables are DataFrames with pandas, else dicts of lists


def records(table):
    """The rows of a DataFrame or of a dict of column lists, as dicts."""
    if isinstance(table, dict):
        return [dict(zip(table, values)) for values in zip(*table.values())]
    return table.to_dict("records")


def cli_csv(binary, db, *args):
    text = subprocess.run([binary, "results", db, "--format", "csv", *args], check=True,
                          capture_output=True, text=True).stdout
    return list(csv.DictReader(io.StringIO(text)))


def same_table(frame, rows):
    """The DataFrame holds exactly the CLI's CSV rows (numbers to its 9 digits)."""
    ours_rows = records(frame)
    assert len(ours_rows) == len(rows)
    for ours, theirs in zip(ours_rows, rows):
        for column, text in theirs.items():
            value = ours[column]
            if text == "":
                assert isinstance(value, float) and math.isnan(value), column
            elif isinstance(value, str):
                assert value == text, column
            else:
                assert float(value) == pytest.approx(float(text), rel=1e-8), column


@pytest.mark.parametrize("args", [
    {},
    {"group_by": ["model.heads"]},
    {"group_by": "train.lr,model.heads", "metric": "final_train_loss"},
    {"where": ["model.heads=2"], "metric": "ms_per_step"},
    {"where": {"train.lr": 0.01}, "status": "done", "metric": "parameters"},
])
def test_aggregate_matches_the_cli(binary, sweep_db, args):
    cli = []
    if "group_by" in args:
        group = args["group_by"]
        cli += ["--group-by", group if isinstance(group, str) else ",".join(group)]
    if "metric" in args:
        cli += ["--metric", args["metric"]]
    where = args.get("where", [])
    for item in (["%s=%s" % kv for kv in where.items()] if isinstance(where, dict) else where):
        cli += ["--where", item]
    if "status" in args:
        cli += ["--status", args["status"]]
    frame = attnrank.Results(sweep_db).aggregate(**args)
    same_table(frame, cli_csv(binary, sweep_db, *cli))
    assert list(frame)[-2:] == ["runs", "max"]


def test_runs_and_metrics(sweep_db):
    results = attnrank.Results(sweep_db)
    assert len(results) == 8 and "8 runs" in repr(results)
    runs = results.runs
    assert list(runs["status"]).count("diverged") == 4
    assert np.asarray(list(runs["model.heads"])).dtype.kind == "i"
    assert np.asarray(list(runs["train.lr"])).dtype.kind == "f"
    assert np.asarray(list(runs["model.bias"])).dtype == bool
    done = [run for run in records(runs) if run["status"] == "done"]
    assert all(math.isfinite(run["test_mse"]) and os.path.isdir(run["run_dir"]) for run in done)
    assert set(runs["sweep"]) == {"pytest"}
    curve = results.metrics(list(runs["id"])[0])
    assert list(curve) == ["run_id", "step", "train_loss", "lr", "grad_norm"]
    assert list(curve["step"]) == [40, 60]
    assert len(list(results.metrics()["step"])) == 2 * 4 + 4  # diverged runs: one row
    assert results.available_metrics()[:6] == ["final_train_loss", "steps", "wall_seconds",
                                                "ms_per_step", "parameters",
                                                "attention_parameters"]


def test_plain_python_without_pandas(sweep_db, monkeypatch):
    monkeypatch.setattr(attnrank.run, "_pandas", lambda: None)
    table = attnrank.Results(sweep_db).aggregate(group_by=["model.heads"])
    assert table["model.heads"] == [1, 2] and table["seeds"] == [2, 2]
    assert table["diverged"] == [2, 2]


def test_opened_read_only(sweep_db, tmp_path):
    # A copy without write permission: reading must not need to write.
    copy = tmp_path / "odd %41?#name.db"
    with sqlite3.connect(sweep_db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    os.chmod(copy, 0o444)
    before = copy.read_bytes()
    assert len(attnrank.Results(copy)) == 8
    assert copy.read_bytes() == before


def test_errors(sweep_db, tmp_path):
    results = attnrank.Results(sweep_db)
    with pytest.raises(attnrank.ConfigError, match=r"metric 'test_los': no run has it "
                       r"\(available: final_train_loss, .*test_mse.*\)"):
        results.aggregate(metric="test_los")
    with pytest.raises(ValueError, match="--group-by: model.haeds: unknown config key"):
        results.aggregate(group_by=["model.haeds"])
    with pytest.raises(ValueError, match="--where 'heads=2': heads: unknown config key"):
        results.aggregate(where=["heads=2"])
    with pytest.raises(ValueError, match="expected key=value"):
        results.aggregate(where="model.heads")
    with pytest.raises(ValueError, match="--status 'ok'"):
        results.aggregate(status="ok")
    with pytest.raises(FileNotFoundError, match="no such results database"):
        attnrank.Results(tmp_path / "none.db")
    (tmp_path / "text.db").write_text("not sqlite at all, but long enough to have a header" * 40)
    with pytest.raises(attnrank.FormatError, match="not an intact SQLite database"):
        attnrank.Results(tmp_path / "text.db")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE t(x)")
    with pytest.raises(attnrank.FormatError, match="not an attnrank results database"):
        attnrank.Results(tmp_path / "other.db")
    with pytest.raises(ValueError, match="is a directory"):
        attnrank.Results(tmp_path)
    if PANDAS is not None:
        assert isinstance(attnrank.Results(sweep_db).runs, PANDAS.DataFrame)
