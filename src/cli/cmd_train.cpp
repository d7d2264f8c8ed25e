// attnrank train [--config FILE.yaml] [section.key=value ...] --out DIR [--restart]
#include <fmt/core.h>
#include <signal.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/progress.h"
#include "attnrank/train/train.h"
#include "commands.h"

namespace attnrank::cli {

namespace {

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_dir;
  bool quiet = false;
  bool restart = false;
};

volatile std::sig_atomic_t stop_signal = 0;

// The first SIGTERM (Slurm's time limit, scancel, a sweep's stop), SIGINT or SIGHUP
// asks the loop to save its state and stop before the next step; the handler then
// steps aside, so a second signal ends the process at once.
void request_stop(int signal) {
  stop_signal = signal;
  std::signal(signal, SIG_DFL);
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGTERM, SIGINT, SIGHUP}) sigaction(signal, &action, nullptr);
}

// ATTNRANK_FAULT_KILL_AT_STEP=S: the process kills itself with SIGKILL before step
// S, as a machine crash or `kill -9` would (for the resume tests; docs/reliability.md).
int64_t fault_kill_step() {
  const char* text = std::getenv("ATTNRANK_FAULT_KILL_AT_STEP");
  if (text == nullptr || *text == '\0') return -1;
  char* end = nullptr;
  const long long step = std::strtoll(text, &end, 10);
  if (*end != '\0' || step < 0)
    throw ConfigError(std::string("ATTNRANK_FAULT_KILL_AT_STEP: expected a step >= 0, got '") +
                      text + "'");
  return step;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train one model and write its run directory; run again on the same directory to resume "
      "a stopped or killed run from its checkpoint");
  cmd->add_option("--config", args->config_path, "YAML config (sections model, task, train)");
  cmd->add_option("overrides", args->overrides, "Dotted overrides, e.g. model.rank=32");
  cmd->add_option("--out", args->out_dir,
                  "Run directory: new or empty, or one holding this run (it resumes)")
      ->required();
  cmd->add_flag("--restart,--overwrite", args->restart,
                "Start from step 0, replacing the run (this or another) that DIR holds");
  cmd->add_flag("--quiet", args->quiet, "No progress output, only the final line");
  cmd->callback([args] {
    const RunConfig config = load_config(args->config_path, args->overrides);
    TrainOptions options;
    options.progress_bar = stdout_is_terminal();
    options.log = args->quiet ? nullptr : &std::cout;
    options.restart = args->restart;
    const int64_t kill_step = fault_kill_step();
    if (kill_step >= 0)
      options.before_step = [kill_step](int64_t step) {
        if (step == kill_step) std::raise(SIGKILL);
      };
    stop_signal = 0;
    install_stop_handlers();
    options.should_stop = [] { return stop_signal != 0; };
    const TrainSummary summary = train(config, args->out_dir, options);
    if (summary.status == "interrupted") {
      fmt::print(stderr,
                 "attnrank: stopped by signal {} after {} of {} steps; training state saved in "
                 "{}; run the same command again to resume\n",
                 static_cast<int>(stop_signal), summary.steps, config.train.steps, args->out_dir);
      throw ExitCode{kExitInterrupted};
    }
    if (summary.status == "diverged") {
      fmt::print(stderr,
                 "attnrank: run diverged (NaN/inf loss or gradient) after {} steps; metrics kept "
                 "in {}\n",
                 summary.steps, args->out_dir);
      throw ExitCode{kExitDiverged};
    }
    std::string held_out;
    if (std::isfinite(summary.test_mse)) {
      held_out =
          fmt::format("test_mse {:.6g} (trivial {:.3g})", summary.test_mse, summary.trivial_mse);
    } else {
      for (const auto& [name, value] : summary.final_metrics)
        if (name.starts_with("test_"))
          held_out += fmt::format("{}{} {:.6g}", held_out.empty() ? "" : ", ", name, value);
    }
    if (summary.already_finished) {
      fmt::print("done before: {} steps, {}, final train loss {:.6g} -> {}\n", summary.steps,
                 held_out, summary.final_train_loss, args->out_dir);
      return;
    }
    fmt::print(
        "done: {} steps, {}, final train loss {:.6g}, "
        "{:.2f} ms/step ({:.1f} steps/s, {} thread{}), {} parameters ({} attention) -> {}\n",
        summary.steps, held_out, summary.final_train_loss, summary.ms_per_step,
        summary.ms_per_step > 0 ? 1000.0 / summary.ms_per_step : 0.0, summary.threads,
        summary.threads == 1 ? "" : "s", summary.parameters, summary.attention_parameters,
        args->out_dir);
  });
}

}  // namespace attnrank::cli
