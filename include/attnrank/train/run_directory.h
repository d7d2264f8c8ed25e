// A run directory and every file in it. This is the one module that names,
// writes and reads them: `train` writes, the sweep runner, `eval`, `inspect` and
// the Python package read.
//
//   config.yaml              the resolved config, written first
//   metrics.csv              step,train_loss,lr,grad_norm: one row per log_every steps,
//                            then validation_* columns with train.eval_every
//   events.out.tfevents.*    TensorBoard scalars of the rows (train.tensorboard)
//   summary.json             status and final metrics, written last
//   model.safetensors        the weights, with the config in the metadata (checkpoint.h)
//   train_state.safetensors  the mid-run checkpoint: weights, AdamW moments and step,
//                            the training loop's accumulators and the metrics rows so
//                            far (train.checkpoint_every); removed when the run ends
//
// Every file is written whole to a temporary name, synced and renamed into place, so
// a kill at any moment leaves the previous or the new version, never a torn one.
// metrics.csv is the exception: it grows row by row, and a resumed run rewrites it
// from the checkpoint's copy of the rows.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "attnrank/config/run_config.h"
#include "attnrank/core/parameters.h"

namespace attnrank {

namespace run_files {
inline constexpr const char* kConfig = "config.yaml";
inline constexpr const char* kMetrics = "metrics.csv";
inline constexpr const char* kSummary = "summary.json";
inline constexpr const char* kModel = "model.safetensors";
inline constexpr const char* kTrainState = "train_state.safetensors";
}  // namespace run_files

// DIR/NAME.
std::string run_file(const std::string& run_dir, const char* name);

struct MetricsRow {
  int64_t step = 0;         // steps completed
  double train_loss = 0.0;  // mean batch loss since the previous row
  double lr = 0.0;          // rate of the last step
  double grad_norm = 0.0;   // before clipping, last step
  // Held-out metrics on the validation set (train.eval_every), in the order of
  // Objective::validation_names(); empty when this row has no evaluation.
  std::vector<double> validation = {};
};

inline constexpr const char* kMetricsHeader = "step,train_loss,lr,grad_norm\n";
// The header with one column per validation metric (train.eval_every), newline included.
std::string metrics_header(const std::vector<std::string>& validation_names);
// One metrics.csv line, newline included (9 significant digits); `validation_columns`
// validation cells, empty when the row has no evaluation (pandas reads NaN).
std::string format_metrics_row(const MetricsRow& row, size_t validation_columns = 0);

// With train.data = replay, summary.json (and a sweep's results database) holds
// this final metric: the lowest epoch-mean training loss over all complete epochs
// of train.epoch_batches steps (the authors' reported statistic, docs/fidelity.md).
inline constexpr const char* kBestEpochTrainLoss = "train_best_epoch_loss";

struct TrainSummary {
  std::string status;  // done | diverged | interrupted (a stop: SIGTERM, SIGINT, should_stop)
  double test_mse = 0.0;
  double trivial_mse = 1.0;
  double final_train_loss = 0.0;
  int64_t steps = 0;  // steps completed
  double wall_seconds = 0.0;
  double ms_per_step = 0.0;  // median step time after 3 warm-up steps
  int64_t parameters = 0;
  int64_t attention_parameters = 0;
  int threads = 0;
  // Every final metric by name, as written at the top level of summary.json: the
  // keys starting with "test_" or "validation_" (test_mse for the point tasks;
  // test_loss, test_bits_per_char, ... for text), and train_best_epoch_loss with
  // replayed data (kBestEpochTrainLoss). Finite values only.
  std::map<std::string, double> final_metrics;

