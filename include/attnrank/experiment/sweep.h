// Sweeps: a spec (a base config plus a grid of dotted keys to value lists), its
// expansion into runs with stable identities, and the runner that trains the runs
// not yet in a results database (docs/sweeps.md).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/config/run_config.h"
#include "attnrank/train/train.h"

namespace attnrank {

class ResultsStore;

// The kinds of figure: curves (a metric against x, one line per `line` value) and
// heads (the trained heads' measures); kNone: the spec has no `figure:`.
enum class FigureKind { kNone, kCurves, kHeads };

// A qualitative claim a figure makes, checked on its runs (report.md, "Claims"): the
// configuration `better` has a lower value of `metric` (read as a loss) than the
// configuration `worse`, or than the number `worse_than`. Each side selects the runs
// (the seeds) of exactly one configuration of the grid (check_claim_selections).
// A heads figure's claim metric: 180 degrees minus the mean angle between a run's
// K Q^T and the identity over its heads (0: every head a multiple of -I).
inline constexpr const char* kHeadAngleGap = "head_angle_gap_deg";

struct FigureClaim {
  std::string says;                                         // the claim in words
  std::vector<std::pair<std::string, std::string>> better;  // config key -> value
  std::vector<std::pair<std::string, std::string>> worse;   // empty with worse_than
  double worse_than = NAN;  // `worse: NUMBER`: a bound instead of a configuration
  std::string metric;       // "" : the figure's metric
};

// How `attnrank reproduce` draws a sweep's results (the spec's optional `figure:`).
struct FigureSpec {
  // The y axis label: y_label, else "test MSE" for test_mse, else the metric name.
  std::string metric_label() const;
  // Whether x is a run's size (parameters, attention_parameters) rather than a key.
  bool x_is_size() const { return x == "parameters" || x == "attention_parameters"; }

