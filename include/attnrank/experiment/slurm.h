// Sweeps on a cluster (docs/sweeps.md, "Slurm"): the shard of this process from the
// variables Slurm, Open MPI or a PMI launcher sets (`--shard auto`), and the sbatch
// scripts of `attnrank submit`: one array task per shard, requeued before its time
// limit so that its runs resume, and a job after the array that merges the shard
// databases and draws the figure.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attnrank/experiment/sweep.h"

namespace attnrank {

// The value of an environment variable; nullptr when it is not set.
using EnvironmentLookup = std::function<const char*(const char*)>;

struct ResolvedShard {
  Shard shard;
  std::string source;  // the variables it came from ("" for an explicit i/n)
};

// The shard of this process, from the first of these that is set:
//   SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (an sbatch --array task; the
//     index counts from SLURM_ARRAY_TASK_MIN in steps of SLURM_ARRAY_TASK_STEP
//     when Slurm sets them, so --array=1-8 gives 0/8 .. 7/8),
//   SLURM_PROCID with SLURM_NTASKS (srun -n K),
//   OMPI_COMM_WORLD_RANK with OMPI_COMM_WORLD_SIZE (Open MPI's mpirun -n K),
//   PMI_RANK with PMI_SIZE (MPICH and Intel MPI's mpiexec),
//   PMIX_RANK with the first of OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS (PMIx
//     itself exports no job size).
// Throws ConfigError (one line naming the variables and their values) when none is
// set, a rank comes without its size, a value is not a number, or the values do
// not make a shard (an index outside 0..count-1, an array that is not one evenly
// stepped range).
ResolvedShard shard_from_environment(const EnvironmentLookup& lookup);
// `--shard TEXT`: "auto" reads this process's environment; anything else is i/n.
ResolvedShard resolve_shard(const std::string& text);

// A Slurm time limit in seconds: "MINUTES", "MINUTES:SECONDS", "HOURS:MINUTES:SECONDS",
// "DAYS-HOURS", "DAYS-HOURS:MINUTES" or "DAYS-HOURS:MINUTES:SECONDS" (sbatch --time).
// Throws ConfigError naming `option` for anything else or a zero limit.
int64_t slurm_time_seconds(const std::string& text, const std::string& option = "--time");

struct SubmitOptions {
  std::string target;            // a sweep spec (file) or a figure of `reproduce`
  std::string scale = "small";   // figures only
  std::string presets_dir;       // figures only: where the presets are ("" = the default search)
  int shards = 0;                // array tasks, one shard each
  std::string time = "6:00:00";  // per array task (sbatch --time)
  int cpus = 1;                  // per array task: --cpus-per-task, and the sweep's --threads
  int jobs = 1;                  // runs at a time in an array task (they share the cpus)
  std::string partition;         // "" = the cluster's default
  std::vector<std::string> sbatch_options;  // more #SBATCH lines ("--account=x")
  std::string out_dir;       // "" = reproduce/FIGURE-SCALE for a figure, slurm/NAME for a spec
  std::string database;      // the merged database ("" = OUT/results.db)
  int signal_before = -1;    // seconds before the limit the task is told to stop (-1: 300,
                             // at most half the limit)
  int max_requeues = 20;     // times one array task is requeued at most
  std::string binary;        // the attnrank executable the jobs run (absolute)
  std::string command_line;  // how submit was called, for the scripts' header
};

struct SubmitPlan {
  std::string name;       // job name: attnrank-<spec name> or attnrank-<figure>-<scale>
  bool figure = false;    // target is a figure
  std::string spec_path;  // the sweep spec the array runs (a figure's preset)
  int runs = 0;           // runs in the sweep
  int signal_before = 0;  // resolved
  std::string out_dir, database, shards_dir, logs_dir;  // absolute
  std::string array_path, merge_path;                   // OUT/slurm-array.sh, OUT/slurm-merge.sh
  std::string array_script, merge_script;
};

// Checks the options, expands the sweep (so a bad spec fails here, not on the
// cluster) and writes nothing. Throws ConfigError for bad options.
SubmitPlan plan_submission(const SubmitOptions& options);
// Creates OUT, its shards/ and logs/ folders, and writes both scripts.
void write_submission(const SubmitPlan& plan);

struct SubmittedJobs {
  std::string array_id, merge_id;
};
// `sbatch --parsable ARRAY` then `sbatch --parsable --dependency=afterany:ID MERGE`.
// Throws std::runtime_error with sbatch's message when a submission fails (the
// array job is cancelled with scancel when only the merge job failed).
SubmittedJobs submit_with_sbatch(const SubmitPlan& plan, const std::string& sbatch = "sbatch");

}  // namespace attnrank
