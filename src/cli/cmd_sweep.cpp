// attnrank sweep SPEC.yaml --db results.db [--jobs J] [--threads T] [--shard i/n|auto]
//                [--runs DIR] [--dry-run] [--quiet]
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "attnrank/core/error.h"
#include "attnrank/experiment/slurm.h"
#include "attnrank/experiment/sweep.h"
#include "commands.h"
#include "sweep_session.h"

namespace attnrank::cli {

namespace {

struct SweepArgs {
  std::string spec;
  std::string database;
  SweepRunArgs run;
  bool dry_run = false;
};

// Lists the runs of the shard and whether the database already holds them.
void print_plan(const std::vector<PlannedRun>& runs, const SweepArgs& args) {
  const Shard shard = resolve_shard(args.run.shard).shard;
  std::set<std::string> finished;
  std::error_code error;
  if (std::filesystem::exists(args.database, error)) {
    const auto store = open_results(args.database, ResultsStore::Mode::kRead);
    for (const auto& id : store->finished_ids()) finished.insert(id);
  }
  int in_shard_count = 0, to_run = 0;
  for (const PlannedRun& run : runs) {
    if (!in_shard(run.id, shard)) continue;
    ++in_shard_count;
    const bool done = finished.contains(run.id);
    to_run += !done;
    fmt::print("{}  {:<8}  {}\n", run.id, done ? "finished" : "to run", run.label);
  }
  fmt::print("{} runs in this shard ({} in the sweep), {} to run\n", in_shard_count, runs.size(),
             to_run);
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Train every run of a sweep spec not yet in the results database (resumable)");
  cmd->add_option("spec", args->spec, "Sweep spec (YAML: base config + grid; docs/sweeps.md)")
      ->required();
  cmd->add_option("--db", args->database, "Results database (SQLite; created if missing)")
      ->required();
  CLI::Option* jobs_option = cmd->add_option(
      "--jobs,-j", args->run.jobs,
      "Runs at a time, each in its own process (default: one per thread, at most the runs, "
      "as many as memory holds)");
  cmd->add_option("--threads", args->run.threads,
                  "Threads shared by the jobs (0: every CPU this process may use); each run gets "
                  "threads/jobs")
      ->capture_default_str();
  cmd->add_option(
         "--shard", args->run.shard,
         "Run only slice i of n (0-based i/n), or auto: from the Slurm array task, srun or "
         "mpirun rank (docs/sweeps.md)")
      ->capture_default_str();
  cmd->add_option("--runs", args->run.runs_dir,
                  "Directory of run directories (default: the database path with .runs)");
  cmd->add_flag("--dry-run", args->dry_run, "List the runs and what is left to do; train nothing");
  cmd->add_flag("--quiet", args->run.quiet, "Only the final summary line");
  cmd->callback([args, jobs_option] {
    // --jobs 0 is an error; without --jobs, 0 asks for the job plan (plan_jobs).
    if (jobs_option->count() > 0 && args->run.jobs < 1)
      throw ConfigError("--jobs: must be at least 1");
    validate_run_args(args->run);
    const SweepSpec spec = load_sweep_spec(args->spec);
    const std::vector<PlannedRun> runs = expand_sweep(spec);
    if (args->dry_run) {
      print_plan(runs, *args);
      return;
    }
    run_planned_sweep(spec, runs, args->database, args->run);
  });
}

}  // namespace attnrank::cli
