// attnrank submit SPEC|FIGURE --shards K [--scale small|medium|paper] [--time T] [--cpus C]
//                 [--jobs J] [--partition P] [--sbatch OPTION]... [--out DIR] [--db PATH]
//                 [--signal-before S] [--max-requeues N] [--presets DIR] [--dry-run]
#include <fmt/core.h>

#include <memory>

#include "attnrank/core/error.h"
#include "attnrank/experiment/slurm.h"
#include "attnrank/report/output_files.h"
#include "commands.h"
#include "sweep_session.h"

namespace attnrank::cli {

namespace {

std::string command_line(const SubmitOptions& options, bool scale_given) {
  std::string line = "attnrank submit " + shell_quote(options.target);
  if (scale_given) line += " --scale " + options.scale;
  line +=
      fmt::format(" --shards {} --time {} --cpus {}", options.shards, options.time, options.cpus);
  if (options.jobs != 1) line += fmt::format(" --jobs {}", options.jobs);
  if (!options.partition.empty()) line += " --partition " + options.partition;
  for (const auto& option : options.sbatch_options) line += " --sbatch " + shell_quote(option);
  if (!options.out_dir.empty()) line += " --out " + shell_quote(options.out_dir);
  if (!options.database.empty()) line += " --db " + shell_quote(options.database);
  if (options.signal_before >= 0) line += fmt::format(" --signal-before {}", options.signal_before);
  if (options.max_requeues != 20) line += fmt::format(" --max-requeues {}", options.max_requeues);
  if (!options.presets_dir.empty()) line += " --presets " + shell_quote(options.presets_dir);
  return line;
}

}  // namespace

void add_submit_command(CLI::App& app) {
  auto options = std::make_shared<SubmitOptions>();
  auto dry_run = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "submit",
      "Run a sweep or a figure's sweep on Slurm: an sbatch array (one task per shard, requeued "
      "at its time limit) and a job after it that merges the shards (docs/sweeps.md)");
  cmd->add_option("target", options->target, "Sweep spec (YAML) or figure of reproduce")
      ->required();
  CLI::Option* scale =
      cmd->add_option("--scale", options->scale, "A figure's scale: small, medium or paper")
          ->capture_default_str();
  cmd->add_option("--shards", options->shards, "Array tasks, one shard of the sweep each")
      ->required();
  cmd->add_option("--time", options->time,
                  "Time limit of each array task (sbatch --time: MINUTES, H:MM:SS, D-HH, ...)")
      ->capture_default_str();
  cmd->add_option("--cpus", options->cpus,
                  "CPUs of each array task (--cpus-per-task); its sweep uses that many threads")
      ->capture_default_str();
  cmd->add_option("--jobs,-j", options->jobs, "Runs at a time in each array task (share the CPUs)")
      ->capture_default_str();
  cmd->add_option("--partition", options->partition, "Slurm partition (default: the cluster's)");
  cmd->add_option("--sbatch", options->sbatch_options,
                  "One more sbatch option for both jobs, e.g. --sbatch=--account=proj (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--out", options->out_dir,
                  "Directory of the scripts, shard databases and logs (default: "
                  "reproduce/FIGURE-SCALE, or slurm/SPECNAME)");
  cmd->add_option("--db", options->database, "The merged database (default: OUT/results.db)");
  cmd->add_option("--signal-before", options->signal_before,
                  "Seconds before the time limit a task stops and requeues itself (default: 300, "
                  "at most half the limit)");
  cmd->add_option("--max-requeues", options->max_requeues,
                  "Times one array task may be requeued at its time limit")
      ->capture_default_str();
  cmd->add_option("--presets", options->presets_dir,
                  "Directory of the presets (configs/reproduce)");
  cmd->add_flag("--dry-run", *dry_run, "Print both scripts; write and submit nothing");
  cmd->callback([options, dry_run, scale] {
    options->binary = self_executable();
    options->command_line = command_line(*options, scale->count() > 0);
    const SubmitPlan plan = plan_submission(*options);
    if (!plan.figure && scale->count() > 0)
      throw ConfigError("--scale: only for a figure; " + options->target + " is a sweep spec");
    if (*dry_run) {
      fmt::print("# {}\n{}\n# {}\n{}\n", plan.array_path, plan.array_script, plan.merge_path,
                 plan.merge_script);
      fmt::print(
          "# dry run: nothing written or submitted; without --dry-run: sbatch --parsable {} && "
          "sbatch --parsable --dependency=afterany:ARRAY_JOB_ID {}\n",
          plan.array_path, plan.merge_path);
      return;
    }
    write_submission(plan);
    const SubmittedJobs jobs = submit_with_sbatch(plan);
    fmt::print(
        "submitted {}: array job {} ({} tasks, {} runs) and merge job {} (after the array "
        "ends)\n"
        "scripts: {}, {}\nlogs: {}/\nmerged database: {}\nwatch: squeue -j {},{}\n",
        plan.name, jobs.array_id, options->shards, plan.runs, jobs.merge_id, plan.array_path,
        plan.merge_path, plan.logs_dir, plan.database, jobs.array_id, jobs.merge_id);
  });
}

}  // namespace attnrank::cli
