// Aggregation over seeds (mean, sample std, min, median), grouping and filters,
// the table/CSV/JSON forms, and the numbers, files and report of a figure.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attnrank/aggregate.h"
#include "attnrank/error.h"
#include "attnrank/reproduce.h"
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
  EXPECT_EQ(full.test_mse.count, 3);
  EXPECT_NEAR(full.test_mse.mean, 0.04, 1e-12);
  EXPECT_NEAR(full.test_mse.std, 0.01, 1e-12);
  EXPECT_DOUBLE_EQ(full.test_mse.min, 0.03);
  EXPECT_DOUBLE_EQ(full.test_mse.median, 0.04);
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
            "model.rank,seeds,diverged,failed,mean,std,min,median,train_loss");
  EXPECT_NE(csv.find("\n16,6,1,1,0.035,"), std::string::npos) << csv;
  const auto json = nlohmann::json::parse(format_groups(groups, keys, TableFormat::kJson));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[1]["config"]["model.rank"], "16");
  EXPECT_EQ(json[1]["seeds"], 6);
  EXPECT_NEAR(json[1]["test_mse"]["min"].get<double>(), 0.02, 1e-12);
  const std::string table = format_groups(groups, keys, TableFormat::kTable);
  EXPECT_NE(table.find("model.rank"), std::string::npos);
  EXPECT_NE(table.find("0.035"), std::string::npos) << table;
  EXPECT_THROW(parse_table_format("xml"), ConfigError);
}

TEST(Figure, CurvePointsAndSeparation) {
  FigureSpec figure;
  figure.kind = "curves";
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
  figure.kind = "curves";
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
  EXPECT_EQ(header, "model.layers,model.width_multiplier,model.rank,seeds,mean,std,min,median");
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
