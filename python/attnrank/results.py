"""attnrank.Results: a results database of `attnrank sweep`, read with Python's
sqlite3 (read-only), and the per-configuration statistics of `attnrank results`.

The schema is src/experiment/results_store.cpp's (docs/sweeps.md): table meta
(format = attnrank-results, schema_version 1 or 2), runs (one row per run, the
flat config as JSON text of strings, final metrics as JSON) and metrics (the
training curves). The aggregation follows src/experiment/aggregate.cpp.
"""
import json
import math
import os
import sqlite3
import statistics
from functools import cmp_to_key

from .errors import ConfigError, FormatError
from . import run as _run

_RUN_COLUMNS = ["id", "status", "error", "config_yaml", "config_json", "test_mse", "trivial_mse",
                "final_train_loss", "steps", "wall_seconds", "ms_per_step", "parameters",
                "attention_parameters", "threads", "run_dir", "sweep", "finished_at"]
# The numbers every run has besides its final metrics (record_metric_names()).
RECORD_METRICS = ["test_mse", "trivial_mse", "final_train_loss", "steps", "wall_seconds",
                  "ms_per_step", "parameters", "attention_parameters"]
# The columns of `attnrank results --format csv` after the group-by keys.
STAT_COLUMNS = ["metric", "seeds", "diverged", "failed", "mean", "std", "min", "median",
                "train_loss"]


def _as_number(text):
    """The number a config value spells, as std::stod reads a whole string; else None."""
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _value_compare(a, b):
    # Numbers before text, numbers by value (aggregate.cpp's value_less).
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return (x > y) - (x < y)
    if x is not None or y is not None:
        return -1 if x is not None else 1
    return (a > b) - (a < b)


def _values_equal(a, b):
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return x == y
    return a == b


def _typed(values):
    """A column of config values as ints, floats or bools where every value is one."""
    def all_parse(convert):
        try:
            return [convert(v) for v in values]
        except (ValueError, TypeError):
            return None

    for convert in (int, float):
        converted = all_parse(convert)
        if converted is not None:
            return converted
    if values and all(v in ("true", "false") for v in values):
        return [v == "true" for v in values]
    return list(values)


