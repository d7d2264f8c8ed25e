// attnrank eval --checkpoint DIR [--batches K]
#include <fmt/core.h>

#include <memory>

#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "commands.h"

namespace attnrank::cli {

void add_eval_command(CLI::App& app) {
  auto checkpoint = std::make_shared<std::string>();
  auto batches = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand("eval", "Recompute the held-out metrics of a trained run");
  cmd->add_option("--checkpoint", *checkpoint, "Run directory written by `attnrank train`")
      ->required();
  cmd->add_option("--batches", *batches,
                  "Test batches (default: the run's train.eval_batches; text tasks read their "
                  "whole held-out splits)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([checkpoint, batches] {
    const Evaluation evaluation = evaluate_checkpoint(*checkpoint, *batches);
    for (const auto& [name, value] : evaluation.metrics) fmt::print("{} {:.9g}\n", name, value);
  });
}

}  // namespace attnrank::cli
