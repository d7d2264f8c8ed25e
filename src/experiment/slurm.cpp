// `--shard auto` and the sbatch scripts of `attnrank submit` (docs/sweeps.md).
#include "attnrank/experiment/slurm.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "attnrank/core/error.h"
#include "attnrank/core/files.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/report/output_files.h"

extern char** environ;

namespace attnrank {

namespace fs = std::filesystem;

namespace {

// A non-negative decimal integer, or -1.
int64_t parse_count(const std::string& text) {
  if (text.empty() || text.size() > 12 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoll(text);
}

struct Variable {
  std::string name;
  const char* value = nullptr;
  bool set() const { return value != nullptr; }
  std::string shown() const { return name + "=" + (value ? value : ""); }
};

// The value of `variable` as a number; ConfigError naming it otherwise.
int64_t number_of(const Variable& variable) {
  const int64_t value = parse_count(variable.value ? variable.value : "");
  if (value < 0)
    throw ConfigError(
        fmt::format("--shard auto: {} is not a non-negative integer", variable.shown()));
  return value;
}

ResolvedShard make_shard(int64_t index, int64_t count, const std::string& source) {
  if (count < 1)
    throw ConfigError("--shard auto: " + source + ": the number of shards must be at least 1");
  if (index >= count)
    throw ConfigError(
        fmt::format("--shard auto: {}: index {} is not in 0..{}", source, index, count - 1));
  if (count > 1000000) throw ConfigError("--shard auto: " + source + ": more than 1000000 shards");
  return ResolvedShard{Shard{static_cast<int>(index), static_cast<int>(count)}, source};
}

ResolvedShard array_shard(const EnvironmentLookup& lookup) {
  const Variable id{"SLURM_ARRAY_TASK_ID", lookup("SLURM_ARRAY_TASK_ID")};
  const Variable count{"SLURM_ARRAY_TASK_COUNT", lookup("SLURM_ARRAY_TASK_COUNT")};
  const Variable min{"SLURM_ARRAY_TASK_MIN", lookup("SLURM_ARRAY_TASK_MIN")};
  const Variable max{"SLURM_ARRAY_TASK_MAX", lookup("SLURM_ARRAY_TASK_MAX")};
  const Variable step{"SLURM_ARRAY_TASK_STEP", lookup("SLURM_ARRAY_TASK_STEP")};
  if (!count.set())
    throw ConfigError(fmt::format(
        "--shard auto: {} is set but SLURM_ARRAY_TASK_COUNT is not (Slurm sets both)", id.shown()));
  const int64_t task = number_of(id), tasks = number_of(count);
  const int64_t first = min.set() ? number_of(min) : 0;
  const int64_t stride = step.set() ? number_of(step) : 1;
  std::string source = fmt::format("{} {}", id.shown(), count.shown());
  for (const Variable* variable : {&min, &max, &step})
    if (variable->set()) source += fmt::format(" {}", variable->shown());
  if (stride < 1)
    throw ConfigError(fmt::format("--shard auto: {} must be at least 1", step.shown()));
  if (task < first)
    throw ConfigError("--shard auto: " + source + ": the task id is below the array's minimum");
  if ((task - first) % stride != 0)
    throw ConfigError("--shard auto: " + source + ": the task id is not on the array's step");
  if (max.set()) {
    const int64_t last = number_of(max);
    if (last < first || (last - first) % stride != 0 || (last - first) / stride + 1 != tasks)
      throw ConfigError("--shard auto: " + source +
                        ": the array is not one evenly stepped range of task ids (use "
                        "--array=0-N, or --shard i/n)");
  }
  return make_shard((task - first) / stride, tasks, source);
}

}  // namespace

ResolvedShard shard_from_environment(const EnvironmentLookup& lookup) {
  if (lookup("SLURM_ARRAY_TASK_ID") != nullptr) return array_shard(lookup);
  // Rank variable and the variables that may give the size, in order.
  struct Pair {
    const char* rank;
    std::vector<const char*> sizes;
  };
  const std::array<Pair, 4> pairs = {
      Pair{"SLURM_PROCID", {"SLURM_NTASKS"}},
      Pair{"OMPI_COMM_WORLD_RANK", {"OMPI_COMM_WORLD_SIZE"}},
      Pair{"PMI_RANK", {"PMI_SIZE"}},
      Pair{"PMIX_RANK", {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}},
  };
  for (const Pair& pair : pairs) {
    const Variable rank{pair.rank, lookup(pair.rank)};
    if (!rank.set()) continue;
    for (const char* size_name : pair.sizes) {
      const Variable size{size_name, lookup(size_name)};
      if (!size.set()) continue;
      return make_shard(number_of(rank), number_of(size),
                        fmt::format("{} {}", rank.shown(), size.shown()));
    }
    std::string sizes;
    for (const char* size_name : pair.sizes)
      sizes += fmt::format("{}{}", sizes.empty() ? "" : " or ", size_name);
    throw ConfigError(
        fmt::format("--shard auto: {} is set but {} is not, so the number of shards is unknown "
                    "(use --shard i/n)",
                    rank.shown(), sizes));
  }
  throw ConfigError(
      "--shard auto: no shard in the environment (none of SLURM_ARRAY_TASK_ID, SLURM_PROCID, "
      "OMPI_COMM_WORLD_RANK, PMI_RANK, PMIX_RANK is set); run it as an sbatch --array task, "
      "under srun -n K or mpirun -n K, or give --shard i/n");
}

ResolvedShard resolve_shard(const std::string& text) {
  if (text == "auto")
    return shard_from_environment([](const char* name) { return std::getenv(name); });
  return ResolvedShard{parse_shard(text), ""};
}

int64_t slurm_time_seconds(const std::string& text, const std::string& option) {
  const auto bad = [&] {
    return ConfigError(option + " '" + text +
                       "': expected a Slurm time limit: MINUTES, MINUTES:SECONDS, "
                       "HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES or "
                       "DAYS-HOURS:MINUTES:SECONDS");
  };
  std::string rest = text;
  int64_t days = -1;
  if (const auto dash = rest.find('-'); dash != std::string::npos) {
    days = parse_count(rest.substr(0, dash));
    if (days < 0) throw bad();
    rest = rest.substr(dash + 1);
  }
  std::vector<int64_t> fields;
  size_t start = 0;
  for (;;) {
    const auto colon = rest.find(':', start);
    const int64_t value = parse_count(rest.substr(start, colon - start));
    if (value < 0) throw bad();
    fields.push_back(value);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (fields.size() > 3) throw bad();
  int64_t seconds = 0;
  if (days >= 0) {
    // DAYS-HOURS[:MINUTES[:SECONDS]]
    const int64_t scale[] = {3600, 60, 1};
    for (size_t i = 0; i < fields.size(); ++i) seconds += fields[i] * scale[i];
    seconds += days * 86400;
  } else if (fields.size() == 1) {
    seconds = fields[0] * 60;
  } else if (fields.size() == 2) {
    seconds = fields[0] * 60 + fields[1];
  } else {
    seconds = fields[0] * 3600 + fields[1] * 60 + fields[2];
  }
  if (seconds <= 0) throw ConfigError(option + " '" + text + "': the time limit must be positive");
  return seconds;
}

namespace {

std::string hms(int64_t seconds) {
  return fmt::format("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
}

std::string absolute(const std::string& path) {
  return fs::absolute(fs::path(path)).lexically_normal().string();
}

// #SBATCH lines shared by both scripts.
std::string common_sbatch_lines(const SubmitOptions& options) {
  std::string lines;
  if (!options.partition.empty()) lines += "#SBATCH --partition=" + options.partition + "\n";
  for (const auto& option : options.sbatch_options) lines += "#SBATCH " + option + "\n";
  return lines;
}

std::string array_script(const SubmitOptions& options, const SubmitPlan& plan) {
  const std::string shard_db = fmt::format("{}/shard-${{SLURM_ARRAY_TASK_ID}}-of-{}.db",
                                           shell_quote(plan.shards_dir), options.shards);
  std::string s;
  s += "#!/bin/bash\n";
  s += fmt::format("# {}: one array task per shard of {} ({} runs in {} shards).\n", plan.name,
                   plan.spec_path, plan.runs, options.shards);
  s += "# Written by: " + options.command_line + "\n";
  s += "# Task i trains shard i/" + std::to_string(options.shards) +
       " (attnrank sweep --shard auto) into its own database,\n"
       "# shards/shard-i-of-" +
       std::to_string(options.shards) + ".db. Slurm sends USR1 to this script " +
       std::to_string(plan.signal_before) +
       " s before the time limit: it\n"
       "# stops the sweep (attnrank exits with its 'interrupted' status) and requeues the "
       "task,\n"
       "# which resumes the unfinished runs. scancel stops the task without a requeue.\n";
  s += "#SBATCH --job-name=" + plan.name + "\n";
  s += fmt::format("#SBATCH --array=0-{}\n", options.shards - 1);
  s += "#SBATCH --ntasks=1\n";
  s += fmt::format("#SBATCH --cpus-per-task={}\n", options.cpus);
  s += "#SBATCH --time=" + options.time + "\n";
  s += "#SBATCH --output=" + plan.logs_dir + "/shard-%a.log\n";
  s += "#SBATCH --open-mode=append\n";
  s += "#SBATCH --requeue\n";
  s += fmt::format("#SBATCH --signal=B:USR1@{}\n", plan.signal_before);
  s += common_sbatch_lines(options);
  s += "set -u\n";
  s += "attnrank=" + shell_quote(options.binary) + "\n";
  s += "shard_db=" + shard_db + "\n";
  s += fmt::format("max_requeues={}\n", options.max_requeues);
  s += "task=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n";
  s += "attempt=$((${SLURM_RESTART_COUNT:-0} + 1))\n";
  s += "echo \"== $(date -u +%FT%TZ) task $task on ${SLURMD_NODENAME:-?}, attempt $attempt\"\n";
  s += "# USR1 (once, however often it comes) stops the sweep: one SIGTERM, which it answers\n"
       "# by stopping its runs cleanly (a second SIGTERM would kill them at once). scancel\n"
       "# and the time limit itself send SIGTERM to every process of the job: the script\n"
       "# only waits then.\n";
  s += "warned=0 pid=\n";
  s += "trap 'if [ \"$warned\" = 0 ] && [ -n \"$pid\" ]; then warned=1; kill -TERM \"$pid\" "
       "2>/dev/null; fi' USR1\n";
  s += "trap ':' TERM INT\n";
  s += fmt::format(
      "\"$attnrank\" sweep {} --shard auto --db \"$shard_db\" --threads {} --jobs {} &\n",
      shell_quote(plan.spec_path), options.cpus, options.jobs);
  s += "pid=$!\n";
  s += "# wait returns early when a trapped signal arrives: wait again until the sweep ends.\n";
  s += "while :; do\n";
  s += "  wait \"$pid\"; status=$?\n";
  s += "  kill -0 \"$pid\" 2>/dev/null || break\n";
  s += "done\n";
  s += "if [ \"$status\" -ne 0 ] && [ \"$warned\" = 1 ]; then\n";
  s += "  if [ \"${SLURM_RESTART_COUNT:-0}\" -ge \"$max_requeues\" ]; then\n";
  s += "    echo \"attnrank: task $task reached its time limit $attempt times; not requeued "
       "again (submit again to continue)\" >&2\n";
  s += "    exit \"$status\"\n";
  s += "  fi\n";
  s += "  echo \"== $(date -u +%FT%TZ) stopped before the time limit (sweep exit status "
       "$status); requeueing $task\"\n";
  s += "  scontrol requeue \"$SLURM_JOB_ID\" && exit 0\n";
  s += "  echo \"attnrank: scontrol requeue $task failed; submit again to continue\" >&2\n";
  s += "fi\n";
  s += "echo \"== $(date -u +%FT%TZ) sweep exit status $status\"\n";
  s += "exit \"$status\"\n";
  return s;
}

std::string merge_script(const SubmitOptions& options, const SubmitPlan& plan, int64_t time_limit) {
  std::string s;
  s += "#!/bin/bash\n";
  s += "# " + plan.name +
       "-merge: runs once every array task has ended (afterany), merges the shard\n"
       "# databases into " +
       plan.database + (plan.figure ? ", draws the figure and report" : "") +
       ", and exits 1 if runs are missing.\n";
  s += "# Written by: " + options.command_line + "\n";
  s += "#SBATCH --job-name=" + plan.name + "-merge\n";
  s += "#SBATCH --ntasks=1\n";
  s += "#SBATCH --cpus-per-task=1\n";
  s += "#SBATCH --time=" + hms(std::min<int64_t>(time_limit, 3600)) + "\n";
  s += "#SBATCH --output=" + plan.logs_dir + "/merge.log\n";
  s += "#SBATCH --open-mode=append\n";
  s += common_sbatch_lines(options);
  s += "set -u\n";
  s += "attnrank=" + shell_quote(options.binary) + "\n";
  s += "db=" + shell_quote(plan.database) + "\n";
  s += "echo \"== $(date -u +%FT%TZ) merge job ${SLURM_JOB_ID:-}\"\n";
  s += "shopt -s nullglob\n";
  s += fmt::format("shard_dbs=({}/shard-*-of-{}.db)\n", shell_quote(plan.shards_dir),
                   options.shards);
  s += "if [ ${#shard_dbs[@]} -eq 0 ]; then\n";
  s += "  echo \"attnrank: no shard database in " + plan.shards_dir +
       "; see the array tasks' logs in " + plan.logs_dir + "\" >&2\n";
  s += "  exit 1\n";
  s += "fi\n";
  s += "\"$attnrank\" merge \"$db\" \"${shard_dbs[@]}\" || exit $?\n";
  if (plan.figure) {
    s += fmt::format(
        "\"$attnrank\" reproduce {} --scale {}{} --no-train --db \"$db\" --out {} || exit $?\n",
        shell_quote(options.target), shell_quote(options.scale),
        options.presets_dir.empty()
            ? std::string()
            : fmt::format(" --presets {}", shell_quote(absolute(options.presets_dir))),
        shell_quote(plan.out_dir));
  }
  s += "# The last line of the dry run: \"N runs in this shard (N in the sweep), LEFT to run\".\n";
  s += fmt::format(
      "left=$(\"$attnrank\" sweep {} --db \"$db\" --dry-run | tail -n 1 | awk '{{print "
      "$(NF-2)}}')\n",
      shell_quote(plan.spec_path));
  s += "if [ \"$left\" != 0 ]; then\n";
  s += fmt::format(
      "  echo \"attnrank: $left of {} runs are not finished in $db (logs: {}); submit again with "
      "the same command to run them\" >&2\n",
      plan.runs, plan.logs_dir);
  s += "  exit 1\n";
  s += "fi\n";
  s += fmt::format("echo \"== $(date -u +%FT%TZ) all {} runs are in $db\"\n", plan.runs);
  return s;
}

}  // namespace

SubmitPlan plan_submission(const SubmitOptions& options) {
  if (options.target.empty()) throw ConfigError("submit: a sweep spec or a figure is required");
  if (options.shards < 1) throw ConfigError("--shards: must be at least 1");
  if (options.cpus < 1) throw ConfigError("--cpus: must be at least 1");
  if (options.jobs < 1) throw ConfigError("--jobs: must be at least 1");
  if (options.max_requeues < 0) throw ConfigError("--max-requeues: must be at least 0");
  if (options.binary.empty()) throw ConfigError("submit: the attnrank executable is unknown");
  for (const std::string* text : {&options.partition, &options.time})
    if (text->find_first_of(" \t\n'\"$`\\") != std::string::npos)
      throw ConfigError("submit: '" + *text + "' contains a space or shell character");
  for (const auto& option : options.sbatch_options)
    if (option.rfind("--", 0) != 0 || option.find('\n') != std::string::npos)
      throw ConfigError("--sbatch '" + option + "': expected one sbatch option, e.g. --account=x");
  const int64_t limit = slurm_time_seconds(options.time);

  SubmitPlan plan;
  const auto& figures = reproduce_figures();
  plan.figure = std::find(figures.begin(), figures.end(), options.target) != figures.end();
  std::error_code error;
  if (plan.figure) {
    plan.spec_path = absolute(find_preset(options.target, options.scale, options.presets_dir));
    plan.name = "attnrank-" + options.target + "-" + options.scale;
  } else {
    if (!fs::is_regular_file(options.target, error)) {
      std::string names;
      for (const auto& name : figures) names += (names.empty() ? "" : ", ") + name;
      throw ConfigError("submit: '" + options.target +
                        "' is neither a sweep spec file nor a figure (" + names + ")");
    }
    plan.spec_path = absolute(options.target);
  }
  const SweepSpec spec = load_sweep_spec(plan.spec_path);
  if (!plan.figure) plan.name = "attnrank-" + spec.name;
  plan.runs = static_cast<int>(expand_sweep(spec).size());
  if (options.shards > plan.runs)
    throw ConfigError(
        fmt::format("--shards {}: the sweep has only {} runs", options.shards, plan.runs));

  plan.signal_before = options.signal_before >= 0
                           ? options.signal_before
                           : static_cast<int>(std::min<int64_t>(300, limit / 2));
  if (plan.signal_before >= limit)
    throw ConfigError(fmt::format("--signal-before {}: must be shorter than the time limit ({} s)",
                                  plan.signal_before, limit));

  const std::string out = options.out_dir.empty()
                              ? (plan.figure ? "reproduce/" + options.target + "-" + options.scale
                                             : "slurm/" + spec.name)
                              : options.out_dir;
  plan.out_dir = absolute(out);
  plan.database = absolute(options.database.empty() ? (fs::path(out) / "results.db").string()
                                                    : options.database);
  plan.shards_dir = (fs::path(plan.out_dir) / "shards").string();
  plan.logs_dir = (fs::path(plan.out_dir) / "logs").string();
  plan.array_path = (fs::path(plan.out_dir) / "slurm-array.sh").string();
  plan.merge_path = (fs::path(plan.out_dir) / "slurm-merge.sh").string();
  // Slurm's --output takes the path as written (no quotes): it must have no space.
  if (plan.logs_dir.find_first_of(" \t\n%") != std::string::npos)
    throw ConfigError("--out '" + plan.out_dir + "': a space or % in the path (Slurm's --output)");
  plan.array_script = array_script(options, plan);
  plan.merge_script = merge_script(options, plan, limit);
  return plan;
}

void write_submission(const SubmitPlan& plan) {
  for (const auto& dir : {plan.out_dir, plan.shards_dir, plan.logs_dir})
    ensure_output_directory(dir);
  write_file_atomically(plan.array_path, plan.array_script);
  write_file_atomically(plan.merge_path, plan.merge_script);
  for (const auto& path : {plan.array_path, plan.merge_path})
    fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::add);
}

namespace {

struct Captured {
  int status = -1;  // exit status, -1 when it did not exit normally
  std::string output;
};

// Runs `arguments` (looked up on PATH) with stdout and stderr in one pipe.
Captured run_captured(const std::vector<std::string>& arguments) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawned != 0) {
    close(pipe_fds[0]);
    throw std::runtime_error("cannot run " + arguments[0] + ": " + std::strerror(spawned));
  }
  Captured captured;
  char buffer[4096];
  for (;;) {
    const ssize_t got = read(pipe_fds[0], buffer, sizeof buffer);
    if (got > 0) {
      captured.output.append(buffer, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  captured.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return captured;
}

// The job id of `sbatch --parsable` output ("123" or "123;cluster", after any
// warnings); "" when there is none.
std::string parsable_job_id(const std::string& output) {
  std::string id;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(start, end - start);
    line = line.substr(0, line.find(';'));
    if (!line.empty() &&
        std::all_of(line.begin(), line.end(), [](char c) { return c >= '0' && c <= '9'; }))
      id = line;
    start = end + 1;
  }
  return id;
}

std::string trimmed(const std::string& text) {
  const auto begin = text.find_first_not_of(" \n\t");
  const auto end = text.find_last_not_of(" \n\t");
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

}  // namespace

SubmittedJobs submit_with_sbatch(const SubmitPlan& plan, const std::string& sbatch) {
  SubmittedJobs jobs;
  const Captured array = run_captured({sbatch, "--parsable", plan.array_path});
  jobs.array_id = parsable_job_id(array.output);
  if (array.status != 0 || jobs.array_id.empty())
    throw std::runtime_error("sbatch " + plan.array_path + " failed: " + trimmed(array.output));
  const Captured merge = run_captured(
      {sbatch, "--parsable", "--dependency=afterany:" + jobs.array_id, plan.merge_path});
  jobs.merge_id = parsable_job_id(merge.output);
  if (merge.status != 0 || jobs.merge_id.empty()) {
    const Captured cancel = run_captured({"scancel", jobs.array_id});
    throw std::runtime_error(
        "sbatch " + plan.merge_path + " failed: " + trimmed(merge.output) +
        (cancel.status == 0 ? "; array job " + jobs.array_id + " cancelled"
                            : "; cancel array job " + jobs.array_id + " by hand (scancel failed)"));
  }
  return jobs;
}

}  // namespace attnrank
