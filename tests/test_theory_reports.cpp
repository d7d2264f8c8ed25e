// Each `attnrank theory` experiment runs end to end on a tiny configuration and writes its
// data files with the expected content.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attnrank/core/error.h"
#include "attnrank/theory/reports.h"

using namespace attnrank;

namespace {

class TheoryReports : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("attnrank_theory_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  nlohmann::json read_json(const std::string& name) const {
    std::ifstream in(std::filesystem::path(dir_) / name);
    EXPECT_TRUE(in.good()) << name;
    return nlohmann::json::parse(in);
  }
  bool exists(const std::string& name) const {
    return std::filesystem::exists(std::filesystem::path(dir_) / name);
  }
  std::string dir_;
  std::ostringstream log_;
};

}  // namespace

TEST_F(TheoryReports, Fact1) {
  Fact1Options o;
  o.dims = {4};
  o.points = {3};
  o.betas = {0, 1, 100};
  o.samples = 256;
  run_fact1(o, dir_, log_);
  const nlohmann::json j = read_json("fact1.json");
  ASSERT_EQ(j["series"].size(), 2u);  // nearest, farthest
  for (const auto& s : j["series"]) {
    EXPECT_EQ(s["hardmax_max_mse_beta_positive"].get<double>(), 0.0);
    EXPECT_GT(s["softmax_mse"][1].get<double>(), s["softmax_mse"][2].get<double>());
  }
  EXPECT_TRUE(exists("fact1.csv"));
  EXPECT_TRUE(exists("fact1.gp"));
}

TEST_F(TheoryReports, RandomFeatures) {
  RandomFeaturesOptions o;
  o.dims = {4};
  o.max_heads = 24;
  o.trials = 2;
  o.check_heads = 4;
  o.check_samples = 4000;
  run_random_features(o, dir_, log_);
  const nlohmann::json j = read_json("random_features.json");
  const auto& curve = j["dims"][0]["curve"];
  ASSERT_EQ(curve.size(), 6u);  // 1 2 4 8 16 24
  EXPECT_EQ(curve.back()["heads"].get<int>(), 24);
  EXPECT_LT(curve.back()["mean"].get<double>(), curve.front()["mean"].get<double>());
  EXPECT_TRUE(j["dims"][0]["monte_carlo_check"]["samples"].get<int>() == 4000);
  // The CG solver gives the same curve.
  o.solver = "cg";
  o.check_heads = 0;
  const std::string first = dir_;
  dir_ += "_cg";
  run_random_features(o, dir_, log_);
  const nlohmann::json cg = read_json("random_features.json");
  for (size_t i = 0; i < curve.size(); ++i)
    EXPECT_NEAR(cg["dims"][0]["curve"][i]["mean"].get<double>(), curve[i]["mean"].get<double>(),
                1e-7);
  std::filesystem::remove_all(dir_);
  dir_ = first;
}

TEST_F(TheoryReports, Gegenbauer) {
  GegenbauerOptions o;
  o.dims = {3, 5};
  o.max_degree = 40;
  o.function = "relu";
  run_gegenbauer(o, dir_, log_);
  const nlohmann::json j = read_json("gegenbauer.json");
  ASSERT_EQ(j["dims"].size(), 2u);
  EXPECT_LT(j["dims"][0]["sign_closed_form_vs_quadrature_max_difference"].get<double>(), 1e-12);
  EXPECT_TRUE(exists("gegenbauer_target.csv"));
  EXPECT_TRUE(exists("gegenbauer_relu.csv"));
  o.function = "cosine";
  EXPECT_THROW(run_gegenbauer(o, dir_, log_), ConfigError);
}

TEST_F(TheoryReports, MajorityVote) {
  MajorityVoteOptions o;
  o.dims = {4};
  o.heads = {1, 5};
  o.targets = {0.3};
  o.draws = 2;
  o.samples = 1000;
  o.one_layer_max_heads = 5;
  run_majority_vote(o, dir_, log_);
  const nlohmann::json j = read_json("majority_vote.json");
  const auto& points = j["dims"][0]["points"];
  ASSERT_EQ(points.size(), 2u);
  EXPECT_LT(points[1]["expected_mse"].get<double>(), points[0]["expected_mse"].get<double>());
  EXPECT_FALSE(points[1]["one_layer_mse"].is_null());
  EXPECT_EQ(j["heads_needed"].size(), 4u);  // d = 4, 128, 256, 512
}

TEST_F(TheoryReports, Bottleneck) {
  BottleneckOptions o;
  o.tokens = 3;
  o.dim = 5;
  o.targets = 2;
  o.restarts = 2;
  o.iterations = 500;
  run_bottleneck(o, dir_, log_);
  const nlohmann::json j = read_json("bottleneck.json");
  const auto& sizes = j["head_sizes"];
  ASSERT_EQ(sizes.size(), 5u);  // d_p = 1 .. n + 2
  EXPECT_TRUE(sizes[0]["exact_max_double"].is_null());
  for (double e : sizes[2]["exact_max_double"].get<std::vector<double>>()) EXPECT_LT(e, 1e-12);
  for (double e : sizes[2]["exact_max_float"].get<std::vector<double>>()) EXPECT_LT(e, 1e-6);
  o.dim = 2;
  EXPECT_THROW(run_bottleneck(o, dir_, log_), ConfigError);
}
