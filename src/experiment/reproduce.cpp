// The published experiments as presets, and the numbers their figures plot.
#include "attnrank/experiment/reproduce.h"

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "attnrank/core/error.h"
#include "attnrank/experiment/aggregate.h"
#include "attnrank/report/output_files.h"
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
  if (scale != "small" && scale != "medium" && scale != "paper")
    throw ConfigError("--scale '" + scale + "': expected small, medium or paper");
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

namespace attnrank {

Protocol protocol_from_name(const std::string& name) {
  if (name == "clean") return Protocol::kClean;
  if (name == "authors") return Protocol::kAuthors;
  throw ConfigError("--protocol '" + name + "': expected clean or authors");
}

std::string protocol_name(Protocol protocol) {
  return protocol == Protocol::kAuthors ? "authors" : "clean";
}

const std::vector<std::pair<std::string, std::string>>& authors_protocol_keys() {
  // Each follows the authors' code; file and line in docs/fidelity.md.
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"train.data", "replay"},
      {"train.epoch_batches", "100"},
      {"train.init_seed", "613"},
      {"model.identical_layers", "true"},
      {"model.positional_init", "uniform"},
  };
  return keys;
}

SweepSpec protocol_spec(const SweepSpec& spec, Protocol protocol) {
  if (protocol == Protocol::kClean) return spec;
  SweepSpec out = spec;
  YAML::Node base =
      spec.base_yaml.empty() ? YAML::Node(YAML::NodeType::Map) : YAML::Load(spec.base_yaml);
  for (const auto& [key, value] : authors_protocol_keys()) {
    const size_t dot = key.find('.');
    base[key.substr(0, dot)][key.substr(dot + 1)] = value;
  }
  out.base_yaml = YAML::Dump(base) + "\n";
  out.grids.insert(out.grids.end(), spec.authors_grids.begin(), spec.authors_grids.end());
  out.authors_grids.clear();
  out.name = spec.name + "-authors";
  if (out.figure.kind == FigureKind::kCurves) {
    out.figure.metric = kBestEpochTrainLoss;
    out.figure.y_label = "best epoch-mean training loss";
    out.figure.title += " (authors' protocol)";
  }
  return out;
}

namespace {

std::string point_key(const CurvePoint& p) {
  return p.panel + "\x1f" + p.line + "\x1f" + fmt::format("{:.17g}", p.x);
}

}  // namespace

std::vector<ProtocolComparison> compare_protocols(const FigureSpec& clean_figure,
                                                  const std::vector<RunRecord>& clean_runs,
                                                  const std::vector<RunRecord>& authors_runs) {
  FigureSpec best = clean_figure;
  best.metric = kBestEpochTrainLoss;
  const std::vector<CurvePoint> clean = curve_points(clean_figure, clean_runs);
  const std::vector<CurvePoint> authors = curve_points(best, authors_runs);
  const std::vector<CurvePoint> authors_test = curve_points(clean_figure, authors_runs);
  std::vector<ProtocolComparison> rows;
  for (const CurvePoint& c : clean) {
    ProtocolComparison row;
    row.panel = c.panel;
    row.line = c.line;
    row.x = c.x;
    row.clean_seeds = c.seeds;
    row.clean_mean = c.mean;
    row.clean_min = c.min;
    for (const CurvePoint& a : authors)
      if (point_key(a) == point_key(c)) {
        row.authors_seeds = a.seeds;
        row.authors_min = a.min;
      }
    for (const CurvePoint& a : authors_test)
      if (point_key(a) == point_key(c)) row.authors_test_min = a.min;
    rows.push_back(row);
  }
  return rows;
}

std::string write_protocol_comparison(const std::vector<ProtocolComparison>& rows,
                                      const FigureSpec& figure, const std::string& out_dir,
                                      const std::string& name) {
  const std::string panel = figure.panel.empty() ? "panel" : figure.panel;
  const std::string line = figure.line.empty() ? "line" : figure.line;
  std::string csv = fmt::format(
      "{},{},{},clean_seeds,clean_mean,clean_min,authors_seeds,authors_min,authors_test_min,"
      "ratio\n",
      panel, line, figure.x);
  std::string md = fmt::format(
      "| {} | {} | {} | clean seeds | clean test mean | clean test min | authors seeds | "
      "authors' statistic | authors' runs test min | authors' / clean min |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n",
      key_symbol(panel), key_symbol(line), key_symbol(figure.x));
  for (const ProtocolComparison& r : rows) {
    const double ratio = r.authors_min / r.clean_min;
    csv += fmt::format("{},{},{:g},{},{:.6g},{:.6g},{},{:.6g},{:.6g},{:.4g}\n", r.panel, r.line,
                       r.x, r.clean_seeds, r.clean_mean, r.clean_min, r.authors_seeds,
                       r.authors_min, r.authors_test_min, ratio);
    md += fmt::format("| {} | {} | {:g} | {} | {:.4g} | {:.4g} | {} | {:.4g} | {:.4g} | {:.3g} |\n",
                      r.panel, r.line, r.x, r.clean_seeds, r.clean_mean, r.clean_min,
                      r.authors_seeds, r.authors_min, r.authors_test_min, ratio);
  }
  write_output_file(out_dir, name + ".csv", csv);
  const std::string text =
      "# The two protocols side by side\n\n"
      "Per configuration: the clean protocol's held-out test error (fresh data, independent "
      "seeds; mean and min over seeds) beside the authors' statistic (min over seeds of the "
      "lowest epoch-mean training loss on replayed batches) and the held-out test error of the "
      "same authors'-protocol runs. Ratio below 1: the authors' statistic reads lower than the "
      "best clean held-out error (docs/fidelity.md).\n\n" +
      md;
  write_output_file(out_dir, name + ".md", text);
  return text;
}

}  // namespace attnrank
