// Shared pieces of the sweep tests: fresh temporary directories, a tiny spec, and
// a fake trainer that writes a run directory the way train() does, instantly.
#pragma once
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <string>

#include "attnrank/config_io/config_io.h"
#include "attnrank/experiment/sweep.h"
#include "temp_dirs.h"

namespace attnrank::testing {

inline std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = process_temp_path("sweep_test", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// d = 8 so heads in {1, 2, 4, 8} divide it; three seeds.
inline const char* kSmallSpec = R"(
name: small
base:
  model: {dim: 8, ffn: 16}
  task: {points: 4}
  train: {steps: 50, batch: 8}
grid:
  model.heads: [1, 2, 4]
  train.seed: [0, 1, 2]
)";

// A deterministic stand-in for train(): test MSE = rank / 100 + seed / 1000,
// test_loss = 3 x test MSE, a two-row metrics curve, and summary.json + config.yaml
// like the real thing.
inline TrainSummary fake_summary(const RunConfig& config) {
  TrainSummary summary;
  summary.status = "done";
  summary.test_mse = config.model.rank / 100.0 + static_cast<double>(config.train.seed) / 1000.0;
  summary.trivial_mse = 1.0;
  summary.final_train_loss = summary.test_mse * 1.1;
  summary.steps = config.train.steps;
  summary.wall_seconds = 0.01;
  summary.ms_per_step = 0.2;
  summary.parameters = 1000 + config.model.rank;
  summary.attention_parameters = 100 + config.model.rank;
  summary.threads = config.train.threads;
  // As train() reports them, plus a named metric of the kind text tasks add.
  summary.final_metrics = {{"test_mse", summary.test_mse}, {"test_loss", 3 * summary.test_mse}};
  return summary;
}

inline void write_fake_run_dir(const RunConfig& config, const std::string& dir,
                               const TrainSummary& summary) {
  std::ofstream(dir + "/config.yaml") << to_yaml(config);
  std::ofstream(dir + "/metrics.csv") << "step,train_loss,lr,grad_norm\n"
                                      << "25,0.9,0.01,0.5\n"
                                      << "50," << summary.final_train_loss << ",0.001,0.25\n";
  // A finished run has weights (a sweep recovers a "done" directory only with them).
  if (summary.status == "done") std::ofstream(dir + "/model.safetensors") << "weights";
  std::ofstream summary_file(dir + "/summary.json");
  summary_file << std::setprecision(17) << "{\"status\": \"" << summary.status
               << "\", \"test_mse\": "
               << (std::isfinite(summary.test_mse) ? std::to_string(summary.test_mse) : "null")
               << ", \"trivial_mse\": 1, \"final_train_loss\": " << summary.final_train_loss
               << ", \"steps\": " << summary.steps
               << ", \"wall_seconds\": 0.01, \"ms_per_step\": 0.2"
               << ", \"parameters\": " << summary.parameters
               << ", \"attention_parameters\": " << summary.attention_parameters
               << ", \"threads\": " << summary.threads;
  // Named final metrics at the top level, as train() writes them.
  for (const auto& [name, value] : summary.final_metrics)
    if (name != "test_mse") summary_file << ", \"" << name << "\": " << value;
  summary_file << "}\n";
}

inline TrainSummary fake_train(const RunConfig& config, const std::string& dir) {
  const TrainSummary summary = fake_summary(config);
  write_fake_run_dir(config, dir, summary);
  return summary;
}

}  // namespace attnrank::testing
