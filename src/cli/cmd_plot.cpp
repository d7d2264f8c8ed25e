// attnrank plot RUN... [--out FILE.png|.svg] [--metric NAME]... [--log-y]
#include <fmt/core.h>

#include <memory>

#include "attnrank/experiment/learning_curves.h"
#include "commands.h"

namespace attnrank::cli {

namespace {

struct PlotArgs {
  std::vector<std::string> runs;
  LearningCurvesOptions options;
};

}  // namespace

void add_plot_command(CLI::App& app) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plot", "Draw the learning curves (metrics.csv) of one or more run directories");
  cmd->add_option("runs", args->runs, "Run directories written by `attnrank train` or a sweep")
      ->required();
  cmd->add_option("--out", args->options.out, "Figure file, .png or .svg (default: curves.png)");
  cmd->add_option("--metric", args->options.metrics,
                  "Column of metrics.csv to draw, one panel each (repeat or comma-separate; "
                  "default: train_loss and every validation_* column)")
      ->delimiter(',');
  cmd->add_flag("--log-y", args->options.log_y, "Logarithmic y axis");
  cmd->callback(
      [args] { fmt::print("figure {}\n", plot_learning_curves(args->runs, args->options)); });
}

}  // namespace attnrank::cli
