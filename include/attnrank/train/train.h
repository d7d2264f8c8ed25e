// The training loop behind `attnrank train`: data stream, model, AdamW, schedule,
// divergence detection, metrics, summary and checkpoint.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>

#include "attnrank/config/run_config.h"

namespace attnrank {

struct MetricsRow {
  int64_t step = 0;         // steps completed
  double train_loss = 0.0;  // mean batch loss since the previous row
  double lr = 0.0;          // rate of the last step
  double grad_norm = 0.0;   // before clipping, last step
};

struct TrainSummary {
  std::string status;  // done | diverged | interrupted (TrainOptions::should_stop)
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
  // test_loss, test_bits_per_char, ... for text). Finite values only.
  std::map<std::string, double> final_metrics;
};

struct TrainOptions {
  // Progress display: a bar when `progress_bar`, otherwise a line per log_every steps.
  bool progress_bar = false;
  std::ostream* log = nullptr;                        // null: silent
  std::function<void(const MetricsRow&)> on_metrics;  // called for each metrics row
  bool write_checkpoint = true;
  std::string log_prefix;  // prepended to log lines (sweeps name the run)
  // Polled before every step; returning true ends the run with status "interrupted":
  // metrics up to that step, a summary without held-out metrics and a checkpoint
  // of the weights so far (the Python package's Ctrl-C).
  std::function<bool()> should_stop;
};

// Trains `config` and writes DIR/{config.yaml, metrics.csv, summary.json,
// model.safetensors}. A diverging run (NaN/inf) stops with status "diverged" and
// still writes its metrics and summary; a stopped one (should_stop) likewise, plus
// its checkpoint. Throws ConfigError for invalid configs.
TrainSummary train(const RunConfig& config, const std::string& out_dir,
                   const TrainOptions& options);

// train.threads = 0 (auto) means all cores, except for steps under this many
// FLOPs, which run on one thread: there, fork/join costs more than it saves.
inline constexpr double kSmallStepFlops = 2e7;
// The thread count a run uses for `requested` (train.threads) and its step FLOPs.
int run_threads(int requested, double step_flops);

struct Evaluation;

// Recomputes the held-out metrics of a run directory's checkpoint; `batches` test
// batches for tasks that sample their test set (0: the config's eval_batches).
Evaluation evaluate_checkpoint(const std::string& run_dir, int batches);

}  // namespace attnrank
