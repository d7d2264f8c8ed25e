// The results database of sweeps: one SQLite file (WAL mode) with a row per run
// (resolved config, status, final metrics, run directory) and its metrics curve.
// Schema: docs/sweeps.md.
// Every finished run is committed in its own transaction, so killing a sweep at
// any moment loses no finished run. One writer at a time (a lock file next to the
// database); readers never block.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/train/train.h"

struct sqlite3;

namespace attnrank {

struct RunRecord {
  std::string id;
  std::string status;                                       // done | diverged | failed
  std::string error;                                        // why a run failed
  std::string config_yaml;                                  // resolved config (to_yaml)
  std::vector<std::pair<std::string, std::string>> config;  // flat_config, documentation order
  double test_mse = NAN;
  double trivial_mse = NAN;
  double final_train_loss = NAN;
  int64_t steps = 0;
  double wall_seconds = 0.0;
  double ms_per_step = 0.0;
  int64_t parameters = 0;
  int64_t attention_parameters = 0;
  int threads = 0;
  std::string run_dir;      // absolute when written; as stored when read
  std::string sweep;        // name of the sweep that ran it
  std::string finished_at;  // UTC, ISO 8601
  // Final metrics by name: the "test_" and "validation_" keys of summary.json
  // (test_mse for the point tasks; test_loss, validation_perplexity, ... for text).
  std::map<std::string, double> final_metrics;
  std::vector<MetricsRow> metrics;  // the training curve

  bool finished() const { return status == "done" || status == "diverged"; }
  // The value of a config key ("" when absent).
  std::string value(const std::string& key) const;
  // A number by name: one of record_metric_names() or a final metric; NaN when absent.
  double metric(const std::string& name) const;
};

// The numbers every run record has besides its final metrics: test_mse,
// trivial_mse, final_train_loss, steps, wall_seconds, ms_per_step, parameters,
// attention_parameters.
const std::vector<std::string>& record_metric_names();

struct MergeCounts {
  int added = 0;     // runs new to the output
  int replaced = 0;  // failed runs in the output replaced by finished ones
  int kept = 0;      // runs the output already held finished
};

class ResultsStore {
 public:
  enum class Mode { kRead, kWrite };

  // kWrite creates the file if missing and takes the writer lock (PATH.lock, of the
  // path with symbolic links resolved); an existing file is checked read-only
  // first, so a refused file is left exactly as it was (no lock file either);
  // kRead needs an existing database. Throws ConfigError for a missing or
  // unwritable path or a database locked by another writer, FormatError for a file
  // that is not an intact attnrank results database.
  ResultsStore(const std::string& path, Mode mode);
  ~ResultsStore();
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  const std::string& path() const { return path_; }

  // Inserts or replaces the run `record.id` and its metrics in one transaction.
  void record(const RunRecord& record);
  // Every run, in the order recorded; metrics only when asked for.
  std::vector<RunRecord> runs(bool with_metrics = false) const;
  std::optional<RunRecord> find(const std::string& id, bool with_metrics = false) const;
  // Ids of runs that finished (done or diverged).
  std::vector<std::string> finished_ids() const;
  // Copies `other`'s runs in: new ones, and finished ones over failed ones.
  MergeCounts merge_from(const ResultsStore& other);

 private:
  void exec(const std::string& sql) const;
  void begin_write();
  void check_integrity();
  // Checks meta, runs and metrics against attnrank's schema without changing
  // anything (FormatError otherwise); sets version_1_ and empty_.
  void check_schema();
  void create_or_check_schema();
  std::vector<std::string> table_columns(const std::string& table) const;
  // Opens the file read-only (falling back to immutable on read-only media) and
  // checks it.
  void open_read_only();
  // The writer lock: flock on RESOLVED_PATH.lock (symbolic links resolved).
  void take_lock();
  void release_lock(bool failed);
  void write_record(const RunRecord& record);
  const char* run_columns() const;

  std::string path_;
  Mode mode_;
  sqlite3* db_ = nullptr;
  int lock_fd_ = -1;
  std::string lock_path_;
  bool created_lock_ = false;
  bool empty_ = false;
  bool version_1_ = false;  // a schema version 1 database opened for reading
};

}  // namespace attnrank
