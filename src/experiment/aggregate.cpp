// Statistics over seeds per configuration, and their table, CSV and JSON forms.
#include "attnrank/experiment/aggregate.h"

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

namespace {

std::optional<double> as_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// Numbers before text, numbers by value.
bool value_less(const std::string& a, const std::string& b) {
  const auto x = as_number(a), y = as_number(b);
  if (x && y) return *x < *y;
  if (x || y) return x.has_value();
  return a < b;
}

bool values_equal(const std::string& a, const std::string& b) {
  const auto x = as_number(a), y = as_number(b);
  if (x && y) return *x == *y;
  return a == b;
}

nlohmann::ordered_json number_json(double value) {
  return std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string csv_number(double value) {
  return std::isfinite(value) ? fmt::format("{:.9g}", value) : "";
}

}  // namespace

RunFilter parse_filter(const std::string& text) {
  const auto equals = text.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError("--where '" + text + "': expected key=value, e.g. model.layers=1");
  const std::string key = text.substr(0, equals);
  const auto keys = config_keys();
  if (std::find(keys.begin(), keys.end(), key) == keys.end())
    throw ConfigError("--where '" + text + "': " + key + ": unknown config key");
  return {key, text.substr(equals + 1)};
}

bool matches(const RunRecord& run, const std::vector<RunFilter>& filters) {
  for (const RunFilter& filter : filters)
    if (!values_equal(run.value(filter.key), filter.value)) return false;
  return true;
}

std::vector<std::string> varying_keys(const std::vector<RunRecord>& runs) {
  std::vector<std::string> keys;
  if (runs.empty()) return keys;
  for (const auto& [key, value] : runs.front().config) {
    // Seeds are what a group aggregates over; the others never change a result.
    if (key == "train.seed" || key == "train.threads" || key == "train.eval_every" ||
        key == "train.tensorboard")
      continue;
    for (const RunRecord& run : runs)
      if (run.value(key) != value) {
        keys.push_back(key);
        break;
      }
  }
  return keys;
}

std::vector<std::string> available_metrics(const std::vector<RunRecord>& runs) {
  std::vector<std::string> names;
  for (const auto& name : record_metric_names())
    if (name != "test_mse" && name != "trivial_mse") names.push_back(name);
  std::set<std::string> final_names;
  for (const RunRecord& run : runs)
    for (const auto& [name, value] : run.final_metrics) final_names.insert(name);
  for (const RunRecord& run : runs)
    if (std::isfinite(run.trivial_mse)) {
      final_names.insert("trivial_mse");
      break;
    }
  names.insert(names.end(), final_names.begin(), final_names.end());
  return names;
}

void check_metric(const std::string& metric, const std::vector<RunRecord>& runs) {
  const auto names = available_metrics(runs);
  if (std::find(names.begin(), names.end(), metric) != names.end()) return;
  const bool any_final = std::any_of(
      runs.begin(), runs.end(), [](const RunRecord& run) { return !run.final_metrics.empty(); });
  if (metric == "test_mse" && !any_final) return;
  std::string list;
  for (const auto& name : names) list += (list.empty() ? "" : ", ") + name;
  throw ConfigError("metric '" + metric + "': no run has it (available: " + list + ")");
}

std::vector<GroupStats> aggregate(const std::vector<RunRecord>& runs,
                                  const std::vector<std::string>& group_by,
                                  const std::string& metric) {
  const auto keys = config_keys();
  for (const auto& key : group_by)
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      throw ConfigError("--group-by: " + key + ": unknown config key");
  auto less = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), value_less);
  };
  std::map<std::vector<std::string>, std::vector<const RunRecord*>, decltype(less)> groups(less);
  for (const RunRecord& run : runs) {
    std::vector<std::string> values;
    for (const auto& key : group_by) values.push_back(run.value(key));
    groups[values].push_back(&run);
  }
  std::vector<GroupStats> result;
  for (const auto& [values, members] : groups) {
    GroupStats group;
    for (size_t k = 0; k < group_by.size(); ++k) group.key.emplace_back(group_by[k], values[k]);
    std::vector<double> samples, loss;
    for (const RunRecord* run : members) {
      ++group.runs;
      group.diverged += run->status == "diverged";
      group.failed += run->status == "failed";
      if (run->status != "done") continue;
      samples.push_back(run->metric(metric));
      loss.push_back(run->final_train_loss);
    }
    group.metric = metric;
    group.stats = sample_stats(samples);
    group.final_train_loss = sample_stats(loss);
    result.push_back(std::move(group));
  }
  return result;
}

TableFormat parse_table_format(const std::string& text) {
  if (text == "table") return TableFormat::kTable;
  if (text == "csv") return TableFormat::kCsv;
  if (text == "json") return TableFormat::kJson;
  throw ConfigError("--format '" + text + "': expected table, csv or json");
}

std::string format_number(double value) {
  return std::isfinite(value) ? fmt::format("{:.4g}", value) : "-";
}

std::string format_groups(const std::vector<GroupStats>& groups,
                          const std::vector<std::string>& group_by, TableFormat format) {
  const std::vector<std::string> stat_columns = {"metric", "seeds", "diverged", "failed",    "mean",
                                                 "std",    "min",   "median",   "train_loss"};
  if (format == TableFormat::kJson) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const GroupStats& group : groups) {
      nlohmann::ordered_json item;
      nlohmann::ordered_json config = nlohmann::ordered_json::object();
      for (const auto& [key, value] : group.key) config[key] = value;
      item["config"] = config;
      item["runs"] = group.runs;
      item["seeds"] = group.stats.count;
      item["diverged"] = group.diverged;
      item["failed"] = group.failed;
      item["metric"] = group.metric;
      item[group.metric] = {{"mean", number_json(group.stats.mean)},
                            {"std", number_json(group.stats.std)},
                            {"min", number_json(group.stats.min)},
                            {"median", number_json(group.stats.median)},
                            {"max", number_json(group.stats.max)}};
      item["final_train_loss_mean"] = number_json(group.final_train_loss.mean);
      out.push_back(item);
    }
    return out.dump(2) + "\n";
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = group_by;
  header.insert(header.end(), stat_columns.begin(), stat_columns.end());
  for (const GroupStats& group : groups) {
    std::vector<std::string> row;
    for (const auto& entry : group.key) row.push_back(entry.second);
    auto number = format == TableFormat::kCsv ? csv_number : format_number;
    row.push_back(group.metric);
    row.push_back(std::to_string(group.stats.count));
    row.push_back(std::to_string(group.diverged));
    row.push_back(std::to_string(group.failed));
    row.push_back(number(group.stats.mean));
    row.push_back(number(group.stats.std));
    row.push_back(number(group.stats.min));
    row.push_back(number(group.stats.median));
    row.push_back(number(group.final_train_loss.mean));
    rows.push_back(std::move(row));
  }
  std::string out;
  if (format == TableFormat::kCsv) {
    for (size_t c = 0; c < header.size(); ++c) {
      if (c) out += ',';
      out += csv_field(header[c]);
    }
    out += "\n";
    for (const auto& row : rows) {
      for (size_t c = 0; c < row.size(); ++c) {
        if (c) out += ',';
        out += csv_field(row[c]);
      }
      out += "\n";
    }
    return out;
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < cells.size(); ++c)
      text += fmt::format("{}{:>{}}", c ? "  " : "", cells[c], width[c]);
    return text + "\n";
  };
  out += line(header);
  for (const auto& row : rows) out += line(row);
  return out;
}

}  // namespace attnrank
