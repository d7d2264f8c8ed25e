// The `attnrank theory NAME` experiments: each computes its numbers, writes them to
// OUT/NAME.json and CSV files, renders OUT/NAME*.{png,svg} with gnuplot (the .gp scripts
// stay next to the data), and prints a short table to `log`. docs/theory.md explains what
// each one checks and how to read its figure.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace attnrank {

struct Fact1Options {
  std::vector<int> dims = {8, 64};
  std::vector<int> points = {2, 16};
  std::vector<double> betas = {0.0, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000};
  int64_t samples = 8192;
  uint64_t seed = 0;
};
void run_fact1(const Fact1Options& options, const std::string& out_dir, std::ostream& log);

struct RandomFeaturesOptions {
  std::vector<int> dims = {8, 16, 32, 64};
  int max_heads = 16384;
  int trials = 3;
  uint64_t seed = 0;
  std::string directions = "independent";  // independent | tied | authors | authors-normalised
  std::string solver = "auto";             // auto | cholesky | cg
  double memory_gb = 3.0;                  // auto: Cholesky while the dense matrix fits
  double tolerance = 1e-7;                 // bound on the truncation error of each b_h
  double cg_tolerance = 1e-8;
  int cg_max_iterations = 3000;
  int check_heads = 64;  // Monte-Carlo cross-check at this H (0: skip)
  int64_t check_samples = 200000;
};
void run_random_features(const RandomFeaturesOptions& options, const std::string& out_dir,
                         std::ostream& log);

struct GegenbauerOptions {
  std::vector<int> dims = {3, 8, 16, 32, 64};
  int max_degree = 2047;
  std::string function = "sign";  // sign | asin | relu | abs
};
void run_gegenbauer(const GegenbauerOptions& options, const std::string& out_dir,
                    std::ostream& log);

struct MajorityVoteOptions {
  std::vector<int> dims = {8, 16, 32, 64};
  std::vector<int> heads = {1, 3, 9, 33, 129, 513, 2049, 8193};
  std::vector<double> targets = {0.2, 0.1, 0.05};
  int draws = 4;                   // independent voter draws per point
  int64_t samples = 8192;          // test samples per draw
  int one_layer_max_heads = 4096;  // one-layer comparison (tied heads, optimal weights); 0: skip
  uint64_t seed = 0;
};
void run_majority_vote(const MajorityVoteOptions& options, const std::string& out_dir,
                       std::ostream& log);

struct BottleneckOptions {
  int tokens = 8;
  int dim = 16;
  int targets = 5;
  int restarts = 4;
  int iterations = 3000;
  uint64_t seed = 0;
};
void run_bottleneck(const BottleneckOptions& options, const std::string& out_dir,
                    std::ostream& log);

}  // namespace attnrank
