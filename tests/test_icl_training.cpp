// In-context linear regression end to end: a small causal model learns to use the
// examples in its context, and the run directory holds the error curve next to the
// least-squares reference on the same test sequences.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "attnrank/config_io/config_io.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "temp_dirs.h"

using namespace attnrank;
namespace fs = std::filesystem;

TEST(IclTraining, LearnsToUseTheContextAndWritesTheCurve) {
  const RunConfig config =
      parse_config("", {"task.name=icl-linear", "task.features=5", "task.examples=10",
                        "model.dim=32", "model.heads=4", "model.layers=2", "model.ffn=64",
                        "model.norm=layer", "model.norm_first=true", "model.positional=additive",
                        "train.batch=64", "train.steps=800", "train.lr=0.003", "train.warmup=0.1",
                        "train.threads=1", "train.eval_batches=16"});
  const fs::path dir = attnrank::testing::process_temp_path("icl_training", "run");
  fs::remove_all(dir);
  const TrainSummary summary = train(config, dir.string(), TrainOptions{});
  ASSERT_EQ(summary.status, "done");
  EXPECT_DOUBLE_EQ(summary.trivial_mse, 1.0);  // noise 0: E[y^2] / m = 1
  EXPECT_LT(summary.test_mse, 0.8);
  EXPECT_DOUBLE_EQ(summary.final_metrics.at("test_mse"), summary.test_mse);

  // examples, model_mse, least_squares_mse, least_squares_expected for 0..k examples.
  std::ifstream in(dir / "icl_curve.csv");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "examples,model_mse,least_squares_mse,least_squares_expected");
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::vector<double> row;
    for (std::string field; std::getline(fields, field, ',');) row.push_back(std::stod(field));
    ASSERT_EQ(row.size(), 4u) << line;
    rows.push_back(row);
  }
  ASSERT_EQ(rows.size(), 11u);
  // Without examples nothing beats predicting 0; with ten the model is far better,
  // though not yet at the least-squares optimum (exact from 5 examples on).
  EXPECT_GT(rows[0][1], 0.9);
  EXPECT_LT(rows[10][1], 0.5 * rows[0][1]);
  EXPECT_LT(rows[10][2], 1e-9);
  EXPECT_NEAR(rows[2][3], 0.6, 1e-12);
  EXPECT_NEAR(summary.final_metrics.at("test_mse_query"), rows[10][1], 1e-8);
  EXPECT_NEAR(summary.final_metrics.at("test_least_squares_query"), rows[10][2], 1e-8);
  EXPECT_NEAR(evaluate_checkpoint(dir.string(), 0).metric("test_mse"), summary.test_mse, 1e-9);
}
