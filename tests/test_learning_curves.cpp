// Held-out curves during training (train.eval_every): validation_* columns of
// metrics.csv on a validation set that is neither training data nor the test set,
// empty cells between evaluations, and no effect on what the run computes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/safetensors.h"
#include "attnrank/experiment/learning_curves.h"
#include "attnrank/experiment/sweep.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "test_files.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

using attnrank::testing::read_file;

fs::path fresh_dir(const std::string& name) {
  return attnrank::testing::fresh_run_dir("curves", name);
}

// configs/tiny.yaml's model: 200 steps, a row every 50.
RunConfig tiny(std::vector<std::string> overrides = {}) {
  overrides.insert(overrides.begin(), "train.threads=1");
  return load_config(std::string(ATTNRANK_SOURCE_DIR) + "/configs/tiny.yaml", overrides);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The columns of metrics.csv before the validation ones.
std::string first_four_columns(const std::string& line) {
  size_t at = 0;
  for (int i = 0; i < 4; ++i) at = line.find(',', at) + 1;
  return at == 0 ? line : line.substr(0, at - 1);
}

}  // namespace

TEST(LearningCurves, OffByDefaultLeavesMetricsAndSummaryAsTheyWere) {
  const RunConfig config = tiny();
  EXPECT_EQ(config.train.eval_every, 0);
  EXPECT_FALSE(config.train.tensorboard);
  const fs::path dir = fresh_dir("off");
  train(config, dir.string(), TrainOptions{});
  const auto lines = lines_of(read_file(dir / "metrics.csv"));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "step,train_loss,lr,grad_norm");
  EXPECT_EQ(std::count(lines[1].begin(), lines[1].end(), ','), 3);
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_FALSE(json.contains("ms_per_validation"));
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_FALSE(entry.path().filename().string().starts_with("events.out.tfevents"));
}

TEST(LearningCurves, ValidationColumnsEveryEvalEveryStepsAndEmptyCellsBetween) {
  // Rows at 50, 100, 150, 200; evaluations at 100 and 200 (and the last step).
  const fs::path dir = fresh_dir("points");
  const TrainSummary summary = train(tiny({"train.eval_every=100"}), dir.string(), TrainOptions{});
  ASSERT_EQ(summary.status, "done");
  const auto lines = lines_of(read_file(dir / "metrics.csv"));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "step,train_loss,lr,grad_norm,validation_mse");
  EXPECT_TRUE(lines[1].starts_with("50,") && lines[1].ends_with(",")) << lines[1];
  EXPECT_TRUE(lines[3].starts_with("150,") && lines[3].ends_with(",")) << lines[3];
  for (const size_t row : {2u, 4u}) {
    const std::string cell = lines[row].substr(lines[row].rfind(',') + 1);
    ASSERT_FALSE(cell.empty()) << lines[row];
    const double value = std::stod(cell);
    EXPECT_GT(value, 0.0);
    EXPECT_LT(value, 2.0);
  }
  // The validation set is not the test set: the last evaluation differs from test_mse.
  const MetricsTable table = read_metrics_table(dir.string());
  ASSERT_EQ(table.columns.size(), 5u);
  EXPECT_TRUE(std::isnan(table.rows[0][4]));
  EXPECT_NE(table.rows[3][4], summary.test_mse);
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  ASSERT_TRUE(json.contains("ms_per_validation"));
  EXPECT_GE(json["ms_per_validation"].get<double>(), 0.0);
}

TEST(LearningCurves, EvaluatingChangesNothingTheRunComputes) {
  const fs::path off = fresh_dir("same_off"), on = fresh_dir("same_on");
  const TrainSummary a = train(tiny(), off.string(), TrainOptions{});
  const TrainSummary b =
      train(tiny({"train.eval_every=50", "train.tensorboard=true"}), on.string(), TrainOptions{});
  EXPECT_EQ(a.test_mse, b.test_mse);
  EXPECT_EQ(a.final_train_loss, b.final_train_loss);
  // The same weights (the files differ only in the config they embed).
  const SafeTensorFile weights_off = read_safetensors((off / "model.safetensors").string());
  const SafeTensorFile weights_on = read_safetensors((on / "model.safetensors").string());
  ASSERT_EQ(weights_off.tensors.size(), weights_on.tensors.size());
  for (const auto& [name, tensor] : weights_off.tensors)
    EXPECT_EQ(tensor.bytes, weights_on.tensors.at(name).bytes) << name;
  const auto rows_off = lines_of(read_file(off / "metrics.csv"));
  const auto rows_on = lines_of(read_file(on / "metrics.csv"));
  ASSERT_EQ(rows_off.size(), rows_on.size());
  for (size_t i = 1; i < rows_off.size(); ++i)
    EXPECT_EQ(rows_off[i], first_four_columns(rows_on[i]));
  // Neither key is part of a run's identity, so existing results databases resume.
  EXPECT_EQ(run_identity(tiny()),
            run_identity(tiny({"train.eval_every=50", "train.tensorboard=true"})));
}

