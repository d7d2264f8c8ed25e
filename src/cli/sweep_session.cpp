#include "sweep_session.h"

#include <fmt/core.h>
#include <signal.h>

#include <array>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "attnrank/core/error.h"
#include "attnrank/core/progress.h"
#include "attnrank/core/resources.h"
#include "attnrank/experiment/slurm.h"
#include "commands.h"

namespace attnrank::cli {

namespace fs = std::filesystem;

namespace {

// The first SIGINT/SIGTERM/SIGHUP asks the sweep to stop cleanly (running runs are
// stopped and not recorded, finished ones are kept); a second one kills at once.
void on_stop_signal(int signal) {
  if (sweep_stop_requested()) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  request_sweep_stop();
}

// Installs the handler for the life of a sweep. Signals ignored at start (nohup,
// background jobs of a script) stay ignored.
class StopSignals {
 public:
  StopSignals() {
    clear_sweep_stop();
    for (size_t i = 0; i < kSignals.size(); ++i) {
      struct sigaction action {};
      action.sa_handler = on_stop_signal;
      action.sa_flags = SA_RESTART;
      sigemptyset(&action.sa_mask);
      sigaction(kSignals[i], nullptr, &previous_[i]);
      installed_[i] = previous_[i].sa_handler != SIG_IGN;
      if (installed_[i]) sigaction(kSignals[i], &action, nullptr);
    }
  }
  ~StopSignals() {
    for (size_t i = 0; i < kSignals.size(); ++i)
      if (installed_[i]) sigaction(kSignals[i], &previous_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
  std::array<bool, 3> installed_{};
};

}  // namespace

std::string default_runs_dir(const std::string& database) {
  return fs::path(database).replace_extension(".runs").string();
}

std::unique_ptr<ResultsStore> open_results(const std::string& path, ResultsStore::Mode mode) {
  try {
    return std::make_unique<ResultsStore>(path, mode);
  } catch (const FormatError& error) {
    throw ConfigError(error.what());
  }
}

std::string self_executable() {
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (error)
    throw std::runtime_error("cannot find this executable: /proc/self/exe: " + error.message());
  return exe.string();
}

void validate_run_args(const SweepRunArgs& args) {
  if (args.jobs < 0) throw ConfigError("--jobs: must be at least 1");
  if (args.threads < 0)
    throw ConfigError("--threads: must be at least 0 (0: every CPU this process may use)");
  if (args.threads > kMaxThreads)
    throw ConfigError(fmt::format("--threads: {} is more than the {} threads attnrank runs",
                                  args.threads, kMaxThreads));
  resolve_shard(args.shard);  // "auto" reads the environment
}

SweepOutcome run_planned_sweep(const SweepSpec& spec, const std::vector<PlannedRun>& runs,
                               const std::string& database, const SweepRunArgs& args) {
  validate_run_args(args);
  SweepOptions options;
  options.jobs = args.jobs;
  options.threads = args.threads;
  const ResolvedShard shard = resolve_shard(args.shard);
  options.shard = shard.shard;
  if (!shard.source.empty() && !args.quiet)
    fmt::print("shard {}/{} (from {})\n", shard.shard.index, shard.shard.count, shard.source);
  options.runs_dir = args.runs_dir.empty() ? default_runs_dir(database) : args.runs_dir;
  options.sweep_name = spec.name;
  options.log = args.quiet ? nullptr : &std::cout;
  options.progress_bar = stdout_is_terminal();
  // The run directory's path is checked before anything is created: an existing
  // file, or the database's own path (--db x.runs), is refused.
  {
    std::error_code error;
    const fs::path runs_path = fs::absolute(options.runs_dir).lexically_normal();
    if (fs::exists(runs_path, error) && !fs::is_directory(runs_path, error))
      throw ConfigError("--runs: " + options.runs_dir + " exists and is not a directory");
    if (runs_path == fs::absolute(database).lexically_normal())
      throw ConfigError("--db " + database +
                        ": the database and its run directory (--runs, by default the database "
                        "path with .runs) would be one path; name the database *.db or pass "
                        "--runs");
  }
  // The database first: a locked, corrupt or unwritable one stops the sweep before
  // anything is created.
  const auto store = open_results(database, ResultsStore::Mode::kWrite);
  std::error_code error;
  fs::create_directories(options.runs_dir, error);
  if (error || !fs::is_directory(options.runs_dir, error))
    throw ConfigError("--runs: cannot create directory " + options.runs_dir);
  SweepOutcome outcome;
  {
    const StopSignals signals;
    outcome = run_sweep(runs, *store, subprocess_trainer(self_executable()), options);
  }
  const int trained = outcome.done + outcome.diverged + outcome.failed;
  fmt::print(
      "sweep {}{}: {} runs: {} finished before{}, {} trained now ({} done, {} diverged, {} "
      "failed) -> {}\n",
      spec.name,
      options.shard.count > 1
          ? fmt::format(" (shard {}/{})", options.shard.index, options.shard.count)
          : "",
      outcome.total, outcome.skipped,
      outcome.recovered ? fmt::format(" ({} recovered from run directories)", outcome.recovered)
                        : "",
      trained, outcome.done, outcome.diverged, outcome.failed, database);
  std::fflush(stdout);
  if (outcome.interrupted) {
    fmt::print(stderr,
               "attnrank: sweep interrupted; finished runs are recorded, run the same command "
               "again to resume\n");
    throw ExitCode{130};
  }
  if (outcome.failed > 0) {
    fmt::print(stderr,
               "attnrank: {} run{} failed (errors: attnrank results {} --runs --status failed); "
               "running the sweep again retries them\n",
               outcome.failed, outcome.failed == 1 ? "" : "s", database);
    throw ExitCode{1};
  }
  return outcome;
}

}  // namespace attnrank::cli
