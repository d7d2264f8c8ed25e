// Aggregation over seeds (mean, sample std, min, median), grouping and filters,
// the table/CSV/JSON forms, and the numbers, files and report of a figure.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/aggregate.h"
#include "attnrank/experiment/reproduce.h"
#include "sweep_fixtures.h"

using namespace attnrank;
using attnrank::testing::fresh_dir;
namespace fs = std::filesystem;

namespace {

RunRecord run_with(const std::string& overrides_text, const std::string& status, double mse) {
  std::vector<std::string> overrides;
  std::stringstream stream(overrides_text);
  for (std::string item; stream >> item;) overrides.push_back(item);
  const RunConfig config = parse_config("model: {dim: 16}", overrides);
  RunRecord run;
  run.id = run_identity(config);
  run.status = status;
  run.config = flat_config(config);
  run.test_mse = mse;
  run.final_train_loss = std::isfinite(mse) ? mse * 2 : NAN;
  return run;
}

// Ranks 16 and 4 at c in {1, 4}, three seeds each; one failed and one diverged run.
std::vector<RunRecord> sweep_runs() {
  std::vector<RunRecord> runs;
  const double values[2][2][3] = {{{0.03, 0.04, 0.05}, {0.5, 0.6, 0.7}},
                                  {{0.02, 0.03, 0.04}, {0.4, 0.45, 0.5}}};
  for (int c = 0; c < 2; ++c)
    for (int h = 0; h < 2; ++h)
      for (int seed = 0; seed < 3; ++seed)
        runs.push_back(run_with(fmt::format("model.width_multiplier={} model.heads={} "
                                            "train.seed={}",
                                            c ? 4 : 1, h ? 4 : 1, seed),
                                "done", values[c][h][seed]));
  runs.push_back(run_with("model.width_multiplier=1 model.heads=1 train.seed=7", "failed", NAN));
  runs.push_back(run_with("model.width_multiplier=1 model.heads=1 train.seed=8", "diverged", NAN));
  return runs;
}

}  // namespace

TEST(Aggregate, SampleStatistics) {
  const SampleStats stats = sample_stats({4.0, 1.0, NAN, 3.0, 2.0});
  EXPECT_EQ(stats.count, 4);
  EXPECT_DOUBLE_EQ(stats.mean, 2.5);
  EXPECT_DOUBLE_EQ(stats.std, std::sqrt(5.0 / 3.0)) << "n - 1 in the denominator";
  EXPECT_DOUBLE_EQ(stats.min, 1.0);
  EXPECT_DOUBLE_EQ(stats.max, 4.0);
  EXPECT_DOUBLE_EQ(stats.median, 2.5);
  EXPECT_DOUBLE_EQ(sample_stats({5.0, 1.0, 3.0}).median, 3.0);
  const SampleStats one = sample_stats({0.7});
  EXPECT_DOUBLE_EQ(one.mean, 0.7);
  EXPECT_TRUE(std::isnan(one.std)) << "no spread from one seed";
  EXPECT_EQ(sample_stats({}).count, 0);
  EXPECT_TRUE(std::isnan(sample_stats({}).mean));
}

TEST(Aggregate, GroupsSeedsAndCountsFailures) {
  const auto runs = sweep_runs();
  const auto keys = varying_keys(runs);
  EXPECT_EQ(keys, (std::vector<std::string>{"model.heads", "model.rank", "model.value_rank",
                                            "model.width_multiplier"}));
  const auto groups = aggregate(runs, {"model.width_multiplier", "model.rank"});
  ASSERT_EQ(groups.size(), 4u);
  // Numeric order: rank 4 before 16.
  EXPECT_EQ(groups[0].key[1].second, "4");
  EXPECT_EQ(groups[1].key[1].second, "16");
  const GroupStats& full = groups[1];  // c = 1, rank 16
  EXPECT_EQ(full.runs, 5);
  EXPECT_EQ(full.failed, 1);
  EXPECT_EQ(full.diverged, 1);
  EXPECT_EQ(full.metric, "test_mse");
  EXPECT_EQ(full.stats.count, 3);
  EXPECT_NEAR(full.stats.mean, 0.04, 1e-12);
  EXPECT_NEAR(full.stats.std, 0.01, 1e-12);
  EXPECT_DOUBLE_EQ(full.stats.min, 0.03);
  EXPECT_DOUBLE_EQ(full.stats.median, 0.04);
  EXPECT_NEAR(full.final_train_loss.mean, 0.08, 1e-12);
  EXPECT_THROW(aggregate(runs, {"model.colour"}), ConfigError);
}

