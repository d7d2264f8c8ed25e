// Mid-run checkpoints and exact resume (train.checkpoint_every, run_directory.h): a
// run stopped, killed with SIGKILL or sent SIGTERM, then run again on the same
// directory, ends with metrics.csv, model.safetensors and summary metrics
// bit-identical to an uninterrupted run; and `train --out DIR` refuses a directory
// that holds anything but this run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/safetensors.h"
#include "attnrank/train/run_directory.h"
#include "attnrank/train/train.h"
#include "cli_runner.h"
#include "test_files.h"

using namespace attnrank;
using attnrank::testing::fresh_run_dir;
using attnrank::testing::read_file;
using attnrank::testing::run_attnrank;
namespace fs = std::filesystem;

namespace {

// Small but not trivial: two layers, several heads, rows every 10 steps.
const std::vector<std::string> kOverrides = {
    "model.dim=8",     "model.heads=2",   "model.layers=2",       "model.ffn=16",
    "task.points=4",   "train.steps=120", "train.batch=16",       "train.log_every=10",
    "train.threads=1", "train.seed=7",    "train.eval_batches=2", "train.checkpoint_every=off"};

std::string cli_overrides(const std::string& extra = "") {
  std::string text;
  for (const auto& item : kOverrides) text += item + " ";
  return text + extra;
}

// The summary.json values that do not measure time or memory.
nlohmann::json result_fields(const fs::path& dir) {
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  nlohmann::json kept;
  for (const auto& [key, value] : json.items())
    if (key.starts_with("test_") || key.starts_with("validation_") || key == "status" ||
        key == "final_train_loss" || key == "steps" || key.starts_with("trivial_") ||
        key == "parameters")
      kept[key] = value;
  return kept;
}

void expect_same_run_files(const fs::path& expected, const fs::path& actual) {
  for (const char* file : {"metrics.csv", "model.safetensors", "config.yaml"})
    EXPECT_EQ(read_file(expected / file), read_file(actual / file)) << file;
  EXPECT_EQ(result_fields(expected), result_fields(actual));
  EXPECT_FALSE(fs::exists(actual / "train_state.safetensors")) << "left after the run ended";
}

// The uninterrupted run with train.checkpoint_every = `every`, through the library.
fs::path reference_run(const std::string& every = "off") {
  static std::map<std::string, fs::path> runs;
  if (!runs.contains(every)) {
    // One per test process (fresh_run_dir's names carry the pid): CTest runs tests
    // of this file side by side.
    const fs::path path = fresh_run_dir("resume", "reference_" + every);
    auto overrides = kOverrides;
    overrides.push_back("train.checkpoint_every=" + every);
    train(parse_config("", overrides), path.string(), TrainOptions{});
    runs[every] = path;
  }
  return runs[every];
}

}  // namespace

TEST(Resume, StoppedThreeTimesEndsBitIdentical) {
  const RunConfig config = parse_config("", kOverrides);
  const fs::path dir = fresh_run_dir("resume", "stopped");
  // Stops before steps 33, 33 + 41 = 74 and 74 + 20 = 94, mid-row each time.
  for (int polls_allowed : {33, 41, 20}) {
    TrainOptions options;
    int polls = 0;
    options.should_stop = [&] { return ++polls > polls_allowed; };
    const TrainSummary stopped = train(config, dir.string(), options);
    ASSERT_EQ(stopped.status, "interrupted");
    EXPECT_TRUE(fs::exists(dir / "train_state.safetensors"));
    EXPECT_EQ(nlohmann::json::parse(read_file(dir / "summary.json"))["status"], "interrupted");
  }
  const TrainSummary finished = train(config, dir.string(), TrainOptions{});
  EXPECT_EQ(finished.status, "done");
  EXPECT_EQ(finished.resumed_from_step, 94);
  expect_same_run_files(reference_run(), dir);
}

TEST(Resume, PeriodicCheckpointsChangeNoResult) {
  const RunConfig config = parse_config("", [] {
    auto overrides = kOverrides;
    overrides.push_back("train.checkpoint_every=25");
    return overrides;
  }());
  const fs::path dir = fresh_run_dir("resume", "periodic");
  const TrainSummary summary = train(config, dir.string(), TrainOptions{});
  EXPECT_EQ(summary.checkpoints_written, 4);  // at 25, 50, 75, 100; not at the end
  EXPECT_GT(summary.checkpoint_mb, 0.0);
  const auto json = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(json["checkpoints_written"], 4);
  EXPECT_TRUE(json.contains("checkpoint_seconds"));
  // Against the run that never saved: the same metrics and weights (the files
  // differ only in the config they record).
  const fs::path plain = reference_run("off");
  EXPECT_EQ(read_file(plain / "metrics.csv"), read_file(dir / "metrics.csv"));
  EXPECT_EQ(result_fields(plain), result_fields(dir));
  const SafeTensorFile a = read_safetensors((plain / "model.safetensors").string());
  const SafeTensorFile b = read_safetensors((dir / "model.safetensors").string());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, tensor] : a.tensors) EXPECT_EQ(tensor.bytes, b.at(name).bytes) << name;
  expect_same_run_files(reference_run("25"), dir);
}

