// `attnrank plot`: learning curves of run directories as PNG or SVG, through the
// binary; a held-out evaluation shows in the log line; bad input exits 2 with one
// line naming the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli_runner.h"
#include "temp_dirs.h"

using attnrank::testing::count_lines;
using attnrank::testing::run_attnrank;
using attnrank::testing::slurp;
namespace fs = std::filesystem;

namespace {

// One directory per test process: ctest runs each test of the suite as its own
// process, in parallel, and each repeats SetUpTestSuite.
const fs::path kBase = attnrank::testing::process_temp_path("plot_cli", "runs");
const std::string kTiny = std::string("--config ") + ATTNRANK_SOURCE_DIR + "/configs/tiny.yaml";

// Two tiny runs (one with held-out evaluations, one without), trained once.
class PlotCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kBase);
    fs::create_directories(kBase);
    const auto with =
        run_attnrank("train " + kTiny + " train.threads=1 train.eval_every=50 --out " +
                     (kBase / "with").string());
    ASSERT_EQ(with.exit_code, 0) << with.err;
    // Every row is evaluated: the log line shows the held-out metric.
    EXPECT_NE(with.out.find("[100/200] loss"), std::string::npos) << with.out;
    EXPECT_NE(with.out.find("validation_mse"), std::string::npos) << with.out;
    const auto without = run_attnrank("train " + kTiny + " train.threads=1 model.heads=1 --out " +
                                      (kBase / "without").string());
    ASSERT_EQ(without.exit_code, 0) << without.err;
  }

  static std::string run(const std::string& name) { return (kBase / name).string(); }

  static void expect_usage_error(const std::string& arguments, const std::string& needle) {
    const auto result = run_attnrank("plot " + arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments << "\n" << result.err;
    EXPECT_EQ(count_lines(result.err), 1) << result.err;
    EXPECT_TRUE(result.err.starts_with("attnrank: error: ")) << result.err;
    EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
  }
};

TEST_F(PlotCli, WritesAPngOfOneRun) {
  const fs::path out = kBase / "one.png";
  const auto result = run_attnrank("plot " + run("with") + " --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "figure " + out.string() + "\n");
  const std::string png = slurp(out);
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  // Only the figure: no script, data or SVG next to it.
  EXPECT_FALSE(fs::exists(kBase / "one.gp"));
  EXPECT_FALSE(fs::exists(kBase / "one.svg"));
}

TEST_F(PlotCli, WritesAnSvgOfSeveralRunsAndChosenMetrics) {
  const fs::path out = kBase / "figures" / "both.svg";  // a new directory too
  const auto result =
      run_attnrank("plot " + run("with") + " " + run("without") +
                   " --metric train_loss,lr --metric grad_norm --log-y --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string svg = slurp(out);
  ASSERT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  // Each run is a line in the key, each metric a panel title.
  EXPECT_NE(svg.find(run("without")), std::string::npos);
  for (const char* metric : {"train_loss", "grad_norm"})
    EXPECT_NE(svg.find(metric), std::string::npos) << metric;
  EXPECT_NE(svg.find(">lr<"), std::string::npos);
  EXPECT_EQ(svg.find("validation_mse"), std::string::npos);  // not asked for
}

TEST_F(PlotCli, DefaultMetricsAreTheTrainingLossAndTheHeldOutColumns) {
  const fs::path out = kBase / "default.svg";
  const auto result =
      run_attnrank("plot " + run("with") + "/ " + run("without") + " --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string svg = slurp(out);
  EXPECT_NE(svg.find("train_loss"), std::string::npos);
  EXPECT_NE(svg.find("validation_mse"), std::string::npos);
  EXPECT_EQ(svg.find("grad_norm"), std::string::npos);
}

TEST_F(PlotCli, BadInputIsAUsageError) {
  expect_usage_error(run("missing"), "run " + run("missing") + ": no such directory");
  expect_usage_error(kBase.string() + " --out " + run("x.png"), "no metrics.csv");
  expect_usage_error(run("with") + " --metric validation_mes --out " + run("x.png"),
                     "unknown metric 'validation_mes' (did you mean 'validation_mse'?)");
  expect_usage_error(run("without") + " --metric validation_mse --out " + run("x.png"),
                     "unknown metric 'validation_mse'");
  expect_usage_error(run("with") + " --out " + run("x.pdf"), "must end in .png or .svg");
  EXPECT_FALSE(fs::exists(kBase / "x.png"));
}

TEST_F(PlotCli, EmptyMetricsFileIsAUsageError) {
  const fs::path dir = kBase / "fresh";
  fs::create_directories(dir);
  { std::ofstream(dir / "metrics.csv") << "step,train_loss,lr,grad_norm\n"; }
  expect_usage_error(dir.string(), "no metrics rows yet");
  { std::ofstream(dir / "metrics.csv") << "hello,world\n1,2\n"; }
  expect_usage_error(dir.string(), "not a metrics table");
  {
    std::ofstream(dir / "metrics.csv") << "step,train_loss,lr,grad_norm,validation_mse\n"
                                       << "50,1.5,0,0.25,\n100,1.25,0,0.5,\n";
  }
  expect_usage_error(dir.string() + " --metric validation_mse",
                     "validation_mse has no values to draw in these runs (held-out evaluations "
                     "need train.eval_every)");
  expect_usage_error(dir.string() + " --metric lr --log-y", "lr has no positive values");
}

}  // namespace
