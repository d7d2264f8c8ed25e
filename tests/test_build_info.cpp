// `attnrank info`, `--version`, ATTNRANK_ISA and the ISA in summary.json, through
// the binary; training under every runnable kernel variant (bit-identical reruns
// per ISA, rounding-level differences across ISAs).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "attnrank/kernels/kernels.h"
#include "cli_runner.h"
#include "test_files.h"

using attnrank::testing::run_attnrank;
using attnrank::testing::slurp;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string("--config ") + ATTNRANK_SOURCE_DIR + "/configs/tiny.yaml";

// Runs `arguments` with ATTNRANK_ISA set to `isa`.
attnrank::testing::CommandResult run_with_isa(const std::string& isa,
                                              const std::string& arguments) {
  setenv("ATTNRANK_ISA", isa.c_str(), 1);
  auto result = run_attnrank(arguments);
  unsetenv("ATTNRANK_ISA");
  return result;
}

}  // namespace

TEST(BuildInfoCli, InfoNamesEveryField) {
  const auto result = run_attnrank("info");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const char* key : {"version: ", "commit: ", "compiler: ", "build: ", "cpu: ", "kernels: ",
                          "kernel variants: ", "blas: OpenBLAS", "blas threads: ", "threads: "})
    EXPECT_NE(("\n" + result.out).find(std::string("\n") + key), std::string::npos)
        << key << result.out;
  EXPECT_NE(result.out.find("kernels: " + attnrank::kernels::active_isa() + "\n"),
            std::string::npos)
      << result.out;
  const auto json = nlohmann::json::parse(run_attnrank("info --json").out);
  EXPECT_EQ(json["kernels"], attnrank::kernels::active_isa());
  EXPECT_GE(json["threads"].get<int>(), 1);
}

TEST(BuildInfoCli, VersionLineNamesCommitCompilerAndIsa) {
  const auto result = run_attnrank("--version");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string first = result.out.substr(0, result.out.find('\n'));
  EXPECT_EQ(first.rfind("attnrank 0.1.0 (commit ", 0), 0u) << first;
  EXPECT_NE(first.find(", kernels " + attnrank::kernels::active_isa() + ")"), std::string::npos)
      << first;
}

TEST(BuildInfoCli, IsaOverrideIsHonouredOrRefused) {
  const auto variants = attnrank::kernels::runnable_variants<float>();
  const std::string baseline = variants.back()->isa;
  const auto chosen = run_with_isa(baseline, "info");
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_NE(chosen.out.find("kernels: " + baseline + "\n"), std::string::npos) << chosen.out;

  const auto unknown = run_with_isa("avx9000", "info");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("ATTNRANK_ISA=avx9000: not a kernel variant of this build"),
            std::string::npos)
      << unknown.err;
  EXPECT_EQ(attnrank::testing::count_lines(unknown.err), 1);
  for (const auto& variant : attnrank::kernels::built_variants()) {
    if (variant.runnable) continue;
    const auto refused = run_with_isa(variant.isa, "info");
    EXPECT_EQ(refused.exit_code, 2) << variant.isa;
    EXPECT_NE(refused.err.find("this CPU cannot run"), std::string::npos) << refused.err;
  }
}

TEST(BuildInfoCli, EveryVariantTrainsReproduciblyAndAgreesToRounding) {
  double reference_mse = NAN;
  for (const auto* table : attnrank::kernels::runnable_variants<float>()) {
    const std::string isa = table->isa;
    std::string first_metrics;
    for (int repeat = 0; repeat < 2; ++repeat) {
      const fs::path dir = attnrank::testing::fresh_run_dir("isa", isa + std::to_string(repeat));
      const auto result =
          run_with_isa(isa, "train " + kTiny + " train.threads=1 --out " + dir.string());
      ASSERT_EQ(result.exit_code, 0) << isa << result.err;
      const auto summary = nlohmann::json::parse(slurp(dir / "summary.json"));
      EXPECT_EQ(summary["kernel_isa"], isa);
      const std::string metrics = slurp(dir / "metrics.csv");
      if (repeat == 0) {
        first_metrics = metrics;
        const double mse = summary["test_mse"].get<double>();
        if (std::isnan(reference_mse)) reference_mse = mse;
        // 200 steps of float training: rounding differences grow, but stay small.
        EXPECT_NEAR(mse, reference_mse, 1e-3 * std::max(1.0, reference_mse)) << isa;
      } else {
        EXPECT_EQ(metrics, first_metrics) << isa
                                          << ": same ISA, seed and threads must be "
                                             "bit-identical";
      }
      fs::remove_all(dir);
    }
  }
}

TEST(BuildInfoCli, WriteErrorsOnStandardOutputAreErrors) {
  for (const char* arguments : {"info", "info --json", "--version", "--help"}) {
    const std::string command =
        std::string(ATTNRANK_BINARY) + " " + arguments + " >/dev/full 2>/dev/null";
    const int status = std::system(command.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << arguments;
    EXPECT_EQ(WEXITSTATUS(status), 1) << arguments;
  }
}

TEST(BuildInfoCli, ThreadsFollowTheAffinityMask) {
  const auto result = run_attnrank("info --json");
  ASSERT_EQ(result.exit_code, 0);
  // taskset is in util-linux (essential on Debian).
  const fs::path pinned_file =
      fs::temp_directory_path() / ("attnrank_pinned_info_" + std::to_string(::getpid()) + ".json");
  const auto pinned = std::system(
      ("taskset -c 0 " + std::string(ATTNRANK_BINARY) + " info --json > " + pinned_file.string())
          .c_str());
  ASSERT_EQ(pinned, 0);
  const auto json = nlohmann::json::parse(slurp(pinned_file));
  EXPECT_EQ(json["threads"], 1);
  EXPECT_EQ(json["blas_threads"], 1);
  fs::remove(pinned_file);
}