TEST(Aggregate, FiltersCompareNumbersByValue) {
  const auto runs = sweep_runs();
  EXPECT_TRUE(matches(runs[0], {parse_filter("model.width_multiplier=1")}));
  EXPECT_TRUE(matches(runs[0], {parse_filter("model.width_multiplier=1.0")}));
  EXPECT_FALSE(matches(runs[0], {parse_filter("model.width_multiplier=4")}));
  EXPECT_TRUE(matches(runs[0], {parse_filter("model.norm=sphere"), parse_filter("train.seed=0")}));
  EXPECT_THROW(parse_filter("model.width_multiplier"), ConfigError);
  EXPECT_THROW(parse_filter("model.colour=red"), ConfigError);
}

TEST(Aggregate, TableCsvAndJson) {
  const std::vector<std::string> keys = {"model.rank"};
  const auto groups = aggregate(sweep_runs(), keys);
  const std::string csv = format_groups(groups, keys, TableFormat::kCsv);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "model.rank,metric,seeds,diverged,failed,mean,std,min,median,train_loss");
  EXPECT_NE(csv.find("\n16,test_mse,6,1,1,0.035,"), std::string::npos) << csv;
  const auto json = nlohmann::json::parse(format_groups(groups, keys, TableFormat::kJson));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[1]["config"]["model.rank"], "16");
  EXPECT_EQ(json[1]["seeds"], 6);
  EXPECT_EQ(json[1]["metric"], "test_mse");
  EXPECT_NEAR(json[1]["test_mse"]["min"].get<double>(), 0.02, 1e-12);
  const std::string table = format_groups(groups, keys, TableFormat::kTable);
  EXPECT_NE(table.find("model.rank"), std::string::npos);
  EXPECT_NE(table.find("0.035"), std::string::npos) << table;
  EXPECT_THROW(parse_table_format("xml"), ConfigError);
}

TEST(Figure, CurvePointsAndSeparation) {
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "model.rank";
  figure.line = "model.width_multiplier";
  const auto points = curve_points(figure, sweep_runs());
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(points[0].line, "1");
  EXPECT_DOUBLE_EQ(points[0].x, 4.0);
  EXPECT_EQ(points[1].seeds, 3) << "failed and diverged runs are not seeds";
  EXPECT_NEAR(points[1].mean, 0.04, 1e-12);
  const auto lines = separation_lines(figure, points);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("c = 1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("ratio 15.0x"), std::string::npos) << lines[0];  // 0.6 / 0.04
  EXPECT_NE(lines[1].find("ratio 15.0x"), std::string::npos) << lines[1];  // 0.45 / 0.03
}

TEST(Figure, WritesDataScriptFiguresAndReport) {
  const auto dir = fresh_dir("figure_files");
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "model.rank";
  figure.panel = "model.layers";
  figure.line = "model.width_multiplier";
  figure.title = "test figure";
  const auto runs = sweep_runs();
  const auto points = curve_points(figure, runs);
  const FigureFiles files = write_curves_figure(figure, points, dir.string(), "fig");
  std::ifstream csv(dir / "fig.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header,
            "model.layers,model.width_multiplier,model.rank,metric,seeds,mean,std,min,median");
  EXPECT_TRUE(fs::exists(dir / "fig.gp"));
  EXPECT_TRUE(fs::exists(dir / "fig.dat"));
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) {
    EXPECT_TRUE(files.rendered) << files.message;
    EXPECT_GT(fs::file_size(dir / "fig.png"), 1000u);
    EXPECT_GT(fs::file_size(dir / "fig.svg"), 1000u);
  }

  ReportInputs inputs;
  inputs.figure = "fig";
  inputs.scale = "small";
  inputs.preset = (dir / "fig.csv").string();
  inputs.database = "results.db";
  inputs.commands = {"attnrank reproduce fig --scale small"};
  inputs.spec.figure = figure;
  inputs.runs = runs;
  inputs.planned_runs = static_cast<int>(runs.size()) + 1;
  const std::string report = write_report(inputs, points, {}, files, dir.string());
  std::ifstream in(report);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_NE(text.find("attnrank reproduce fig --scale small"), std::string::npos);
  EXPECT_NE(text.find("**Incomplete:**"), std::string::npos);
  EXPECT_NE(text.find("| 1 | 1 | 16 | 3 | 0.04 ± 0.01 | 0.03 | 0.04 |"), std::string::npos) << text;
  EXPECT_NE(text.find("ratio 15.0x"), std::string::npos);
}

