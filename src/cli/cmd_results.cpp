// attnrank results DB [--group-by KEYS] [--where key=value]... [--status S]
//                  [--metric NAME] [--format table|csv|json] [--runs]
#include <fmt/core.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "attnrank/core/error.h"
#include "attnrank/experiment/aggregate.h"
#include "commands.h"
#include "sweep_session.h"

namespace attnrank::cli {

namespace {

struct ResultsArgs {
  std::string database;
  std::vector<std::string> group_by;
  std::vector<std::string> where;
  std::string status;
  std::string metric = "test_mse";
  std::string format = "table";
  bool list_runs = false;
};

nlohmann::ordered_json number_json(double value) {
  return std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
}

// One row per run: id, status, the varying keys, the metric, run directory, error.
void print_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys,
                const std::string& metric, TableFormat format) {
  if (format == TableFormat::kJson) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const RunRecord& run : runs) {
      nlohmann::ordered_json item;
      item["id"] = run.id;
      item["status"] = run.status;
      nlohmann::ordered_json config = nlohmann::ordered_json::object();
      for (const auto& [key, value] : run.config) config[key] = value;
      item["config"] = config;
      item["test_mse"] = number_json(run.test_mse);
      nlohmann::ordered_json final_metrics = nlohmann::ordered_json::object();
      for (const auto& [name, value] : run.final_metrics) final_metrics[name] = number_json(value);
      item["final_metrics"] = final_metrics;
      item["final_train_loss"] = number_json(run.final_train_loss);
      item["steps"] = run.steps;
      item["wall_seconds"] = run.wall_seconds;
      item["ms_per_step"] = run.ms_per_step;
      item["parameters"] = run.parameters;
      item["attention_parameters"] = run.attention_parameters;
      item["run_dir"] = run.run_dir;
      item["error"] = run.error;
      out.push_back(item);
    }
    fmt::print("{}\n", out.dump(2));
    return;
  }
  const char* separator = format == TableFormat::kCsv ? "," : "  ";
  std::string header = fmt::format("id{0}status", separator);
  for (const auto& key : keys) header += separator + key;
  header += fmt::format("{0}{1}{0}train_loss{0}wall_s{0}run_dir{0}error", separator, metric);
  fmt::print("{}\n", header);
  for (const RunRecord& run : runs) {
    std::string line = run.id + separator + run.status;
    for (const auto& key : keys) line += separator + run.value(key);
    line += fmt::format("{0}{1}{0}{2}{0}{3:.1f}{0}{4}{0}{5}", separator,
                        format_number(run.metric(metric)), format_number(run.final_train_loss),
                        run.wall_seconds, run.run_dir, run.error);
    fmt::print("{}\n", line);
  }
}

}  // namespace

void add_results_command(CLI::App& app) {
  auto args = std::make_shared<ResultsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "results", "Per configuration: seeds, mean +- std, min and median of a metric (test MSE)");
  cmd->add_option("database", args->database, "Results database written by `attnrank sweep`")
      ->required();
  cmd->add_option("--group-by,-g", args->group_by,
                  "Config keys to group by, comma-separated (default: the keys that vary, "
                  "except train.seed)")
      ->delimiter(',');
  cmd->add_option("--where,-w", args->where, "Only runs with key=value (repeatable)");
  cmd->add_option("--status", args->status, "Only runs with this status (done|diverged|failed)");
  cmd->add_option("--metric,-m", args->metric,
                  "Run metric to summarise: a final metric (test_mse, test_loss, ...) or "
                  "final_train_loss, steps, wall_seconds, ms_per_step, parameters, "
                  "attention_parameters")
      ->capture_default_str();
  cmd->add_option("--format,-f", args->format, "table, csv or json")->capture_default_str();
  cmd->add_flag("--runs", args->list_runs, "One row per run instead of per configuration");
  cmd->callback([args] {
    const TableFormat format = parse_table_format(args->format);
    if (!args->status.empty() && args->status != "done" && args->status != "diverged" &&
        args->status != "failed")
      throw ConfigError("--status '" + args->status + "': expected done, diverged or failed");
    std::vector<RunFilter> filters;
    for (const auto& text : args->where) filters.push_back(parse_filter(text));
    const auto store = open_results(args->database, ResultsStore::Mode::kRead);
    const std::vector<RunRecord> all = store->runs();
    check_metric(args->metric, all);
    std::vector<RunRecord> runs;
    for (const RunRecord& run : all)
      if (matches(run, filters) && (args->status.empty() || run.status == args->status))
        runs.push_back(run);
    std::vector<std::string> keys = args->group_by.empty() ? varying_keys(runs) : args->group_by;
    if (args->list_runs) {
      // A run list tells seeds apart, which the groups pool.
      if (args->group_by.empty())
        for (const RunRecord& run : runs)
          if (run.value("train.seed") != runs.front().value("train.seed")) {
            keys.push_back("train.seed");
            break;
          }
      print_runs(runs, keys, args->metric, format);
      return;
    }
    if (runs.empty() && format == TableFormat::kTable) {
      fmt::print("no runs{} in {}\n", filters.empty() ? "" : " match", args->database);
      return;
    }
    fmt::print("{}", format_groups(aggregate(runs, keys, args->metric), keys, format));
  });
}

}  // namespace attnrank::cli