class _Record:
    """One row of the runs table, as RunRecord reads it."""

    def __init__(self, row, database):
        values = dict(zip(_RUN_COLUMNS + ["final_metrics"], row))
        self.values = values
        self.id = values["id"]
        self.status = values["status"]
        try:
            self.config = json.loads(values["config_json"])
        except (TypeError, ValueError) as error:
            raise FormatError("%s: run %s: unreadable config_json (%s)"
                              % (database, self.id, error)) from None
        self.final_metrics = {}
        text = values["final_metrics"]
        if text:
            try:
                metrics = json.loads(text)
            except ValueError as error:
                raise FormatError("%s: run %s: unreadable final_metrics (%s)"
                                  % (database, self.id, error)) from None
            self.final_metrics = {k: float(v) for k, v in metrics.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
        elif values["test_mse"] is not None:
            self.final_metrics["test_mse"] = values["test_mse"]  # a version 1 database
        run_dir = values["run_dir"] or ""
        if run_dir and not os.path.isabs(run_dir):
            base = os.path.dirname(os.path.abspath(database))
            run_dir = os.path.normpath(os.path.join(base, run_dir))
        self.run_dir = run_dir

    def value(self, key):
        return self.config.get(key, "")

    def metric(self, name):
        if name in self.final_metrics:
            return self.final_metrics[name]
        if name in RECORD_METRICS:
            value = self.values[name]
            return math.nan if value is None else float(value)
        return math.nan


def _stats(values):
    values = sorted(v for v in values if math.isfinite(v))
    out = {"count": len(values), "mean": math.nan, "std": math.nan, "min": math.nan,
           "median": math.nan, "max": math.nan}
    if values:
        out["mean"] = sum(values) / len(values)
        if len(values) > 1:
            out["std"] = math.sqrt(sum((v - out["mean"]) ** 2 for v in values)
                                   / (len(values) - 1))
        out["min"], out["max"] = values[0], values[-1]
        out["median"] = statistics.median(values)
    return out


class Results:
    """The runs of a results database (written by `attnrank sweep`)."""

    def __init__(self, db):
        self.path = os.fspath(db)
        if os.path.isdir(self.path):
            raise ConfigError("%s: is a directory, expected a results database file" % self.path)
        if not os.path.exists(self.path):
            raise FileNotFoundError("%s: no such results database" % self.path)
        self._records = self._read()

    def _connect(self):
        # A URI, for mode=ro: "%", "?" and "#" in the path must be escaped.
        path = os.path.abspath(self.path)
        for char, escaped in (("%", "%25"), ("?", "%3f"), ("#", "%23")):
            path = path.replace(char, escaped)
        uri = "file:%s?mode=ro" % path
        return sqlite3.connect(uri, uri=True)

    def _read(self):
        try:
            db = self._connect()
        except sqlite3.Error as error:
            raise ConfigError("%s: cannot open the database (%s)" % (self.path, error)) from None
        try:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                raise FormatError("%s: empty file, not an attnrank results database" % self.path)
            if "meta" not in tables:
                raise FormatError("%s: an SQLite database, but not an attnrank results database"
                                  % self.path)
            meta = dict(db.execute("SELECT key, value FROM meta"))
            if meta.get("format") != "attnrank-results":
                raise FormatError("%s: an SQLite database, but not an attnrank results database"
                                  % self.path)
            version = meta.get("schema_version", "")
            if version not in ("1", "2"):
                raise FormatError("%s: results database schema version %s, this attnrank reads "
                                  "versions 1 and 2" % (self.path, version))
            final = "final_metrics" if version == "2" else "NULL"
            rows = db.execute("SELECT %s, %s FROM runs ORDER BY rowid"
                              % (", ".join(_RUN_COLUMNS), final)).fetchall()
            self._metric_rows = db.execute(
                "SELECT run_id, step, train_loss, lr, grad_norm FROM metrics "
                "ORDER BY run_id, step").fetchall()
        except sqlite3.DatabaseError as error:
            raise FormatError("%s: not an intact SQLite database (%s)" % (self.path, error)) \
                from None
        finally:
            db.close()
        return [_Record(row, self.path) for row in rows]

    def __len__(self):
        return len(self._records)

    def config_keys(self):
        """The config keys of the runs, in documentation order."""
        return list(self._records[0].config) if self._records else []

    def _select(self, where, status):
        if isinstance(where, dict):
            texts = ["%s=%s" % (key, str(value).lower() if isinstance(value, bool) else value)
                     for key, value in where.items()]
        else:
            texts = [where] if isinstance(where, str) else list(where or [])
        filters = []
        keys = self._known_keys()
        for text in texts:
            key, equals, value = text.partition("=")
            if not equals or not key:
                raise ConfigError("--where '%s': expected key=value, e.g. model.layers=1" % text)
            if key not in keys:
                raise ConfigError("--where '%s': %s: unknown config key" % (text, key))
            filters.append((key, value))
        if status not in (None, "done", "diverged", "failed"):
            raise ConfigError("--status '%s': expected done, diverged or failed" % status)
        return [r for r in self._records
                if all(_values_equal(r.value(k), v) for k, v in filters)
                and (status is None or r.status == status)]

    def _known_keys(self):
        try:
            from ._native import native
            return set(native().config_keys())
        except ImportError:
            return set(self.config_keys())

    def available_metrics(self):
        """Metric names the runs can be aggregated by (as `attnrank results --metric`)."""
        names = [n for n in RECORD_METRICS if n not in ("test_mse", "trivial_mse")]
        finals = {name for r in self._records for name in r.final_metrics}
        if any(r.values["trivial_mse"] is not None for r in self._records):
            finals.add("trivial_mse")
        return names + sorted(finals)

    def _check_metric(self, metric):
        names = self.available_metrics()
        if metric in names:
            return
        if metric == "test_mse" and not any(r.final_metrics for r in self._records):
            return
        raise ConfigError("metric '%s': no run has it (available: %s)"
                          % (metric, ", ".join(names)))

    @staticmethod
    def _varying(records):
        if not records:
            return []
        first = records[0]
        return [key for key, value in first.config.items()
                if key not in ("train.seed", "train.threads")
                and any(r.value(key) != value for r in records)]

    @property
    def runs(self):
        """One row per run: id, status, error, every config key, test_mse,
        trivial_mse, final_train_loss, steps, wall_seconds, ms_per_step, parameters,
        attention_parameters, threads, run_dir (absolute), sweep, finished_at and
        every final metric (test_loss, validation_perplexity, ...). A DataFrame, or
        a dict of column lists without pandas."""
        keys = self.config_keys()
        finals = sorted({name for r in self._records for name in r.final_metrics}
                        - set(RECORD_METRICS))
        columns = {"id": [r.id for r in self._records],
                   "status": [r.status for r in self._records],
                   "error": [r.values["error"] or "" for r in self._records]}
        for key in keys:
            columns[key] = _typed([r.value(key) for r in self._records])
        for name in RECORD_METRICS + ["threads"]:
            columns[name] = [math.nan if r.values[name] is None else r.values[name]
                             for r in self._records]
        columns["run_dir"] = [r.run_dir for r in self._records]
        columns["sweep"] = [r.values["sweep"] or "" for r in self._records]
        columns["finished_at"] = [r.values["finished_at"] for r in self._records]
        for name in finals:
            columns[name] = [r.final_metrics.get(name, math.nan) for r in self._records]
        return _table(columns)

    def metrics(self, run_id=None):
        """The training curves: run_id, step, train_loss, lr, grad_norm (one run's
        when run_id is given)."""
        rows = [row for row in self._metric_rows if run_id is None or row[0] == run_id]
        names = ["run_id", "step", "train_loss", "lr", "grad_norm"]
        return _table({name: [math.nan if row[i] is None else row[i] for row in rows]
                       for i, name in enumerate(names)})

    def aggregate(self, group_by=None, metric="test_mse", where=None, status=None):
        """Per configuration, the statistics of `metric` over seeds, exactly as
        `attnrank results DB --format csv`: the group-by keys (default: the keys that
        vary, except train.seed and train.threads), then metric, seeds (finite values
        of done runs), diverged, failed, mean, std (n - 1), min, median and
        train_loss (mean final train loss), plus runs and max. `where`: a dict or
        'key=value' strings; `status`: done, diverged or failed."""
        self._check_metric(metric)
        records = self._select(where, status)
        if isinstance(group_by, str):
            group_by = [k for k in group_by.split(",") if k]
        keys = list(group_by) if group_by else self._varying(records)
        known = self._known_keys()
        for key in keys:
            if key not in known:
                raise ConfigError("--group-by: %s: unknown config key" % key)
        groups = {}
        for record in records:
            groups.setdefault(tuple(record.value(k) for k in keys), []).append(record)

        def compare(a, b):
            for x, y in zip(a, b):
                c = _value_compare(x, y)
                if c:
                    return c
            return (len(a) > len(b)) - (len(a) < len(b))

        rows = []
        for values in sorted(groups, key=cmp_to_key(compare)):
            members = groups[values]
            done = [r for r in members if r.status == "done"]
            stats = _stats([r.metric(metric) for r in done])
            loss = _stats([r.metric("final_train_loss") for r in done])
            rows.append(list(values) + [metric, stats["count"],
                                        sum(r.status == "diverged" for r in members),
                                        sum(r.status == "failed" for r in members),
                                        stats["mean"], stats["std"], stats["min"],
                                        stats["median"], loss["mean"], len(members),
                                        stats["max"]])
        names = keys + STAT_COLUMNS + ["runs", "max"]
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        for key in keys:
            columns[key] = _typed(columns[key])
        return _table(columns)

    def __repr__(self):
        return "Results(%r, %d runs)" % (self.path, len(self))


def _table(columns):
    pandas = _run._pandas()
    return pandas.DataFrame(columns) if pandas is not None else columns