TEST(LearningCurves, ValidationSetIsAPureFunctionOfTheSeedApartFromTheTestSet) {
  const RunConfig config = tiny();
  const auto objective = make_objective(config);
  Transformer<float> model(config.model, objective->sequence());
  model.initialize(3);
  const auto names = objective->validation_names();
  ASSERT_EQ(names, std::vector<std::string>{"validation_mse"});
  const auto first = objective->validate(model, 7, 2, 16);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(objective->validate(model, 7, 2, 16), first);
  EXPECT_NE(objective->validate(model, 8, 2, 16), first);
  // It is the loss on Stream::kValidation batches, computed here by hand.
  PointTask task(config.task, config.model.dim);
  double total = 0.0;
  for (uint64_t index = 0; index < 2; ++index) {
    Batch batch;
    batch.size = 16;
    batch.inputs.resize(static_cast<size_t>(16) * task.tokens() * task.dim());
    batch.targets.resize(batch.inputs.size());
    task.generate(7, Stream::kValidation, index, 16, batch.inputs.data(), batch.targets.data());
    std::vector<float> outputs(batch.targets.size());
    forward_batch(model, batch, outputs.data());
    total += objective->loss(batch, outputs.data(), nullptr);
  }
  EXPECT_DOUBLE_EQ(first[0], total / 2);
  EXPECT_NE(first[0], objective->evaluate(model, 7, 2, 16).metric("test_mse"));
}

TEST(LearningCurves, InContextRegressionReportsItsErrors) {
  const fs::path dir = fresh_dir("icl");
  const RunConfig config = parse_config(
      "", {"task.name=icl-linear", "task.features=3", "task.examples=4", "model.dim=8",
           "model.heads=2", "model.ffn=16", "train.batch=8", "train.steps=20", "train.log_every=10",
           "train.eval_every=10", "train.eval_batches=2", "train.threads=1"});
  ASSERT_EQ(train(config, dir.string(), TrainOptions{}).status, "done");
  const MetricsTable table = read_metrics_table(dir.string());
  ASSERT_EQ(table.columns, (std::vector<std::string>{"step", "train_loss", "lr", "grad_norm",
                                                     "validation_mse", "validation_mse_query"}));
  ASSERT_EQ(table.rows.size(), 2u);
  for (const auto& row : table.rows) {
    EXPECT_GT(row[4], 0.0);
    EXPECT_GT(row[5], 0.0);
  }
}

TEST(LearningCurves, TextValidationIsTheValidationSplit) {
  const fs::path dir = fresh_dir("text");
  const RunConfig config =
      parse_config("", {"task.name=lm", "task.length=16", "model.dim=16", "model.heads=2",
                        "model.ffn=32", "model.norm=layer", "model.norm_first=true",
                        "model.positional=additive", "train.batch=256", "train.steps=4",
                        "train.log_every=2", "train.eval_every=4", "train.threads=1"});
  TrainSummary summary;
  try {
    summary = train(config, dir.string(), TrainOptions{});
  } catch (const ConfigError& error) {
    GTEST_SKIP() << error.what();  // no fortunes corpus on this machine
  }
  ASSERT_EQ(summary.status, "done");
  const MetricsTable table = read_metrics_table(dir.string());
  ASSERT_EQ(table.columns.size(), 6u);
  EXPECT_EQ(table.columns[4], "validation_bits_per_char");
  EXPECT_EQ(table.columns[5], "validation_loss");
  ASSERT_EQ(table.rows.size(), 2u);
  EXPECT_TRUE(std::isnan(table.rows[0][4]));
  // The last evaluation is the final validation metric of summary.json, to the bit
  // (both written with 9 significant digits).
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_FLOAT_EQ(table.rows[1][4], json["validation_bits_per_char"].get<double>());
  EXPECT_FLOAT_EQ(table.rows[1][5], json["validation_loss"].get<double>());
  EXPECT_NE(table.rows[1][4], json["test_bits_per_char"].get<double>());
}

TEST(LearningCurves, EvalEveryMustLandOnMetricsRows) {
  try {
    tiny({"train.eval_every=75"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_STREQ(error.what(),
                 "override 'train.eval_every=75': train.eval_every: must be a multiple of "
                 "train.log_every (50) (evaluations land on metrics rows), got 75");
  }
  EXPECT_THROW(tiny({"train.eval_every=-1"}), ConfigError);
  EXPECT_THROW(tiny({"train.tensorboard=1"}), ConfigError);
  EXPECT_EQ(tiny({"train.eval_every=150"}).train.eval_every, 150);
}

TEST(LearningCurves, AResumedRunHasTheSameCurves) {
  const RunConfig config = tiny({"train.eval_every=100"});
  const fs::path whole = fresh_dir("resume_whole"), stopped = fresh_dir("resume_stopped");
  train(config, whole.string(), TrainOptions{});
  TrainOptions stop;
  int64_t polls = 0;
  stop.should_stop = [&polls] { return ++polls > 120; };  // stops before step 121
  EXPECT_EQ(train(config, stopped.string(), stop).status, "interrupted");
  EXPECT_EQ(train(config, stopped.string(), TrainOptions{}).status, "done");
  EXPECT_EQ(read_file(stopped / "metrics.csv"), read_file(whole / "metrics.csv"));
  // Another eval_every is another metrics layout: not resumed into this directory.
  EXPECT_THROW(train(tiny({"train.eval_every=50"}), stopped.string(), TrainOptions{}), ConfigError);
}