TEST(Resume, KilledWithSigkillBetweenCheckpointsSeveralTimes) {
  const fs::path dir = fresh_run_dir("resume", "killed");
  const std::string command =
      "train " + cli_overrides("train.checkpoint_every=10") + " --quiet --out " + dir.string();
  // Killed at step 37 (last checkpoint 30), then at 85 (resumed at 30; last
  // checkpoint 80), then left to finish from 80.
  for (int kill_step : {37, 85}) {
    const auto killed =
        run_attnrank(command, "ATTNRANK_FAULT_KILL_AT_STEP=" + std::to_string(kill_step));
    EXPECT_NE(killed.exit_code, 0) << "not killed at step " << kill_step << killed.out;
    EXPECT_TRUE(fs::exists(dir / "train_state.safetensors"));
    EXPECT_FALSE(fs::exists(dir / "summary.json"));
  }
  const auto finished = run_attnrank(command);
  ASSERT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "summary.json"))["resumed_from_step"], 80);
  expect_same_run_files(reference_run("10"), dir);
}

TEST(Resume, SigtermSavesAndExitsFour) {
  const fs::path dir = fresh_run_dir("resume", "sigterm");
  const std::string binary = ATTNRANK_BINARY;
  // Long enough to still be running when the first checkpoint appears.
  const std::string command =
      binary + " train " +
      cli_overrides("train.steps=200000 train.checkpoint_every=50 train.log_every=50") +
      " --quiet --out " + dir.string();
  const auto stopped = attnrank::testing::run_shell(
      "(" + command + ") & pid=$!; while [ ! -f " + dir.string() +
      "/train_state.safetensors ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done; "
      "kill -TERM $pid; wait $pid; "
      "echo \"status $?\"");
  EXPECT_NE(stopped.out.find("status 4"), std::string::npos) << stopped.out << stopped.err;
  const auto summary = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(summary["status"], "interrupted");
  const int64_t steps = summary["steps"].get<int64_t>();
  EXPECT_GT(steps, 0);
  EXPECT_TRUE(fs::exists(dir / "train_state.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));  // the weights at the stop

  // The same run, shortened, is another run: refused.
  const auto other =
      run_attnrank("train " + cli_overrides("train.steps=100") + " --out " + dir.string());
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("holds another run (train.steps: 200000 there, train.steps: 100 here)"),
            std::string::npos)
      << other.err;
}

TEST(Resume, ResumedRunReportsWhereItStarted) {
  const RunConfig config = parse_config("", kOverrides);
  const fs::path dir = fresh_run_dir("resume", "log");
  TrainOptions stop;
  int polls = 0;
  stop.should_stop = [&] { return ++polls > 50; };
  train(config, dir.string(), stop);
  std::ostringstream log;
  TrainOptions options;
  options.log = &log;
  train(config, dir.string(), options);
  EXPECT_NE(log.str().find("resuming " + dir.string() + " at step 50/120"), std::string::npos)
      << log.str();
  // Rates and ETA count this process's steps only: the first line is at step 60.
  EXPECT_NE(log.str().find("[60/120]"), std::string::npos) << log.str();
}

TEST(Resume, FinishedRunIsNotTrainedAgain) {
  const fs::path dir = fresh_run_dir("resume", "finished");
  const std::string command = "train " + cli_overrides() + " --quiet --out " + dir.string();
  ASSERT_EQ(run_attnrank(command).exit_code, 0);
  const auto written = fs::last_write_time(dir / "summary.json");
  const auto again = run_attnrank(command);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("done before: 120 steps"), std::string::npos) << again.out;
  EXPECT_EQ(fs::last_write_time(dir / "summary.json"), written);
  // Another thread count is the same run.
  const auto threads =
      run_attnrank("train " + cli_overrides("train.threads=2") + " --quiet --out " + dir.string());
  EXPECT_EQ(threads.exit_code, 0) << threads.err;
  EXPECT_EQ(fs::last_write_time(dir / "summary.json"), written);
  // --restart trains it again, from step 0.
  const auto restarted = run_attnrank(command + " --restart");
  EXPECT_EQ(restarted.exit_code, 0) << restarted.err;
  EXPECT_NE(restarted.out.find("done: 120 steps"), std::string::npos) << restarted.out;
  expect_same_run_files(reference_run(), dir);
}