namespace {

// Runs of a task that reports test_loss and validation_perplexity but no test MSE
// (the text models): rank 16 and 4, two seeds each, plus one failed run.
std::vector<RunRecord> text_runs() {
  std::vector<RunRecord> runs;
  const double losses[2][2] = {{1.5, 2.5}, {4.0, 6.0}};
  for (int h = 0; h < 2; ++h)
    for (int seed = 0; seed < 2; ++seed) {
      RunRecord run =
          run_with(fmt::format("model.heads={} train.seed={}", h ? 4 : 1, seed), "done", NAN);
      run.final_metrics = {{"test_loss", losses[h][seed]},
                           {"validation_perplexity", std::exp(losses[h][seed])}};
      run.final_train_loss = losses[h][seed] - 0.5;
      run.ms_per_step = h ? 2.0 : 4.0 + seed;
      runs.push_back(run);
    }
  runs.push_back(run_with("model.heads=1 train.seed=9", "failed", NAN));
  return runs;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST(Aggregate, RunRecordMetricByName) {
  RunRecord run = run_with("model.heads=2", "done", 0.25);
  run.final_metrics = {{"test_mse", 0.25}, {"test_bits_per_char", 1.75}};
  run.steps = 300;
  run.ms_per_step = 0.5;
  run.parameters = 1234;
  EXPECT_DOUBLE_EQ(run.metric("test_mse"), 0.25);
  EXPECT_DOUBLE_EQ(run.metric("test_bits_per_char"), 1.75);
  EXPECT_DOUBLE_EQ(run.metric("final_train_loss"), 0.5);
  EXPECT_DOUBLE_EQ(run.metric("steps"), 300.0);
  EXPECT_DOUBLE_EQ(run.metric("ms_per_step"), 0.5);
  EXPECT_DOUBLE_EQ(run.metric("parameters"), 1234.0);
  EXPECT_TRUE(std::isnan(run.metric("validation_perplexity"))) << "absent: NaN";
  EXPECT_TRUE(std::isnan(run.metric("colour")));
  RunRecord old = run_with("model.heads=2", "done", 0.125);  // no final_metrics map
  EXPECT_DOUBLE_EQ(old.metric("test_mse"), 0.125) << "the test_mse column";
}

TEST(Aggregate, NamedMetricStatistics) {
  const auto runs = text_runs();
  const auto groups = aggregate(runs, {"model.rank"}, "test_loss");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].key[0].second, "4");
  EXPECT_EQ(groups[0].metric, "test_loss");
  EXPECT_EQ(groups[0].stats.count, 2);
  EXPECT_DOUBLE_EQ(groups[0].stats.mean, 5.0);
  EXPECT_NEAR(groups[0].stats.std, std::sqrt(2.0), 1e-12);
  EXPECT_DOUBLE_EQ(groups[1].stats.min, 1.5);
  EXPECT_EQ(groups[1].runs, 3);
  EXPECT_EQ(groups[1].failed, 1);
  const auto perplexity = aggregate(runs, {"model.rank"}, "validation_perplexity");
  EXPECT_NEAR(perplexity[1].stats.median, 0.5 * (std::exp(1.5) + std::exp(2.5)), 1e-9);
  const auto speed = aggregate(runs, {"model.rank"}, "ms_per_step");
  EXPECT_DOUBLE_EQ(speed[1].stats.mean, 4.5);
  EXPECT_DOUBLE_EQ(speed[0].stats.mean, 2.0);
  // Runs without the test MSE are runs, not seeds, of a test_mse table.
  EXPECT_EQ(aggregate(runs, {"model.rank"})[1].stats.count, 0);

  const std::string csv = format_groups(groups, {"model.rank"}, TableFormat::kCsv);
  EXPECT_NE(csv.find("\n4,test_loss,2,0,0,5,"), std::string::npos) << csv;
  const auto json =
      nlohmann::json::parse(format_groups(groups, {"model.rank"}, TableFormat::kJson));
  EXPECT_EQ(json[0]["metric"], "test_loss");
  EXPECT_DOUBLE_EQ(json[0]["test_loss"]["mean"].get<double>(), 5.0);
  EXPECT_FALSE(json[0].contains("test_mse"));
}

