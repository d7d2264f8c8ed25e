// The training loop behind `attnrank train`: data stream, model, AdamW, schedule,
// divergence detection, metrics, summary and checkpoint.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>

#include "attnrank/config/run_config.h"
#include "attnrank/train/run_directory.h"

namespace attnrank {

// Exit statuses of `attnrank train` besides 0, 1 (internal error) and 2 (bad
// input): the run diverged (its metrics kept); the run was stopped (SIGTERM,
// SIGINT) and its training state saved, so running the same command resumes it.
inline constexpr int kExitDiverged = 3;
inline constexpr int kExitInterrupted = 4;

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
  // Called before every step with its index (a test's fault injection: kill -9 at
  // a chosen step).
  std::function<void(int64_t)> before_step;
  // Start over even when DIR holds this or another run (prepare_run_directory).
  bool restart = false;
};

// Trains `config` in DIR (see run_directory.h for its files and for how an existing
// DIR is treated: the same run resumes from its checkpoint, a finished one returns
// its summary, another run is refused unless options.restart). A diverging run
// (NaN/inf) stops with status "diverged" and still writes its metrics and summary;
// a stopped one (should_stop) saves its training state, then its weights, metrics
// and summary with status "interrupted"; training the same DIR again resumes it.
// Checkpoints follow train.checkpoint_every; train.eval_every adds held-out columns
// to metrics.csv and train.tensorboard an events.out.tfevents.* file. Throws
// ConfigError for invalid configs and a DIR that holds something else.
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