  FigureKind kind = FigureKind::kNone;
  std::string title;                // figure title
  std::string x;                    // key on the x axis (curves, heads), or parameters /
                                    // attention_parameters (curves)
  std::string panel;                // key with one panel per value ("": one panel)
  std::string line;                 // key with one line per value ("": one line)
  std::string x_label;              // axis label (default: the key's symbol)
  std::string metric = "test_mse";  // the plotted run metric (RunRecord::metric)
  std::string y_label;              // axis label (default: "test MSE" or the metric)
  bool log_x = true;                // log-scaled x axis
  bool log_y = true;                // log-scaled y axis (errors spanning decades)
  std::string description;          // what the figure shows, for the report
  std::vector<FigureClaim> claims;  // checked in the report (`claims:`)
};

// One list of keys whose Cartesian product is taken; keys in the order written.
using Grid = std::vector<std::pair<std::string, std::vector<std::string>>>;

struct SweepSpec {
  std::string name;       // `name:`, or the file name without extension
  std::string source;     // the file the spec came from
  std::string base_yaml;  // base config as YAML text (sections model, task, train)
  // Union of grids (a spec's `grid:` is one map, or a list of maps).
  std::vector<Grid> grids;
  // `authors_grid:` (a map or a list of maps): grids added only under the authors'
  // protocol (`reproduce --protocol authors`), e.g. fig1's supplementary runs.
  std::vector<Grid> authors_grids;
  // `derived:` key -> expression over config values, applied in order per run.
  std::vector<std::pair<std::string, std::string>> derived;
  FigureSpec figure;
};

// Parses a sweep spec (YAML text or file). Throws ConfigError with one line naming
// the key for unknown keys, an empty grid, bad values or a grid that clashes with
// `derived`.
SweepSpec parse_sweep_spec(const std::string& yaml_text, const std::string& source_name);
SweepSpec load_sweep_spec(const std::string& path);

// Evaluates a derived-key expression ("d/heads", "model.dim / model.rank * 2") over
// config values (key -> value text, as flat_config gives them). Throws ConfigError
// naming `key` when a name is unknown or not numeric.
double evaluate_derived(const std::string& key, const std::string& expression,
                        const std::vector<std::pair<std::string, std::string>>& values);
double evaluate_derived(const std::string& key, const std::string& expression,
                        const RunConfig& config);

// Every config key -> its canonical value text ("64", "sphere", "[0.9, 0.95]"), in
// documentation order.
std::vector<std::pair<std::string, std::string>> flat_config(const RunConfig& config);
// The text hashed into a run's identity: sorted "key: value" lines of the resolved
// config, leaving out train.threads (it does not change results) and keys at their
// default (so adding a key with a neutral default keeps old identities).
std::string canonical_config(const RunConfig& config);
// 16 hex digits: FNV-1a-64 of canonical_config.
std::string run_identity(const RunConfig& config);

struct PlannedRun {
  std::string id;     // run_identity(config)
  RunConfig config;   // resolved
  std::string label;  // the grid values that produced it: "model.heads=2 train.seed=1"
};

// The most runs one sweep may expand to (a larger grid is refused before expansion).
inline constexpr int kMaxSweepRuns = 1000000;

// Expands every grid (first key outermost, last key fastest), resolves each run and
// drops duplicate identities (first kept). Throws ConfigError naming the grid point
// of the first invalid run, before anything runs.
std::vector<PlannedRun> expand_sweep(const SweepSpec& spec);

// `--shard i/n`: slice i (0 <= i < n) of n; a run's slice is its identity mod n, so
// editing the grid never moves a run to another shard.
struct Shard {
  int index = 0;
  int count = 1;
};
Shard parse_shard(const std::string& text);
bool in_shard(const std::string& run_id, const Shard& shard);

// Trains one run into `dir` (created and empty). Returns its summary (status done or
// diverged); throws for a failed run (the message is recorded), RunInterrupted when
// the run was stopped by a signal (nothing is recorded).
using Trainer = std::function<TrainSummary(const RunConfig& config, const std::string& dir)>;

struct RunInterrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Asks the running sweep to stop, e.g. from a SIGINT handler (async-signal-safe):
// no new run starts, the running child runs get SIGTERM and are not recorded, runs
// that already finished are. run_sweep then returns with `interrupted` set.
void request_sweep_stop();
bool sweep_stop_requested();
void clear_sweep_stop();

// Runs `binary train --config DIR/config.yaml --out DIR` as a child process (output
// in DIR/train.log), so concurrent runs keep their own thread pools and a crash
// fails one run only. The child dies with the sweep (PR_SET_PDEATHSIG), and gets
// SIGTERM once request_sweep_stop() was called.
Trainer subprocess_trainer(const std::string& binary);

struct SweepOptions {
  int jobs = 1;  // runs at a time; 0: chosen by plan_jobs
  int threads =
      0;        // threads shared by the jobs (0: all cores); train.threads = max(1, threads / jobs)
  Shard shard;  // the slice this process runs
  std::string runs_dir;         // run directories go to RUNS_DIR/<id>
  std::string sweep_name;       // recorded with each run
  std::ostream* log = nullptr;  // progress output (null: silent)
  bool progress_bar = false;    // redrawn status line (terminal) instead of plain lines
};

struct SweepOutcome {
  int total = 0;                           // runs in this shard
  int skipped = 0;                         // already finished in the database
  int recovered = 0;                       // finished in their run directory but not yet recorded
  int done = 0, diverged = 0, failed = 0;  // trained now
  bool interrupted = false;
};

// How a sweep shares the machine: `jobs` runs at a time, `threads_per_run` each.
struct JobPlan {
  int jobs = 1;
  int threads_per_run = 1;
  std::string reason;  // why not one job per thread, when memory bounds it
};

// The default split of `threads` (0: every CPU) between concurrent runs: one run
// per thread (independent runs scale perfectly; one run's threads do not, most of
// all for small models: docs/sweeps.md has the measurement), fewer when the
// machine's memory (total_memory(): MemTotal or the cgroup limit, or
// ATTNRANK_MEMORY_MB) cannot hold that many of the sweep's largest run, each with
// its process and thread overhead and sized at the threads it would get (a small
// model keeps a gradient copy per thread); the threads are then shared out. It depends on
// the thread count, the memory and the largest run only: not on how many runs
// there are, which shard this is, what is left to train or the momentary load,
// so the same run gets the same thread count (and results) in a resumed, grown
// or sharded sweep on the same machine.
JobPlan plan_jobs(const std::vector<PlannedRun>& runs, int threads);

// Trains every run of `runs` in the shard that `store` does not hold as finished
// (done or diverged), `options.jobs` at a time, committing each as it ends. Failed
// runs are retried. Rethrows a database error after the running runs end.
SweepOutcome run_sweep(const std::vector<PlannedRun>& runs, ResultsStore& store,
                       const Trainer& trainer, const SweepOptions& options);

}  // namespace attnrank