TEST(Aggregate, UnknownMetricNamesTheAvailableOnes) {
  const auto runs = text_runs();
  const auto names = available_metrics(runs);
  EXPECT_NE(std::find(names.begin(), names.end(), "test_loss"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "validation_perplexity"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "ms_per_step"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "test_mse"), names.end()) << "no run has it";
  check_metric("test_loss", runs);
  check_metric("final_train_loss", runs);
  try {
    check_metric("test_lose", runs);
    ADD_FAILURE() << "accepted test_lose";
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("'test_lose'"), std::string::npos) << message;
    EXPECT_NE(message.find("test_loss, validation_perplexity"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
  EXPECT_THROW(check_metric("test_mse", runs), ConfigError) << "text runs have no test MSE";
  // Before any run finished (or when all failed) the default metric is accepted.
  const std::vector<RunRecord> failed = {run_with("model.heads=1", "failed", NAN)};
  check_metric("test_mse", failed);
  check_metric("test_mse", {});
  EXPECT_THROW(check_metric("test_loss", failed), ConfigError);
}

TEST(Figure, CurvesOfANamedMetric) {
  const auto dir = fresh_dir("figure_metric");
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "model.rank";
  figure.metric = "test_loss";
  figure.y_label = "test loss (nats)";
  const auto runs = text_runs();
  const auto points = curve_points(figure, runs);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_DOUBLE_EQ(points[0].x, 4.0);
  EXPECT_DOUBLE_EQ(points[0].mean, 5.0);
  EXPECT_DOUBLE_EQ(points[1].mean, 2.0);
  EXPECT_EQ(points[1].seeds, 2);
  const auto lines = separation_lines(figure, points);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("mean test loss (nats) 2;"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("ratio 2.5x"), std::string::npos) << lines[0];  // 5 / 2

  write_curves_figure(figure, points, dir.string(), "loss");
  const std::string csv = read_text(dir / "loss.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "panel,line,model.rank,metric,seeds,mean,std,min,median");
  EXPECT_NE(csv.find(",4,test_loss,2,5,"), std::string::npos) << csv;
  EXPECT_NE(read_text(dir / "loss.gp").find("set ylabel \"test loss (nats)\""), std::string::npos);

  ReportInputs inputs;
  inputs.figure = "loss";
  inputs.scale = "small";
  inputs.spec.figure = figure;
  inputs.runs = runs;
  const std::string report = read_text(write_report(inputs, points, {}, {}, dir.string()));
  EXPECT_NE(report.find("Lines: mean test loss (nats) over seeds"), std::string::npos) << report;
  EXPECT_NE(report.find("reads test loss (nats) as a loss (lower is better)"), std::string::npos);
  EXPECT_NE(report.find("test loss (nats) mean ± std"), std::string::npos) << report;
  EXPECT_EQ(report.find("test MSE"), std::string::npos) << "nothing about a metric not shown";

  figure.metric = "test_accuracy";
  EXPECT_THROW(curve_points(figure, runs), ConfigError) << "no run has it";
  figure.metric = "test_mse";
  figure.y_label.clear();
  EXPECT_EQ(figure.metric_label(), "test MSE");
}

TEST(Figure, EveryPlottedXHasALabelledTicInsideTheRange) {
  const auto dir = fresh_dir("figure_tics");
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "model.rank";
  figure.line = "model.width_multiplier";
  const auto points = curve_points(figure, sweep_runs());
  write_curves_figure(figure, points, dir.string(), "tics");
  const std::string script = read_text(dir / "tics.gp");
  EXPECT_NE(script.find("set xtics (\"4\" 4, \"16\" 16)"), std::string::npos) << script;
  // The log axis is padded past both ends, so neither end tic sits on the border.
  const auto at = script.find("set xrange [");
  ASSERT_NE(at, std::string::npos) << script;
  double low = 0, high = 0;
  ASSERT_EQ(std::sscanf(script.c_str() + at, "set xrange [%lf:%lf]", &low, &high), 2);
  EXPECT_LT(low, 4.0);
  EXPECT_GT(low, 2.0) << "not padded by more than an octave";
  EXPECT_GT(high, 16.0);
  EXPECT_LT(high, 32.0);
}

TEST(Figure, ParameterCountOnTheXAxis) {
  const auto dir = fresh_dir("figure_size");
  // Two head-size rules at d in {16, 32}, two seeds: each configuration is one
  // point at its size, sorted by size within its line whatever the key order.
  std::vector<RunRecord> runs;
  const int64_t sizes[2][2] = {{9000, 5000}, {3000, 7000}};  // [rule][d]
  for (int rule = 0; rule < 2; ++rule)
    for (int d = 0; d < 2; ++d)
      for (int seed = 0; seed < 2; ++seed) {
        RunRecord run = run_with(fmt::format("model.head_size={} model.dim={} train.seed={}",
                                             rule ? "fixed" : "standard", d ? 32 : 16, seed),
                                 "done", NAN);
        run.final_metrics = {{"test_bits_per_char", 3.0 - 0.1 * d - 0.05 * rule + 0.01 * seed}};
        run.parameters = sizes[rule][d];
        runs.push_back(run);
      }
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "parameters";
  figure.line = "model.head_size";
  figure.metric = "test_bits_per_char";
  figure.log_y = false;
  const auto points = curve_points(figure, runs);
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(points[0].line, "fixed");
  EXPECT_DOUBLE_EQ(points[0].x, 3000.0);
  EXPECT_DOUBLE_EQ(points[1].x, 7000.0);
  EXPECT_EQ(points[2].line, "standard");
  EXPECT_DOUBLE_EQ(points[2].x, 5000.0) << "d = 32 is the smaller standard model here";
  EXPECT_DOUBLE_EQ(points[3].x, 9000.0);
  EXPECT_NEAR(points[3].mean, 3.005, 1e-12);
  EXPECT_EQ(points[3].seeds, 2);

  write_curves_figure(figure, points, dir.string(), "size");
  const std::string script = read_text(dir / "size.gp");
  EXPECT_NE(script.find("set format x '%.0s%c'"), std::string::npos) << script;
  EXPECT_EQ(script.find("set logscale y"), std::string::npos) << "log_y: false";
  // The resolved keys that vary, derived ranks included.
  EXPECT_EQ(points[0].configuration, "model.dim=16 model.rank=16 model.value_rank=16");
  const std::string csv = read_text(dir / "size.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "panel,model.head_size,configuration,parameters,metric,seeds,mean,std,min,median");
  EXPECT_NE(
      csv.find(",fixed,model.dim=16 model.rank=16 model.value_rank=16,3000,test_bits_per_char,2,"),
      std::string::npos)
      << csv;

  const SweepSpec spec = parse_sweep_spec(
      "grid: {model.dim: [16, 32]}\nfigure: {kind: curves, x: parameters, log_y: false}", "s.yaml");
  EXPECT_TRUE(spec.figure.x_is_size());
  EXPECT_FALSE(spec.figure.log_y);
  EXPECT_THROW(
      parse_sweep_spec("grid: {model.dim: [16]}\nfigure: {kind: heads, x: parameters}", "s.yaml"),
      ConfigError);
  EXPECT_THROW(
      parse_sweep_spec("grid: {model.dim: [16]}\nfigure: {kind: curves, x: parameter}", "s.yaml"),
      ConfigError);
  EXPECT_THROW(
      parse_sweep_spec("grid: {model.dim: [16]}\nfigure: {kind: curves, x: d, log_y: 1}", "s.yaml"),
      ConfigError);
}

TEST(Figure, ReportSetsLinesSideBySide) {
  const auto dir = fresh_dir("figure_lines");
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "model.rank";
  figure.line = "model.width_multiplier";
  const auto runs = sweep_runs();
  ReportInputs inputs;
  inputs.figure = "lines";
  inputs.scale = "small";
  inputs.spec.figure = figure;
  inputs.runs = runs;
  const std::string report =
      read_text(write_report(inputs, curve_points(figure, runs), {}, {}, dir.string()));
  EXPECT_NE(report.find("| rank r | c = 1 | c = 4 |"), std::string::npos) << report;
  EXPECT_NE(report.find("| 4 | 0.6 ± 0.1 | 0.45 ± 0.05 |"), std::string::npos) << report;
}

TEST(Figure, SeparationRatiosNearOneKeepThreeDecimals) {
  FigureSpec figure;
  figure.kind = FigureKind::kCurves;
  figure.x = "model.heads";
  std::vector<CurvePoint> points(2);
  points[0].x = 1, points[0].mean = 2.977;
  points[1].x = 16, points[1].mean = 2.899;
  const auto lines = separation_lines(figure, points);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("ratio 1.027x"), std::string::npos) << lines[0];
}
