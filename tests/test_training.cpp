// End-to-end training: it learns, it is deterministic, and divergence is handled.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "test_files.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

using attnrank::testing::read_file;

fs::path fresh_dir(const std::string& name) {
  return attnrank::testing::fresh_run_dir("test", name);
}

TrainOptions quiet() {
  TrainOptions options;
  options.log = nullptr;
  return options;
}

}  // namespace

TEST(Training, FullRankLearnsTheFarthestPointTask) {
  // d = 8, N = 4, one full-rank head: the error must fall well below the trivial 1.
  const RunConfig config =
      parse_config("", {"model.dim=8", "model.heads=1", "model.ffn=64", "task.points=4",
                        "train.steps=1200", "train.batch=64", "train.lr=0.01",
                        "train.eval_batches=8", "train.threads=2", "train.log_every=100"});
  const fs::path dir = fresh_dir("learns");
  const TrainSummary summary = train(config, dir.string(), quiet());
  EXPECT_EQ(summary.status, "done");
  EXPECT_EQ(summary.steps, 1200);
  EXPECT_LT(summary.test_mse, 0.1 * summary.trivial_mse);
  for (const char* file : {"config.yaml", "metrics.csv", "summary.json", "model.safetensors"})
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(json["status"], "done");
  EXPECT_DOUBLE_EQ(json["test_mse"].get<double>(), summary.test_mse);
  for (const char* key : {"final_train_loss", "steps", "wall_seconds", "ms_per_step", "parameters",
                          "attention_parameters", "peak_rss_mb", "gflop_per_step"})
    EXPECT_TRUE(json.contains(key)) << key;
  // metrics.csv: header + one row per log_every steps.
  std::istringstream metrics(read_file(dir / "metrics.csv"));
  std::string line;
  std::getline(metrics, line);
  EXPECT_EQ(line, "step,train_loss,lr,grad_norm");
  int rows = 0;
  while (std::getline(metrics, line)) ++rows;
  EXPECT_EQ(rows, 12);
  // The checkpoint reproduces the test MSE.
  EXPECT_NEAR(evaluate_checkpoint(dir.string(), 0).metric("test_mse"), summary.test_mse, 1e-9);
}

TEST(Training, SameSeedAndThreadsGiveBitIdenticalRuns) {
  const std::vector<std::string> overrides = {
      "model.dim=8",     "model.heads=2",    "model.width_multiplier=2", "model.ffn=32",
      "model.layers=2",  "task.points=5",    "train.steps=60",           "train.batch=32",
      "train.threads=2", "train.log_every=5"};
  const RunConfig config = parse_config("", overrides);
  const fs::path a = fresh_dir("determinism_a"), b = fresh_dir("determinism_b");
  train(config, a.string(), quiet());
  train(config, b.string(), quiet());
  EXPECT_EQ(read_file(a / "metrics.csv"), read_file(b / "metrics.csv"));
  EXPECT_EQ(read_file(a / "model.safetensors"), read_file(b / "model.safetensors"));
  // A different seed gives a different run.
  RunConfig other = config;
  other.train.seed = 1;
  const fs::path c = fresh_dir("determinism_c");
  train(other, c.string(), quiet());
  EXPECT_NE(read_file(a / "metrics.csv"), read_file(c / "metrics.csv"));
}

TEST(Training, DivergenceStopsWithStatusAndKeepsMetrics) {
  // No norm, no residual, absurd learning rate: the weights blow up to inf/NaN.
  const RunConfig config =
      parse_config("", {"model.dim=4", "model.heads=1", "model.ffn=8", "model.norm=none",
                        "task.points=3", "train.steps=200", "train.batch=8", "train.lr=1e30",
                        "train.warmup=0", "train.log_every=1"});
  const fs::path dir = fresh_dir("diverges");
  const TrainSummary summary = train(config, dir.string(), quiet());
  EXPECT_EQ(summary.status, "diverged");
  EXPECT_LT(summary.steps, 200);
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(json["status"], "diverged");
  EXPECT_TRUE(json["test_mse"].is_null());
  EXPECT_FALSE(read_file(dir / "metrics.csv").empty());
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
}