  // Written by train, not read back by read_summary.
  bool squared_error = false;  // a point task: test_mse and trivial_mse are written
  std::vector<std::pair<std::string, double>> evaluation;  // the task's order; NaN -> null
  double trivial_loss = 0.0;
  std::string kernel_isa;
  double gflop_per_step = 0.0;
  double peak_rss_mb = 0.0;
  double model_memory_mb = 0.0;
  double ms_per_validation = NAN;   // median held-out evaluation (train.eval_every)
  int64_t resumed_from_step = -1;   // >= 0: this process continued a checkpoint
  int checkpoints_written = 0;      // by this process
  double checkpoint_mb = 0.0;       // size of the last one
  double checkpoint_seconds = 0.0;  // time spent writing them
  bool already_finished = false;    // DIR held this run, finished; nothing was trained
};

// summary.json: written atomically (the last file of a run).
void write_summary(const std::string& run_dir, const TrainSummary& summary);
// Throws FormatError for a missing or unreadable summary.json.
TrainSummary read_summary(const std::string& run_dir);
// The rows of DIR/metrics.csv, stopping at the first incomplete row (a kill).
std::vector<MetricsRow> read_metrics_csv(const std::string& run_dir);

// metrics.csv as a run grows it: every write is checked, so a full disk ends the
// run with an error instead of a short file.
class MetricsFile {
 public:
  // Replaces the file with `initial` (the header, or a checkpoint's rows).
  MetricsFile(const std::string& path, const std::string& initial);
  ~MetricsFile();
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  // Appends and flushes one line; throws std::runtime_error naming the file.
  void append(const std::string& line);
  // Everything written so far (what a checkpoint stores).
  const std::string& contents() const { return contents_; }

 private:
  std::string path_;
  std::string contents_;
  int fd_ = -1;
};

// The whole state of a training loop between two steps: with it, the rest of the
// run is bit-identical to an uninterrupted one at the same thread count. The data
// needs no state of its own: batch s is a pure function of (seed, s).
struct TrainState {
  int64_t step = 0;  // steps completed
  std::vector<float> parameters;
  std::vector<float> first_moment, second_moment;  // AdamW m and v
  int64_t optimizer_steps = 0;
  std::string metrics_csv;             // metrics.csv so far, header included
  std::map<std::string, double> loop;  // the loop's accumulators, stored exactly
};

// Writes DIR/train_state.safetensors atomically; returns its size in bytes.
int64_t write_train_state(const std::string& run_dir, const RunConfig& config,
                          const TrainState& state);
// Reads DIR/train_state.safetensors for `config` (arenas of `parameter_count`).
// Throws FormatError naming the file when it is corrupt, of another run or of
// another layout.
TrainState read_train_state(const std::string& run_dir, const RunConfig& config,
                            size_t parameter_count);

// Whether two configs describe the same run: equal in every key that changes
// results (train.threads, train.checkpoint_every and train.tensorboard do not;
// train.eval_every does, as it sets the columns of metrics.csv).
bool same_run(const RunConfig& a, const RunConfig& b);

// The first key, in documentation order, whose value differs between two configs
// as same_run compares them: each side as "section.key: value" ("(nothing)" past
// the end); nothing when they describe the same run.
struct ConfigDifference {
  std::string ours, theirs;
};
std::optional<ConfigDifference> config_difference(const RunConfig& ours, const RunConfig& theirs);

// What `train --out DIR` does with DIR.
struct RunStart {
  enum class Kind { kFresh, kResume, kFinished };
  Kind kind = Kind::kFresh;
  TrainSummary finished;  // kFinished: DIR's summary.json
};

// Prepares DIR for training `config`. A missing or empty DIR is created and starts
// fresh. DIR holding this run resumes from its checkpoint (kResume: the caller reads
// it with read_train_state; fresh when there is none;
// kFinished when its summary says done or diverged). DIR holding another run, a
// corrupt run, or anything else is refused with a ConfigError naming the
// difference, unless `restart`: then a run's files are removed and it starts fresh
// (a directory that holds no run is refused all the same). Before a fresh start,
// every file of an earlier attempt is removed, so DIR never describes two runs.
RunStart prepare_run_directory(const std::string& run_dir, const RunConfig& config, bool restart);

// Removes DIR/train_state.safetensors (the run has ended).
void remove_train_state(const std::string& run_dir);

}  // namespace attnrank
