// attnrank merge OUT.db IN.db...: combine the databases of sweep shards.
#include <fmt/core.h>

#include <filesystem>
#include <memory>

#include "attnrank/core/error.h"
#include "commands.h"
#include "sweep_session.h"

namespace attnrank::cli {

namespace {

struct MergeArgs {
  std::string output;
  std::vector<std::string> inputs;
};

bool same_file(const std::string& a, const std::string& b) {
  std::error_code error;
  return std::filesystem::exists(a, error) && std::filesystem::exists(b, error) &&
         std::filesystem::equivalent(a, b, error);
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto args = std::make_shared<MergeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "merge", "Combine results databases (e.g. of --shard runs) into one; finished runs win");
  cmd->add_option("output", args->output, "Database to merge into (created if missing)")
      ->required();
  cmd->add_option("inputs", args->inputs, "Databases to read")->required();
  cmd->callback([args] {
    // Every input is opened and checked before the output changes.
    std::vector<std::unique_ptr<ResultsStore>> inputs;
    for (const auto& input : args->inputs) {
      if (same_file(input, args->output))
        throw ConfigError(input + ": is the output database; merge into a new file");
      inputs.push_back(open_results(input, ResultsStore::Mode::kRead));
    }
    const auto output = open_results(args->output, ResultsStore::Mode::kWrite);
    MergeCounts total;
    for (const auto& input : inputs) {
      const MergeCounts counts = output->merge_from(*input);
      fmt::print("{}: {} added, {} replaced failed runs, {} already present\n", input->path(),
                 counts.added, counts.replaced, counts.kept);
      total.added += counts.added;
      total.replaced += counts.replaced;
      total.kept += counts.kept;
    }
    fmt::print(
        "merged {} database{} into {}: {} runs added, {} replaced, {} kept; {} runs in "
        "total\n",
        inputs.size(), inputs.size() == 1 ? "" : "s", args->output, total.added, total.replaced,
        total.kept, output->runs().size());
  });
}

}  // namespace attnrank::cli
