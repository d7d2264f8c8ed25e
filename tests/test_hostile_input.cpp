// Hostile input and faults through the binary (issue 15; docs/reliability.md):
// every bad input is one "attnrank: error:" line and exit 2, a failed write is an
// error, not exit 0, and a refused command leaves the file system as it was.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "attnrank/core/safetensors.h"
#include "cli_runner.h"
#include "temp_dirs.h"

using attnrank::testing::CommandResult;
using attnrank::testing::count_lines;
using attnrank::testing::run_attnrank;
using attnrank::testing::slurp;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = attnrank::testing::process_temp_path("hostile", name);
  fs::remove_all(dir);
  return dir;
}

const std::string kTiny = std::string("--config ") + ATTNRANK_SOURCE_DIR + "/configs/tiny.yaml";

// Exit code 2 and one line "attnrank: error: ..." holding `needle`.
void expect_bad_input(const CommandResult& result, const std::string& needle) {
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_EQ(result.err.rfind("attnrank: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
}

// A trained tiny run (train.steps=5) in a fresh directory.
fs::path trained_run(const std::string& name) {
  const fs::path dir = fresh_dir(name);
  const auto result = run_attnrank("train " + kTiny + " train.steps=5 --out " + dir.string());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return dir;
}

// Runs `command` through sh with the attnrank binary as $B.
CommandResult run_shell(const std::string& command) {
  const fs::path out = fresh_dir("shell.out"), err = fresh_dir("shell.err");
  const std::string line = "B=" + std::string(ATTNRANK_BINARY) + "; " + command + " >" +
                           out.string() + " 2>" + err.string() + " </dev/null";
  const int status = std::system(("sh -c '" + line + "'").c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = slurp(out);
  result.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return result;
}

}  // namespace

TEST(HostileInput, DeeplyNestedYamlConfigIsAnError) {
  const fs::path file = fresh_dir("nested").string() + ".yaml";
  std::ofstream(file) << "model:\n  dim: " << std::string(100000, '[') << "\n";
  const fs::path out = fresh_dir("nested_out");
  expect_bad_input(run_attnrank("train --config " + file.string() + " --out " + out.string()),
                   "invalid YAML");
  expect_bad_input(run_attnrank("train " + kTiny + " model.dim=" + std::string(5000, '[') +
                                " --out " + out.string()),
                   "model.dim");
  EXPECT_FALSE(fs::exists(out));
}

TEST(HostileInput, FailedWritesAreErrors) {
  const fs::path run = trained_run("full");
  for (const std::string& command :
       {"eval --checkpoint " + run.string(), "inspect " + run.string(),
        "inspect " + run.string() + " --json -", std::string("info")}) {
    const auto result = run_shell("(exec $B " + command + " >/dev/full)");
    EXPECT_EQ(result.exit_code, 1) << command << ": " << result.err;
    EXPECT_EQ(result.err.rfind("attnrank: error: ", 0), 0u) << command << ": " << result.err;
  }
  const auto json = run_attnrank("inspect " + run.string() + " --json /dev/full");
  EXPECT_EQ(json.exit_code, 1) << json.err;
  EXPECT_NE(json.err.find("cannot write /dev/full"), std::string::npos) << json.err;
  EXPECT_TRUE(fs::exists("/dev/full")) << "the device is still there";
}

// A disk that fills during a run, simulated with a file size limit (ulimit -f,
// SIGXFSZ ignored so the write fails with EFBIG instead of killing the process):
// metrics.csv cannot grow, and the run ends with an error instead of "done".
TEST(HostileInput, DiskFullDuringTrainingIsAnError) {
  const fs::path run = fresh_dir("fsize");
  const auto result = run_shell("trap \"\" XFSZ; ulimit -f 8; exec $B train " + kTiny +
                                " train.steps=2000 train.log_every=1 --out " + run.string());
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("cannot write"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("metrics.csv: "), std::string::npos) << result.err;
  EXPECT_EQ(result.out.find("done:"), std::string::npos) << result.out;
  EXPECT_FALSE(fs::exists(run / "summary.json"));
}

TEST(HostileInput, EditedConfigThatDisagreesWithTheWeightsIsRefused) {
  const fs::path run = trained_run("edited");
  std::string config = slurp(run / "config.yaml");
  const size_t at = config.find("residual: true");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, 14, "residual: false");
  std::ofstream(run / "config.yaml") << config;
  expect_bad_input(run_attnrank("eval --checkpoint " + run.string()), "does not match");
  expect_bad_input(run_attnrank("inspect " + run.string()), "model.residual: false");
}

TEST(HostileInput, NonFiniteWeightsAreAnError) {
  const fs::path run = trained_run("nan");
  const std::string weights = (run / "model.safetensors").string();
  attnrank::SafeTensorFile file = attnrank::read_safetensors(weights);
  attnrank::SafeTensor& tensor = file.tensors.begin()->second;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(tensor.bytes.data(), &nan, sizeof nan);
  attnrank::write_safetensors(weights, file);
  expect_bad_input(run_attnrank("eval --checkpoint " + run.string()), "holds NaN");
  expect_bad_input(run_attnrank("inspect " + run.string()), "holds NaN");
}

TEST(HostileInput, CorruptCheckpointExitsTwo) {
  const fs::path run = trained_run("corrupt");
  fs::resize_file(run / "model.safetensors", fs::file_size(run / "model.safetensors") - 7);
  expect_bad_input(run_attnrank("eval --checkpoint " + run.string()), "model.safetensors");
  expect_bad_input(run_attnrank("inspect " + run.string()), "model.safetensors");
}

TEST(HostileInput, UnboundedFilesAreRefused) {
  const fs::path out = fresh_dir("zero_out");
  expect_bad_input(run_attnrank("train --config /dev/zero --out " + out.string()),
                   "larger than 16 MiB");
  EXPECT_FALSE(fs::exists(out));
  const fs::path run = trained_run("zero");
  fs::remove(run / "model.safetensors");
  fs::create_symlink("/dev/zero", run / "model.safetensors");
  expect_bad_input(run_attnrank("eval --checkpoint " + run.string()), "not a regular file");
}

TEST(HostileInput, RunsThatCannotFitAreRefusedBeforeAnythingIsCreated) {
  const fs::path out = fresh_dir("memory");
  // Too many rows for one batch: a config error, not std::bad_alloc.
  expect_bad_input(run_attnrank("train " + kTiny + " train.batch=2000000000 --out " + out.string()),
                   "train.batch");
  // Terabytes of parameters, whatever this machine has.
  expect_bad_input(
      run_attnrank("train " + kTiny + " model.dim=262144 model.ffn=262144 --out " + out.string()),
      "MiB of memory, but only");
  // A budget set from outside (ATTNRANK_MEMORY_MB) binds like a cgroup limit.
  const auto limited = run_shell("export ATTNRANK_MEMORY_MB=0.01; exec $B train " + kTiny +
                                 " --out " + out.string());
  expect_bad_input(limited, "available (ATTNRANK_MEMORY_MB)");
  EXPECT_FALSE(fs::exists(out));
  expect_bad_input(
      run_attnrank("train " + kTiny + " task.name=icl-linear task.features=2147483647 --out " +
                   out.string()),
      "task.features");
  expect_bad_input(run_attnrank("train " + kTiny + " train.threads=100 --out " + out.string()),
                   "train.threads: 100 is more than the 64");
  EXPECT_FALSE(fs::exists(out));
}

// Under ulimit -v, OpenBLAS retried its per-thread mmap forever with many threads
// (timeout 120 turns a regression into a failure, not a hung suite).
TEST(HostileInput, ThreadsThatCannotFitTheAddressSpaceAreRefused) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of shadow memory at start-up, which no "
                  "binary gets under ulimit -v; the release suite runs this test";
#endif
  const fs::path out = fresh_dir("threads_as");
  const auto result = run_shell("ulimit -v 3000000; exec timeout 120 $B train " + kTiny +
                                " train.threads=64 --out " + out.string());
  expect_bad_input(result, "train.threads: 64 threads need about");
  EXPECT_FALSE(fs::exists(out));
}

