// Reading a sweep spec: strict keys, one-line errors naming the key (docs/sweeps.md).
#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/resources.h"
#include "attnrank/core/suggest.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

namespace {

const std::vector<std::string> kTopKeys = {"name", "description", "base",   "base_config",
                                           "grid", "derived",     "figure", "authors_grid"};
const std::vector<std::string> kFigureKeys = {"kind",  "title",   "x",           "panel",
                                              "line",  "x_label", "metric",      "y_label",
                                              "log_x", "log_y",   "description", "claims"};
const std::vector<std::string> kClaimKeys = {"says", "better", "worse", "metric"};

std::string suggestion(const std::string& wrong, const std::vector<std::string>& candidates) {
  return did_you_mean(wrong, candidates);
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : ", ") + word;
  return out;
}

struct SpecReader {
  std::string source;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError(fmt::format("{}: {}: {}", source, key, what));
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(key, "expected a single value");
    return node.Scalar();
  }

  void check_config_key(const std::string& key, const std::string& where) const {
    const auto keys = config_keys();
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      fail(where + "." + key, "unknown config key" + suggestion(key, keys));
  }

  std::string value_text(const YAML::Node& node) const {
    YAML::Emitter emitter;
    emitter << YAML::Flow << node;
    return emitter.c_str();
  }

  Grid grid(const YAML::Node& node, const std::string& where) const {
    if (!node.IsMap() || node.size() == 0)
      fail(where,
           "empty grid: give at least one config key with a list of values, e.g. "
           "model.heads: [1, 2, 4]");
    Grid grid;
    std::set<std::string> seen;
    for (const auto& entry : node) {
      const std::string key = scalar(entry.first, where);
      check_config_key(key, where);
      if (!seen.insert(key).second) fail(where + "." + key, "appears twice");
      const YAML::Node& values = entry.second;
      if (!values.IsSequence())
        fail(where + "." + key, "expected a list of values, e.g. [1, 2, 4]");
      if (values.size() == 0) fail(where + "." + key, "empty list: the grid would have no runs");
      std::vector<std::string> texts;
      for (const auto& value : values) texts.push_back(value_text(value));
      grid.emplace_back(key, texts);
    }
    return grid;
  }

  // One side of a claim: a map of config keys to single values.
  std::vector<std::pair<std::string, std::string>> selection(const YAML::Node& node,
                                                             const std::string& where) const {
    if (!node.IsMap() || node.size() == 0)
      fail(where,
           "expected a map of config keys to values, e.g. {model.layers: 1, model.heads: 4}");
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& entry : node) {
      const std::string key = scalar(entry.first, where);
      if (key == "train.seed")
        fail(where + "." + key, "a side is every seed of one configuration: leave train.seed out");
      check_config_key(key, where);
      for (const auto& seen : keys)
        if (seen.first == key) fail(where + "." + key, "appears twice");
      const std::string value = scalar(entry.second, where + "." + key);
      if (value == "auto")
        fail(where + "." + key, "'auto' selects nothing: runs record the resolved value");
      keys.emplace_back(key, value);
    }
    return keys;
  }

  std::vector<FigureClaim> claims(const YAML::Node& node) const {
    if (!node.IsSequence())
      fail("figure.claims", "expected a list of claims, each with says, better and worse");
    if (node.size() == 0)
      fail("figure.claims", "empty list: give at least one claim, or leave claims out");
    std::vector<FigureClaim> claims;
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string where = fmt::format("figure.claims[{}]", i);
      const YAML::Node& claim = node[i];
      if (!claim.IsMap()) fail(where, "expected a map with says, better and worse");
      for (const auto& entry : claim) {
        const std::string key = scalar(entry.first, where);
        if (std::find(kClaimKeys.begin(), kClaimKeys.end(), key) == kClaimKeys.end())
          fail(where + "." + key, "unknown key (the keys are " + joined(kClaimKeys) + ")" +
                                      suggestion(key, kClaimKeys));
      }
      for (const char* key : {"says", "better", "worse"})
        if (!claim[key] || claim[key].IsNull())
          fail(where + "." + key,
               std::string("missing: ") + (key == std::string("says")
                                               ? "the claim in words"
                                               : "a map of config keys to values"));
      FigureClaim parsed;
      parsed.says = scalar(claim["says"], where + ".says");
      if (parsed.says.empty()) fail(where + ".says", "empty: say the claim in words");
      parsed.better = selection(claim["better"], where + ".better");
      const YAML::Node worse = claim["worse"];
      if (worse.IsScalar()) {
        // `worse: NUMBER`: every seed of `better` below a bound (e.g. an angle gap).
        try {
          size_t used = 0;
          parsed.worse_than = std::stod(worse.Scalar(), &used);
          if (used != worse.Scalar().size() || !std::isfinite(parsed.worse_than))
            throw std::invalid_argument("not a number");
        } catch (const std::exception&) {
          fail(where + ".worse",
               "'" + worse.Scalar() + "': expected a map of config keys to values, or a number");
        }
      } else {
        parsed.worse = selection(worse, where + ".worse");
      }
      if (claim["metric"]) parsed.metric = scalar(claim["metric"], where + ".metric");
      claims.push_back(std::move(parsed));
    }
    return claims;
  }

  // Final metrics are only known once runs finish; the name's form is checked now.
  // `extra`: one more name the caller allows ("" for none).
  void check_metric_name(const std::string& metric, const std::string& where,
                         const std::string& extra) const {
    std::vector<std::string> names = record_metric_names();
    if (!extra.empty()) names.push_back(extra);
    const bool final_metric = metric.rfind("test_", 0) == 0 ||
                              metric.rfind("validation_", 0) == 0 || metric == kBestEpochTrainLoss;
    if (std::find(names.begin(), names.end(), metric) == names.end() && !final_metric)
      fail(where, "'" + metric + "': expected a final metric (test_* or validation_*) or one of " +
                      joined(names) + suggestion(metric, names));
  }

  FigureSpec figure(const YAML::Node& node) const {
    if (!node.IsMap()) fail("figure", "expected a map of keys");
    FigureSpec figure;
    for (const auto& entry : node) {
      const std::string key = scalar(entry.first, "figure");
      const std::string where = "figure." + key;
      if (std::find(kFigureKeys.begin(), kFigureKeys.end(), key) == kFigureKeys.end())
        fail(where, "unknown key (the keys are " + joined(kFigureKeys) + ")" +
                        suggestion(key, kFigureKeys));
      if (key == "claims") {
        figure.claims = claims(entry.second);
        continue;
      }
      const std::string value = scalar(entry.second, where);
      if (key == "kind") {
        if (value != "curves" && value != "heads") fail(where, "expected curves or heads");
        figure.kind = value == "curves" ? FigureKind::kCurves : FigureKind::kHeads;
      }
      if (key == "title") figure.title = value;
      if (key == "x") figure.x = value;
      if (key == "panel") figure.panel = value;
      if (key == "line") figure.line = value;
      if (key == "x_label") figure.x_label = value;
      if (key == "metric") figure.metric = value;
      if (key == "y_label") figure.y_label = value;
      if (key == "description") figure.description = value;
      if (key == "log_x" || key == "log_y") {
        if (value != "true" && value != "false") fail(where, "expected true or false");
        (key == "log_x" ? figure.log_x : figure.log_y) = value == "true";
      }
    }
    if (figure.kind == FigureKind::kNone) fail("figure.kind", "missing: expected curves or heads");
    if (figure.x.empty())
      fail("figure.x",
           "missing: the config key (or parameters, attention_parameters) on the x axis");
    check_metric_name(figure.metric, "figure.metric", "");
    for (size_t i = 0; i < figure.claims.size(); ++i)
      if (!figure.claims[i].metric.empty())
        check_metric_name(figure.claims[i].metric, fmt::format("figure.claims[{}].metric", i),
                          figure.kind == FigureKind::kHeads ? kHeadAngleGap : "");
    // A curves figure may put a run's size on the x axis (width-lm: loss against
    // parameter count); every other figure key is a config key.
    if (figure.x_is_size() && figure.kind != FigureKind::kCurves)
      fail("figure.x", "'" + figure.x + "' is only an x axis of curves figures");
    if (!figure.x_is_size()) check_config_key(figure.x, "figure");
    for (const auto* key : {&figure.panel, &figure.line})
      if (!key->empty()) check_config_key(*key, "figure");
    return figure;
  }
};

