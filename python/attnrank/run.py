"""attnrank.train and attnrank.Run: training in this process, and a run directory
(config.yaml, metrics.csv, summary.json, icl_curve.csv, model.safetensors)."""
import csv
import json
import math
import os
import sys

from . import _config
from ._native import native


def _pandas():
    """pandas when installed, else None (then tables are plain dicts of lists)."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _number(text):
    value = float(text)  # "inf" and "nan" included
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def read_table(path):
    """A CSV file of numbers as a DataFrame, or {column: [values]} without pandas."""
    pandas = _pandas()
    if pandas is not None:
        return pandas.read_csv(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    columns = {name: [] for name in rows[0]}
    for row in rows[1:]:
        for name, text in zip(rows[0], row):
            columns[name].append(_number(text) if text else math.nan)
    return columns


class Run:
    """A run directory written by attnrank.train or `attnrank train`."""

    def __init__(self, run_dir):
        self.path = os.fspath(run_dir)
        if not os.path.isdir(self.path):
            raise FileNotFoundError("run: no such directory: %s" % self.path)
        if not os.path.isfile(self._file("config.yaml")):
            raise FileNotFoundError("run: missing %s" % self._file("config.yaml"))
        self._model = None

    def _file(self, name):
        return os.path.join(self.path, name)

    @property
    def config(self):
        """The resolved config, {section: {key: value}}."""
        return native().resolve_config(self._file("config.yaml"), True, [])[0]

    @property
    def summary(self):
        """summary.json as a pandas Series (a dict without pandas); None while the
        run has not finished. Missing values (null) are NaN."""
        path = self._file("summary.json")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            values = {key: math.nan if value is None else value
                      for key, value in json.load(f).items()}
        pandas = _pandas()
        return pandas.Series(values, dtype=object) if pandas is not None else values

    @property
    def status(self):
        """done, diverged or interrupted; None while the run has not finished."""
        summary = self.summary
        return None if summary is None else summary["status"]

    @property
    def metrics(self):
        """metrics.csv: step, train_loss, lr, grad_norm, and with train.eval_every the
        held-out validation_* columns, NaN on rows without an evaluation (DataFrame, or
        dict of lists)."""
        return read_table(self._file("metrics.csv"))

    @property
    def icl_curve(self):
        """icl_curve.csv of an icl-linear run: examples, model_mse, least_squares_mse,
        least_squares_expected (inf where the closed form diverges); None for other
        tasks or an unfinished run."""
        path = self._file("icl_curve.csv")
        return read_table(path) if os.path.isfile(path) else None

    @property
    def model(self):
        """The trained model (attnrank.Model), loaded on first use."""
        if self._model is None:
            from .model import Model
            self._model = Model.load(self.path)
        return self._model

    def __repr__(self):
        return "Run(%r, status=%s)" % (self.path, self.status)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _done_line(summary, out):
    if summary.get("test_mse") is not None:
        held_out = "test_mse %.6g (trivial %.3g)" % (summary["test_mse"], summary["trivial_mse"])
    else:
        held_out = ", ".join("%s %.6g" % (name, value) for name, value in summary.items()
                             if name.startswith("test_") and value is not None)
    threads = summary["threads"]
    return ("done: %d steps, %s, final train loss %.6g, %.2f ms/step (%.1f steps/s, %d thread%s), "
            "%d parameters (%d attention) -> %s" % (
                summary["steps"], held_out, summary["final_train_loss"], summary["ms_per_step"],
                summary["steps_per_second"], threads, "" if threads == 1 else "s",
                summary["parameters"], summary["attention_parameters"], out))


def train(config=None, out=None, overrides=(), progress=None, quiet=False, restart=False):
    """Trains a model in this process and returns its Run.

    config: a dict, a path to a YAML config or None (the defaults); overrides:
    'section.key=value' strings applied after it, as on the command line; out: the
    run directory to write. progress: a bar (True) or a line per train.log_every
    steps (False); by default a bar when sys.stdout is a terminal. quiet: no output.
    restart: start from step 0 even when `out` holds a run (this one or another).

    `out` may be new or empty, or hold this same run: a stopped or killed run then
    resumes from its checkpoint (bit-identical to an uninterrupted one), and a
    finished one is returned without training. Another run there raises
    attnrank.ConfigError unless restart=True.

    The engine runs with the GIL released. Ctrl-C (KeyboardInterrupt) stops it
    cleanly: the run directory is complete, with status "interrupted", the metrics
    so far, the weights so far (no held-out metrics) and the training state, and the
    KeyboardInterrupt is raised again; training the same `out` again resumes it. A diverged run (NaN/inf) returns its Run with
    status "diverged". Bad configs raise attnrank.ConfigError (a ValueError) with
    the engine's one-line message; a missing config file FileNotFoundError.
    """
    if out is None:
        raise TypeError("train: out= (the run directory to write) is required")
    out = os.fspath(out)
    config_source = _config.source(config, overrides)
    stdout = sys.stdout
    write = None
    if not quiet:
        def write(text):
            stdout.write(text)
            stdout.flush()
    if progress is None:
        progress = _is_terminal(stdout)
    try:
        native().train(*config_source, out, bool(progress), write, bool(restart))
    except KeyboardInterrupt:
        if not quiet:
            print("attnrank: interrupted; %s holds the run so far (status interrupted)" % out,
                  file=sys.stderr)
        raise
    run = Run(out)
    if not quiet:
        with open(run._file("summary.json")) as f:
            summary = json.load(f)
        if summary["status"] == "diverged":
            print("attnrank: run diverged (NaN/inf loss or gradient) after %d steps; metrics kept "
                  "in %s" % (summary["steps"], out), file=sys.stderr)
        else:
            print(_done_line(summary, out), file=stdout)
    return run
