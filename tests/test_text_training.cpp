// Language models on the real corpus end to end: they learn, their held-out metrics
// are consistent with each other and recomputable from the checkpoint, and runs
// are deterministic. Also the fixed head size rule.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "test_files.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

using attnrank::testing::read_file;

fs::path fresh_dir(const std::string& name) {
  return attnrank::testing::fresh_run_dir("text", name);
}

// A small pre-norm byte model: d 32, 2 layers, sequences of 32 bytes.
RunConfig small_text_model(const std::string& task, int steps) {
  return parse_config(
      "", {"task.name=" + task, "task.length=32", "model.dim=32", "model.heads=4", "model.layers=2",
           "model.ffn=64", "model.norm=layer", "model.norm_first=true", "model.positional=additive",
           "train.batch=16", "train.steps=" + std::to_string(steps), "train.lr=0.01",
           "train.warmup=0.1", "train.threads=1", "train.log_every=50"});
}

TrainOptions quiet() {
  return TrainOptions{};
}

}  // namespace

TEST(TextTraining, CausalLmLearnsAndReportsConsistentMetrics) {
  const fs::path dir = fresh_dir("lm");
  const TrainSummary summary = train(small_text_model("lm", 500), dir.string(), quiet());
  ASSERT_EQ(summary.status, "done");
  const double uniform = std::log(256.0);
  const double loss = summary.final_metrics.at("test_loss");
  // Uniform over bytes is 5.55 nats and the corpus's byte frequencies alone give 3.32;
  // below 2.9 the model uses the context.
  EXPECT_LT(loss, 2.9);
  EXPECT_LT(summary.final_metrics.at("validation_loss"), 2.9);
  EXPECT_NEAR(summary.final_metrics.at("test_bits_per_byte"), loss / std::numbers::ln2, 1e-9);
  EXPECT_NEAR(summary.final_metrics.at("test_perplexity"), std::exp(loss), 1e-6);
  // Characters never outnumber bytes; the corpus is almost all ASCII.
  const double bits_per_char = summary.final_metrics.at("test_bits_per_char");
  EXPECT_GE(bits_per_char, summary.final_metrics.at("test_bits_per_byte"));
  EXPECT_LT(bits_per_char, 1.01 * summary.final_metrics.at("test_bits_per_byte"));
  EXPECT_TRUE(std::isnan(summary.test_mse));

  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_FALSE(json.contains("test_mse"));
  EXPECT_DOUBLE_EQ(json["trivial_loss"].get<double>(), uniform);
  EXPECT_DOUBLE_EQ(json["test_bits_per_char"].get<double>(), bits_per_char);
  // The tied output layer stores no read_out.weight; the checkpoint reloads and
  // recomputes every held-out metric.
  const Evaluation again = evaluate_checkpoint(dir.string(), 0);
  ASSERT_EQ(again.metrics.size(), 8u);
  EXPECT_EQ(again.metrics.front().first, "test_bits_per_char");
  for (const auto& [name, value] : again.metrics)
    EXPECT_NEAR(value, summary.final_metrics.at(name), 1e-9 * std::abs(value)) << name;
}

TEST(TextTraining, MaskedLmLearnsUntied) {
  RunConfig config = small_text_model("mlm", 400);
  config.model.tie_embeddings = false;
  const fs::path dir = fresh_dir("mlm");
  const TrainSummary summary = train(config, dir.string(), quiet());
  ASSERT_EQ(summary.status, "done");
  EXPECT_LT(summary.final_metrics.at("test_loss"), 3.2);  // unigram: 3.32
  EXPECT_NEAR(evaluate_checkpoint(dir.string(), 0).metric("test_loss"),
              summary.final_metrics.at("test_loss"), 1e-9);
}

TEST(TextTraining, SameSeedAndThreadsGiveBitIdenticalRuns) {
  const RunConfig config = small_text_model("lm", 60);
  const fs::path a = fresh_dir("same_a"), b = fresh_dir("same_b");
  train(config, a.string(), quiet());
  train(config, b.string(), quiet());
  EXPECT_EQ(read_file(a / "metrics.csv"), read_file(b / "metrics.csv"));
  EXPECT_EQ(read_file(a / "model.safetensors"), read_file(b / "model.safetensors"));
}

TEST(TextConfig, FixedHeadSizeIsTheSequenceLength) {
  RunConfig config = parse_config("", {"task.name=lm", "task.length=48", "model.dim=32",
                                       "model.heads=8", "model.head_size=fixed"});
  EXPECT_EQ(config.model.rank, 48);
  EXPECT_EQ(config.model.value_rank, 48);
  config = parse_config("", {"task.name=lm", "task.length=48", "model.dim=32", "model.heads=8"});
  EXPECT_EQ(config.model.rank, 4);  // standard: d / H
  config = parse_config(
      "", {"task.name=icl-linear", "task.examples=10", "model.dim=32", "model.head_size=fixed"});
  EXPECT_EQ(config.model.rank, 21);  // 2k + 1 tokens
  try {
    parse_config("", {"task.name=lm", "task.length=48", "model.head_size=fixed", "model.rank=8"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "override 'model.rank=8': model.rank: model.head_size = fixed sets the rank to the "
              "sequence length (48), got model.rank = 8; leave model.rank at auto, or use "
              "head_size standard");
  }
}

TEST(TextTraining, EmbeddingScaleSetsTheUntrainedLoss) {
  // Tied read-out: the untrained logits have a standard deviation of about
  // embed_std * sqrt(d). At 0.02 they are near 0 and the loss near uniform
  // (ln 256); at PyTorch's 1 and d = 64, about 8 per logit, far above it.
  auto untrained_loss = [](const std::string& embed_std) {
    const fs::path dir = fresh_dir("embed_std_" + embed_std);
    const RunConfig config = parse_config(
        "", {"task.name=lm", "task.length=16", "model.dim=64", "model.heads=4", "model.layers=1",
             "model.ffn=0", "model.norm=layer", "model.norm_first=true", "train.batch=4",
             "train.steps=1", "train.lr=1e-9", "train.threads=1", "model.embed_std=" + embed_std});
    return train(config, dir.string(), quiet()).final_metrics.at("test_loss");
  };
  EXPECT_NEAR(untrained_loss("0.02"), std::log(256.0), 0.1);
  EXPECT_GT(untrained_loss("1"), 2 * std::log(256.0));
  EXPECT_THROW(parse_config("", {"model.embed_std=0"}), ConfigError);
}