std::string read_text(const std::string& path, const std::string& what) {
  return read_file_bounded(path, kMaxTextInputBytes, what);
}

// Inline `base:` sections laid over the `base_config:` file, key by key.
YAML::Node merged_base(const YAML::Node& file_base, const YAML::Node& inline_base,
                       const SpecReader& reader) {
  YAML::Node merged = file_base.IsMap() ? YAML::Clone(file_base) : YAML::Node(YAML::NodeType::Map);
  if (!inline_base || inline_base.IsNull()) return merged;
  if (!inline_base.IsMap())
    reader.fail("base", "expected a config: a map with the sections model, task and train");
  for (const auto& section : inline_base) {
    const std::string name = reader.scalar(section.first, "base");
    if (!section.second.IsMap() || !merged[name] || !merged[name].IsMap()) {
      merged[name] = section.second;
      continue;
    }
    for (const auto& entry : section.second)
      merged[name][reader.scalar(entry.first, "base." + name)] = entry.second;
  }
  return merged;
}

}  // namespace

std::string FigureSpec::metric_label() const {
  if (!y_label.empty()) return y_label;
  return metric == "test_mse" ? "test MSE" : metric;
}

SweepSpec parse_sweep_spec(const std::string& yaml_text, const std::string& source_name) {
  SpecReader reader{source_name};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& error) {
    throw ConfigError(fmt::format("{}:{}:{}: invalid YAML: {}", source_name, error.mark.line + 1,
                                  error.mark.column + 1, error.msg));
  }
  if (!root.IsMap())
    throw ConfigError(source_name + ": expected a sweep spec: a map with base and grid");
  SweepSpec spec;
  spec.source = source_name;
  spec.name = std::filesystem::path(source_name).stem().string();
  for (const auto& entry : root) {
    const std::string key = reader.scalar(entry.first, "spec");
    if (std::find(kTopKeys.begin(), kTopKeys.end(), key) == kTopKeys.end())
      reader.fail(
          key, "unknown key (the keys are " + joined(kTopKeys) + ")" + suggestion(key, kTopKeys));
  }
  if (root["name"]) spec.name = reader.scalar(root["name"], "name");
  YAML::Node file_base;
  if (root["base_config"]) {
    std::filesystem::path path = reader.scalar(root["base_config"], "base_config");
    if (path.is_relative()) path = std::filesystem::path(source_name).parent_path() / path;
    const std::string text = read_text(path.string(), "base config");
    try {
      file_base = YAML::Load(text);
    } catch (const YAML::Exception& error) {
      throw ConfigError(fmt::format("{}:{}:{}: invalid YAML: {}", path.string(),
                                    error.mark.line + 1, error.mark.column + 1, error.msg));
    }
  }
  const YAML::Node base = merged_base(file_base, root["base"], reader);
  spec.base_yaml = base.size() == 0 ? std::string() : YAML::Dump(base) + "\n";
  // The base alone must be a valid config (the grid only changes keys of it).
  parse_config(spec.base_yaml, {}, source_name + ": base");

  const YAML::Node grid = root["grid"];
  if (!grid || grid.IsNull())
    reader.fail("grid", "missing: give a map from config keys to lists of values");
  if (grid.IsSequence()) {
    if (grid.size() == 0) reader.fail("grid", "empty list of grids");
    for (size_t i = 0; i < grid.size(); ++i)
      spec.grids.push_back(reader.grid(grid[i], fmt::format("grid[{}]", i)));
  } else {
    spec.grids.push_back(reader.grid(grid, "grid"));
  }

  // Extra grids run only under `reproduce --protocol authors` (docs/fidelity.md).
  if (const YAML::Node extra = root["authors_grid"]; extra && !extra.IsNull()) {
    if (extra.IsSequence()) {
      for (size_t i = 0; i < extra.size(); ++i)
        spec.authors_grids.push_back(reader.grid(extra[i], fmt::format("authors_grid[{}]", i)));
    } else {
      spec.authors_grids.push_back(reader.grid(extra, "authors_grid"));
    }
  }

  if (const YAML::Node derived = root["derived"]; derived && !derived.IsNull()) {
    if (!derived.IsMap()) reader.fail("derived", "expected a map from config keys to expressions");
    for (const auto& entry : derived) {
      const std::string key = reader.scalar(entry.first, "derived");
      reader.check_config_key(key, "derived");
      for (const auto* grids : {&spec.grids, &spec.authors_grids})
        for (const Grid& g : *grids)
          for (const auto& [grid_key, values] : g)
            if (grid_key == key)
              reader.fail("derived." + key, "also in the grid: a key is either listed or derived");
      spec.derived.emplace_back(key, reader.scalar(entry.second, "derived." + key));
    }
  }
  if (root["figure"]) spec.figure = reader.figure(root["figure"]);
  return spec;
}

SweepSpec load_sweep_spec(const std::string& path) {
  return parse_sweep_spec(read_text(path, "sweep spec"), path);
}

}  // namespace attnrank
