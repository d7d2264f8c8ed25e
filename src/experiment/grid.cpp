// Expanding a sweep spec into runs: the Cartesian product of each grid, derived
// keys, resolution and validation of every run before anything trains.
#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

namespace {

bool is_integer_key(const std::string& key) {
  for (const ConfigKeyInfo& info : config_reference())
    if (info.key == key)
      return info.type.find("integer") != std::string::npos ||
             info.type.find("uint64") != std::string::npos;
  return false;
}

using Values = std::vector<std::pair<std::string, std::string>>;

void set_value(Values& values, const std::string& key, const std::string& text) {
  for (auto& [name, value] : values)
    if (name == key) value = text;
}

std::string flow_text(const YAML::Node& node) {
  YAML::Emitter emitter;
  emitter << YAML::Flow << node;
  return emitter.c_str();
}

// The values a run's keys were given, before derivation and validation: defaults
// (ranks `auto`), then the base, then the overrides. Derived keys are computed from
// these when the run is not valid until they are set (heads = 3 with rank d/heads).
Values written_values(const std::string& base_yaml, const std::vector<std::string>& overrides) {
  Values values = flat_config(RunConfig{});
  set_value(values, "model.rank", "auto");
  set_value(values, "model.value_rank", "auto");
  const YAML::Node base = YAML::Load(base_yaml);
  if (base.IsMap())
    for (const auto& section : base)
      if (section.second.IsMap())
        for (const auto& entry : section.second)
          set_value(values, section.first.Scalar() + "." + entry.first.Scalar(),
                    flow_text(entry.second));
  for (const auto& assignment : overrides) {
    const auto equals = assignment.find('=');
    set_value(values, assignment.substr(0, equals), assignment.substr(equals + 1));
  }
  return values;
}

Values values_for_derivation(const SweepSpec& spec, const std::vector<std::string>& overrides) {
  try {
    return flat_config(parse_config(spec.base_yaml, overrides, spec.source));
  } catch (const ConfigError&) {
    return written_values(spec.base_yaml, overrides);
  }
}

std::string derived_value_text(const std::string& key, const std::string& expression,
                               const Values& values) {
  const double value = evaluate_derived(key, expression, values);
  if (!is_integer_key(key)) return fmt::format("{}", value);
  const double rounded = std::round(value);
  if (std::fabs(value - rounded) > 1e-9 * std::max(1.0, std::fabs(value)))
    throw ConfigError(
        fmt::format("derived: {}: '{}' = {:.6g} is not an integer", key, expression, value));
  // Integer keys are at most 64-bit: a value beyond is an error, not a wrapped number.
  if (std::fabs(rounded) > 9.0e18)
    throw ConfigError(fmt::format("derived: {}: '{}' = {:.6g} is out of range for an integer key",
                                  key, expression, value));
  return fmt::format("{}", static_cast<long long>(rounded));
}

PlannedRun plan_run(const SweepSpec& spec, const std::vector<std::string>& overrides,
                    const std::string& label) {
  const std::string where = fmt::format("{}: grid point {}", spec.source, label);
  try {
    std::vector<std::string> all = overrides;
    for (const auto& [key, expression] : spec.derived)
      all.push_back(key + "=" +
                    derived_value_text(key, expression, values_for_derivation(spec, all)));
    const RunConfig config = parse_config(spec.base_yaml, all, where);
    return PlannedRun{run_identity(config), config, label};
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    if (message.rfind(where, 0) == 0) throw;
    throw ConfigError(where + ": " + message);
  }
}

void expand_grid(const SweepSpec& spec, const Grid& grid, std::vector<PlannedRun>& runs,
                 std::set<std::string>& seen) {
  std::vector<size_t> index(grid.size(), 0);
  for (;;) {
    std::vector<std::string> overrides;
    std::string label;
    for (size_t k = 0; k < grid.size(); ++k) {
      const std::string assignment = grid[k].first + "=" + grid[k].second[index[k]];
      overrides.push_back(assignment);
      label += (label.empty() ? "" : " ") + assignment;
    }
    PlannedRun run = plan_run(spec, overrides, label);
    if (seen.insert(run.id).second) runs.push_back(std::move(run));
    // Odometer: the last key turns fastest.
    size_t k = grid.size();
    while (k > 0) {
      --k;
      if (++index[k] < grid[k].second.size()) break;
      index[k] = 0;
      if (k == 0) return;
    }
    if (grid.empty()) return;
  }
}

}  // namespace

std::vector<PlannedRun> expand_sweep(const SweepSpec& spec) {
  if (spec.grids.empty()) throw ConfigError(spec.source + ": grid: empty grid");
  // Count before expanding: a grid of 10^9 runs is refused at once, not enumerated.
  double total = 0;
  for (const Grid& grid : spec.grids) {
    double points = 1;
    for (const auto& [key, values] : grid) points *= static_cast<double>(values.size());
    total += points;
  }
  if (total > kMaxSweepRuns)
    throw ConfigError(
        fmt::format("{}: grid: {:.0f} runs, more than the {} one sweep may hold; "
                    "split it into several specs",
                    spec.source, total, kMaxSweepRuns));
  std::vector<PlannedRun> runs;
  std::set<std::string> seen;
  for (const Grid& grid : spec.grids) {
    if (grid.empty()) throw ConfigError(spec.source + ": grid: empty grid");
    expand_grid(spec, grid, runs, seen);
  }
  return runs;
}

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  int index = -1, count = 0;
  try {
    size_t used_index = 0, used_count = 0;
    if (slash != std::string::npos) {
      index = std::stoi(text.substr(0, slash), &used_index);
      count = std::stoi(text.substr(slash + 1), &used_count);
    }
    if (used_index != slash || used_count != text.size() - slash - 1) count = 0;
  } catch (const std::exception&) {
    count = 0;
  }
  if (count < 1)
    throw ConfigError("--shard '" + text + "': expected i/n, e.g. 0/4 (slice i of n, 0-based)");
  if (index < 0 || index >= count)
    throw ConfigError(
        fmt::format("--shard '{}': the slice index must be in 0..{} (0-based)", text, count - 1));
  return Shard{index, count};
}

bool in_shard(const std::string& run_id, const Shard& shard) {
  if (shard.count <= 1) return true;
  const uint64_t value = std::stoull(run_id, nullptr, 16);
  return static_cast<int>(value % static_cast<uint64_t>(shard.count)) == shard.index;
}

}  // namespace attnrank
