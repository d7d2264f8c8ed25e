// TrainOptions::should_stop: a stopped run ends with status "interrupted" and a
// complete run directory (the Python package's Ctrl-C).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/train/checkpoint.h"
#include "attnrank/train/train.h"
#include "test_files.h"

using namespace attnrank;
namespace fs = std::filesystem;

TEST(TrainingStop, StoppedRunIsInterruptedWithMetricsSummaryAndCheckpoint) {
  const RunConfig config =
      parse_config("", {"model.dim=4", "model.heads=2", "model.ffn=16", "task.points=3",
                        "train.steps=1000", "train.batch=8", "train.log_every=20"});
  const fs::path dir = attnrank::testing::fresh_run_dir("test", "stop");
  TrainOptions options;
  int polls = 0;
  options.should_stop = [&polls] { return ++polls > 50; };  // stop before step 51
  const TrainSummary summary = train(config, dir.string(), options);
  EXPECT_EQ(summary.status, "interrupted");
  EXPECT_EQ(summary.steps, 50);
  EXPECT_TRUE(summary.final_metrics.empty());  // no held-out evaluation
  const auto json = nlohmann::json::parse(attnrank::testing::read_file(dir / "summary.json"));
  EXPECT_EQ(json["status"], "interrupted");
  EXPECT_EQ(json["steps"], 50);
  EXPECT_TRUE(json["test_mse"].is_null());
  // Rows at 20 and 40, then one for steps 41..50.
  std::istringstream metrics(attnrank::testing::read_file(dir / "metrics.csv"));
  std::string line, last;
  int rows = -1;
  while (std::getline(metrics, line)) ++rows, last = line;
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(last.substr(0, 3), "50,");
  // The weights so far load back.
  const LoadedRun run = load_run(dir.string());
  EXPECT_EQ(run.model->parameter_count(), json["parameters"].get<int64_t>());
}

TEST(TrainingStop, NeverStoppingChangesNothing) {
  const RunConfig config =
      parse_config("", {"model.dim=4", "model.heads=2", "model.ffn=16", "task.points=3",
                        "train.steps=60", "train.batch=8", "train.log_every=20"});
  const fs::path plain = attnrank::testing::fresh_run_dir("test", "stop_plain");
  const fs::path polled = attnrank::testing::fresh_run_dir("test", "stop_polled");
  train(config, plain.string(), TrainOptions{});
  TrainOptions options;
  options.should_stop = [] { return false; };
  EXPECT_EQ(train(config, polled.string(), options).status, "done");
  for (const char* file : {"metrics.csv", "model.safetensors"})
    EXPECT_EQ(attnrank::testing::read_file(plain / file),
              attnrank::testing::read_file(polled / file))
        << file;
}