TEST(Resume, AnotherRunInTheDirectoryIsRefusedOrReplaced) {
  const fs::path dir = fresh_run_dir("resume", "other");
  ASSERT_EQ(run_attnrank("train " + cli_overrides() + " --quiet --out " + dir.string()).exit_code,
            0);
  const std::string before = read_file(dir / "model.safetensors");
  const auto refused =
      run_attnrank("train " + cli_overrides("model.heads=4") + " --quiet --out " + dir.string());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("holds another run (model.heads: 2 there, model.heads: 4 here); "
                             "pass --restart"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(read_file(dir / "model.safetensors"), before) << "a refused run changed the weights";
  // Replaced with --restart, killed at once: nothing of the old run remains to be
  // read as if it belonged to the new config.
  const auto killed = run_attnrank(
      "train " + cli_overrides("model.heads=4") + " --restart --quiet --out " + dir.string(),
      "ATTNRANK_FAULT_KILL_AT_STEP=5");
  EXPECT_NE(killed.exit_code, 0);
  EXPECT_FALSE(fs::exists(dir / "summary.json"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  const auto eval = run_attnrank("eval --checkpoint " + dir.string());
  EXPECT_NE(eval.exit_code, 0) << "eval of a run without weights must fail: " << eval.out;
}

TEST(Resume, DirectoryHoldingNoRunIsRefused) {
  const fs::path dir = fresh_run_dir("resume", "foreign");
  fs::create_directories(dir);
  std::ofstream(dir / "notes.txt") << "mine\n";
  for (const char* flag : {"", " --restart"}) {
    const auto refused =
        run_attnrank("train " + cli_overrides() + " --quiet --out " + dir.string() + flag);
    EXPECT_EQ(refused.exit_code, 2) << flag;
    EXPECT_NE(refused.err.find("not empty and holds no attnrank run"), std::string::npos)
        << refused.err;
    EXPECT_EQ(read_file(dir / "notes.txt"), "mine\n");
    EXPECT_FALSE(fs::exists(dir / "config.yaml"));
  }
  const auto root = run_attnrank("train " + cli_overrides() + " --quiet --out /");
  EXPECT_EQ(root.exit_code, 2);
  EXPECT_FALSE(fs::exists("/metrics.csv"));
}

TEST(Resume, CorruptCheckpointIsAnErrorThatRestartClears) {
  const fs::path dir = fresh_run_dir("resume", "corrupt");
  const std::string command =
      "train " + cli_overrides("train.checkpoint_every=10") + " --quiet --out " + dir.string();
  run_attnrank(command, "ATTNRANK_FAULT_KILL_AT_STEP=15");
  const fs::path state = dir / "train_state.safetensors";
  ASSERT_TRUE(fs::exists(state));
  fs::resize_file(state, fs::file_size(state) / 2);  // a torn file (never written so)
  const auto broken = run_attnrank(command);
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE(broken.err.find("train_state.safetensors"), std::string::npos) << broken.err;
  // A stray temporary file of an interrupted write is ignored.
  std::ofstream(dir / "train_state.safetensors.tmp") << "torn";
  const auto restarted = run_attnrank(command + " --restart");
  ASSERT_EQ(restarted.exit_code, 0) << restarted.err;
  expect_same_run_files(reference_run("10"), dir);
}

TEST(Resume, CheckpointIntervalValues) {
  auto interval = [](const std::string& text) {
    return parse_config("", {"train.checkpoint_every=" + text}).train.checkpoint_every;
  };
  EXPECT_EQ(interval("500"), (CheckpointInterval{500, 0}));
  EXPECT_EQ(interval("90s"), (CheckpointInterval{0, 90}));
  EXPECT_EQ(interval("10min"), (CheckpointInterval{0, 600}));
  EXPECT_EQ(interval("2h"), (CheckpointInterval{0, 7200}));
  EXPECT_EQ(interval("off"), (CheckpointInterval{0, 0}));
  EXPECT_EQ(parse_config("", {}).train.checkpoint_every, (CheckpointInterval{0, 600}));
  for (const char* bad : {"10 minutes", "-5", "5d", "min", "1.5h", "99999999999999"})
    EXPECT_THROW(interval(bad), ConfigError) << bad;
  for (const char* text : {"500", "90s", "10min", "2h", "off"}) {
    const RunConfig config = parse_config("", {std::string("train.checkpoint_every=") + text});
    EXPECT_EQ(parse_config(to_yaml(config), {}).train.checkpoint_every,
              config.train.checkpoint_every)
        << text;
    EXPECT_NE(to_yaml(config).find(std::string("checkpoint_every: ") + text), std::string::npos);
  }
  const auto bad = run_attnrank("train train.checkpoint_every=soon --out /nonexistent/x");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("train.checkpoint_every: expected steps"), std::string::npos) << bad.err;
}
