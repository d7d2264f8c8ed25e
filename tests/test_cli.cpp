// The `attnrank` command line: train, eval, and one test per class of bad input
// (exit code 2 and one line naming the key).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "temp_dirs.h"

using attnrank::testing::count_lines;
using attnrank::testing::run_attnrank;
using attnrank::testing::slurp;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = attnrank::testing::process_temp_path("cli_test", name);
  fs::remove_all(dir);
  return dir;
}

const std::string kTiny = std::string("--config ") + ATTNRANK_SOURCE_DIR + "/configs/tiny.yaml";

void expect_config_error(const std::string& arguments, const std::string& needle) {
  const auto result =
      run_attnrank("train " + kTiny + " " + arguments + " --out " + fresh_dir("bad").string());
  EXPECT_EQ(result.exit_code, 2) << arguments << "\n" << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
}

}  // namespace

TEST(Cli, TrainWritesTheRunDirectoryAndEvalReproducesIt) {
  const fs::path dir = fresh_dir("train");
  const auto result = run_attnrank("train " + kTiny + " train.threads=1 --out " + dir.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("done:"), std::string::npos) << result.out;
  // Not a terminal: plain periodic lines, no carriage-return bar.
  EXPECT_EQ(result.out.find('\r'), std::string::npos);
  EXPECT_NE(result.out.find("[50/200]"), std::string::npos) << result.out;
  const auto summary = nlohmann::json::parse(slurp(dir / "summary.json"));
  EXPECT_EQ(summary["status"], "done");
  EXPECT_EQ(summary["steps"], 200);
  const std::string resolved = slurp(dir / "config.yaml");
  EXPECT_NE(resolved.find("rank: 2"), std::string::npos) << "rank resolved to dim/heads";

  const auto eval = run_attnrank("eval --checkpoint " + dir.string());
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const double recomputed = std::stod(eval.out.substr(eval.out.find(' ') + 1));
  EXPECT_NEAR(recomputed, summary["test_mse"].get<double>(), 1e-6);
}

TEST(Cli, UnknownKeyWithSuggestion) {
  expect_config_error("model.rnak=3", "model.rank");
}
TEST(Cli, UnknownSectionInOverride) {
  expect_config_error("optim.lr=3", "optim");
}
TEST(Cli, WrongTypeInteger) {
  expect_config_error("model.heads=two", "model.heads");
}
TEST(Cli, WrongTypeFloat) {
  expect_config_error("train.lr=fast", "train.lr");
}
TEST(Cli, WrongTypeBool) {
  expect_config_error("model.bias=maybe", "model.bias");
}
TEST(Cli, UnknownChoice) {
  expect_config_error("model.norm=batch", "model.norm");
}
TEST(Cli, RankBelowOne) {
  expect_config_error("model.rank=0", "model.rank");
}
TEST(Cli, HeadsBelowOne) {
  expect_config_error("model.heads=0", "model.heads");
}
TEST(Cli, OrthogonalWithMorePointsThanDimensions) {
  expect_config_error("task.distribution=orthogonal task.points=9", "task.points");
}
TEST(Cli, NonDividingAutoRank) {
  expect_config_error("model.heads=3", "model.rank");
}
TEST(Cli, MalformedOverride) {
  expect_config_error("model.rank", "model.rank");
}

TEST(Cli, MissingConfigFile) {
  const auto result =
      run_attnrank("train --config /nonexistent/x.yaml --out " + fresh_dir("missing").string());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("/nonexistent/x.yaml"), std::string::npos) << result.err;
}

TEST(Cli, YamlSyntaxError) {
  const fs::path file = fresh_dir("syntax").string() + ".yaml";
  std::ofstream(file) << "model:\n  dim: [8\n";
  const auto result = run_attnrank("train --config " + file.string() + " --out /tmp/x");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
}

TEST(Cli, UsageErrors) {
  EXPECT_EQ(run_attnrank("").exit_code, 2);
  EXPECT_EQ(run_attnrank("frobnicate").exit_code, 2);
  EXPECT_EQ(run_attnrank("train " + kTiny).exit_code, 2) << "--out is required";
  EXPECT_EQ(run_attnrank("eval").exit_code, 2) << "--checkpoint is required";
  EXPECT_EQ(run_attnrank("--help").exit_code, 0);
}

TEST(Cli, EvalOfMissingOrCorruptCheckpoint) {
  const auto missing = run_attnrank("eval --checkpoint /nonexistent/run");
  EXPECT_EQ(missing.exit_code, 2) << missing.err;

  const fs::path dir = fresh_dir("corrupt");
  ASSERT_EQ(run_attnrank("train " + kTiny + " train.steps=5 --out " + dir.string()).exit_code, 0);
  const fs::path weights = dir / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) - 7);
  const auto corrupt = run_attnrank("eval --checkpoint " + dir.string());
  EXPECT_EQ(corrupt.exit_code, 2) << "a corrupt file is bad input";
  EXPECT_EQ(count_lines(corrupt.err), 1) << corrupt.err;
  EXPECT_NE(corrupt.err.find("model.safetensors"), std::string::npos) << corrupt.err;
}

TEST(Cli, DivergedRunExitsNonZeroAndKeepsMetrics) {
  const fs::path dir = fresh_dir("diverged");
  const auto result = run_attnrank("train " + kTiny +
                                   " model.norm=none train.lr=1e30 train.warmup=0 "
                                   "train.log_every=1 --out " +
                                   dir.string());
  EXPECT_EQ(result.exit_code, 3) << result.err;
  EXPECT_NE(result.err.find("diverged"), std::string::npos) << result.err;
  EXPECT_TRUE(fs::exists(dir / "metrics.csv"));
  EXPECT_EQ(nlohmann::json::parse(slurp(dir / "summary.json"))["status"], "diverged");
}

TEST(Cli, EvalRejectsACheckpointThatDoesNotMatchItsConfig) {
  const fs::path dir = fresh_dir("mismatch");
  ASSERT_EQ(run_attnrank("train " + kTiny + " train.steps=5 --out " + dir.string()).exit_code, 0);
  // Edit the resolved config so the weights no longer fit it.
  std::string config = slurp(dir / "config.yaml");
  const size_t at = config.find("ffn: 16");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, 7, "ffn: 17");
  std::ofstream(dir / "config.yaml") << config;
  const auto result = run_attnrank("eval --checkpoint " + dir.string());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("does not match"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("model.ffn: 17"), std::string::npos) << result.err;
}

TEST(Cli, OutputPathThatIsAFile) {
  const fs::path file = fresh_dir("out_is_file").string() + ".txt";
  std::ofstream(file) << "x";
  const auto result = run_attnrank("train " + kTiny + " --out " + file.string() + "/run");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
}
