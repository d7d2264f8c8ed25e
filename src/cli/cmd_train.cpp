// attnrank train [--config FILE.yaml] [section.key=value ...] --out DIR
#include <fmt/core.h>

#include <cmath>
#include <iostream>
#include <memory>

#include "attnrank/config_io/config_io.h"
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
};

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train one model and write its run directory");
  cmd->add_option("--config", args->config_path, "YAML config (sections model, task, train)");
  cmd->add_option("overrides", args->overrides, "Dotted overrides, e.g. model.rank=32");
  cmd->add_option("--out", args->out_dir, "Run directory to create")->required();
  cmd->add_flag("--quiet", args->quiet, "No progress output, only the final line");
  cmd->callback([args] {
    const RunConfig config = load_config(args->config_path, args->overrides);
    TrainOptions options;
    options.progress_bar = stdout_is_terminal();
    options.log = args->quiet ? nullptr : &std::cout;
    const TrainSummary summary = train(config, args->out_dir, options);
    if (summary.status == "diverged") {
      fmt::print(stderr,
                 "attnrank: run diverged (NaN/inf loss or gradient) after {} steps; metrics kept "
                 "in {}\n",
                 summary.steps, args->out_dir);
      throw ExitCode{3};
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
