// The published experiments as presets, and the numbers their figures plot.
#include "attnrank/experiment/reproduce.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "attnrank/core/error.h"
#include "attnrank/experiment/aggregate.h"
#include "attnrank/theory/inspect.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

double numeric_value(const std::string& key, const std::string& text) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw ConfigError("figure.x: " + key + " = '" + text + "' is not a number");
}

std::vector<std::string> preset_directories(const std::string& presets_dir) {
  if (!presets_dir.empty()) return {presets_dir};
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("ATTNRANK_PRESETS"); env && *env) dirs.emplace_back(env);
  dirs.emplace_back("configs/reproduce");
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    // build/<preset>/attnrank in a checkout; <prefix>/bin/attnrank when installed.
    dirs.push_back((exe.parent_path() / "../../configs/reproduce").lexically_normal().string());
    dirs.push_back((exe.parent_path() / "../configs/reproduce").lexically_normal().string());
  }
  return dirs;
}

}  // namespace

const std::vector<std::string>& reproduce_figures() {
  static const std::vector<std::string> figures = {"fig1",    "posn",     "points",   "dims",
                                                   "perfect", "heads-lm", "width-lm", "heads-icl"};
  return figures;
}

std::string find_preset(const std::string& figure, const std::string& scale,
                        const std::string& presets_dir) {
  const auto& figures = reproduce_figures();
  if (std::find(figures.begin(), figures.end(), figure) == figures.end()) {
    std::string names;
    for (const auto& name : figures) names += (names.empty() ? "" : ", ") + name;
    throw ConfigError("reproduce: unknown figure '" + figure + "' (the figures are " + names + ")");
  }
  if (scale != "small" && scale != "paper")
    throw ConfigError("--scale '" + scale + "': expected small or paper");
  const std::string file = figure + "-" + scale + ".yaml";
  const auto dirs = preset_directories(presets_dir);
  std::error_code error;
  for (const auto& dir : dirs)
    if (fs::is_regular_file(fs::path(dir) / file, error)) return (fs::path(dir) / file).string();
  std::string searched;
  for (const auto& dir : dirs) searched += (searched.empty() ? "" : ", ") + dir;
  throw ConfigError("reproduce: preset " + file + " not found (searched " + searched +
                    "; run from the repository root or pass --presets DIR)");
}

std::vector<CurvePoint> curve_points(const FigureSpec& figure, const std::vector<RunRecord>& runs) {
  check_metric(figure.metric, runs);
  std::vector<RunRecord> done;
  for (const RunRecord& run : runs)
    if (run.status == "done" && std::isfinite(run.metric(figure.metric))) done.push_back(run);
  if (done.empty()) return {};
  std::vector<std::string> keys;
  if (!figure.panel.empty()) keys.push_back(figure.panel);
  if (!figure.line.empty()) keys.push_back(figure.line);
  // A size on the x axis is not a key: each configuration (all varying keys but the
  // seed) is one point, at its runs' mean size.
  if (figure.x_is_size()) {
    for (const auto& key : varying_keys(done))
      if (key != figure.panel && key != figure.line) keys.push_back(key);
  } else {
    keys.push_back(figure.x);
  }
  std::vector<CurvePoint> points;
  for (const GroupStats& group : aggregate(done, keys, figure.metric)) {
    CurvePoint point;
    size_t k = 0;
    if (!figure.panel.empty()) point.panel = group.key[k++].second;
    if (!figure.line.empty()) point.line = group.key[k++].second;
    if (figure.x_is_size()) {
      std::vector<double> sizes;
      for (const RunRecord& run : done)
        if (std::all_of(group.key.begin(), group.key.end(),
                        [&](const auto& entry) { return run.value(entry.first) == entry.second; }))
          sizes.push_back(run.metric(figure.x));
      point.x = sample_stats(sizes).mean;
      for (size_t i = k; i < group.key.size(); ++i)
        point.configuration += (i > k ? " " : "") + group.key[i].first + "=" + group.key[i].second;
    } else {
      point.x = numeric_value(figure.x, group.key[k].second);
    }
    point.seeds = group.stats.count;
    point.mean = group.stats.mean;
    point.std = std::isfinite(group.stats.std) ? group.stats.std : 0.0;
    point.min = group.stats.min;
    point.median = group.stats.median;
    points.push_back(point);
  }
  // Groups of one panel and line are contiguous; sizes need not rise with the keys.
  for (auto begin = points.begin(); begin != points.end();) {
    const auto end = std::find_if(begin, points.end(), [&](const CurvePoint& p) {
      return p.panel != begin->panel || p.line != begin->line;
    });
    std::stable_sort(begin, end,
                     [](const CurvePoint& a, const CurvePoint& b) { return a.x < b.x; });
    begin = end;
  }
  return points;
}

std::vector<HeadPoint> head_points(const FigureSpec& figure, const std::vector<RunRecord>& runs) {
  check_metric(figure.metric, runs);
  std::vector<HeadPoint> points;
  for (const RunRecord& run : runs) {
    std::error_code error;
    if (run.status != "done" || !fs::exists(fs::path(run.run_dir) / "model.safetensors", error))
      continue;
    const ModelInspection inspection = inspect_checkpoint(run.run_dir);
    for (const HeadInspection& head : inspection.heads) {
      HeadPoint point;
      point.run_id = run.id;
      point.panel = figure.panel.empty() ? "" : run.value(figure.panel);
      point.line = figure.line.empty() ? "" : run.value(figure.line);
      point.x = numeric_value(figure.x, run.value(figure.x));
      point.layer = head.layer;
      point.module = head.module;
      point.head = head.head;
      point.angle_to_identity = head.angle_to_identity;
      point.frobenius = head.frobenius;
      point.metric = run.metric(figure.metric);
      points.push_back(point);
    }
  }
  return points;
}

}  // namespace attnrank
