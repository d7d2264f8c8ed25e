// What `sweep` and `reproduce` share: opening the results database with exit code 2
// for every bad-input case, and running a spec's runs through child processes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank::cli {

struct SweepRunArgs {
  int jobs = 0;  // 0: plan_jobs chooses
  int threads = 0;
  std::string shard = "0/1";
  std::string runs_dir;  // empty: next to the database (results.db -> results.runs)
  bool quiet = false;
};

// RESULTS.db -> RESULTS.runs
std::string default_runs_dir(const std::string& database);

// Opens the database; a corrupt or foreign file is bad input (ConfigError, exit 2).
std::unique_ptr<ResultsStore> open_results(const std::string& path, ResultsStore::Mode mode);

// Checks --jobs, --threads and --shard (ConfigError), so a command can do it before
// it changes anything.
void validate_run_args(const SweepRunArgs& args);

// Trains the runs the database lacks and prints a summary line. Throws ExitCode 1
// when runs failed, 130 when interrupted.
SweepOutcome run_planned_sweep(const SweepSpec& spec, const std::vector<PlannedRun>& runs,
                               const std::string& database, const SweepRunArgs& args);

// The path of this executable (/proc/self/exe), to start child runs with.
std::string self_executable();

}  // namespace attnrank::cli