TEST(HostileInput, TheoryArgumentsAreCheckedBeforeAnythingIsCreated) {
  const fs::path out = fresh_dir("theory");
  expect_bad_input(run_attnrank("theory fact1 --dims 0 --out " + out.string()), "--dims");
  expect_bad_input(run_attnrank("theory fact1 --betas nan --out " + out.string()), "--betas");
  expect_bad_input(run_attnrank("theory fact1 --points 1 --out " + out.string()), "--points");
  expect_bad_input(run_attnrank("theory random-features --memory-gb -1 --out " + out.string()),
                   "--memory-gb");
  EXPECT_FALSE(fs::exists(out));
}

TEST(HostileInput, SmallerOnes) {
  const fs::path out = fresh_dir("small");
  // A 10 MB value is not echoed into a 10 MB error line.
  const fs::path big = fresh_dir("big").string() + ".yaml";
  std::ofstream(big) << "model:\n  dim: " << std::string(10 << 20, '7') << "\n";
  const auto huge = run_attnrank("train --config " + big.string() + " --out " + out.string());
  expect_bad_input(huge, "out of range");
  EXPECT_LT(huge.err.size(), 1000u);
  // An explicit string tag is a string, even when it looks like a number.
  expect_bad_input(run_attnrank("train " + kTiny + " 'model.dim=!!str 16' --out " + out.string()),
                   "model.dim");
  // CLI11's own errors: one line with our prefix.
  expect_bad_input(run_attnrank("train --out " + out.string() + " --bogus"), "--bogus");
  expect_bad_input(run_attnrank("eval"), "--checkpoint");
  EXPECT_FALSE(fs::exists(out));
}
