// figure.claims: parsing (strict keys, one-line errors) and the verdicts on runs.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/claims.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"

using namespace attnrank;

namespace {

RunRecord run_with(const std::string& overrides_text, double mse,
                   const std::string& status = "done") {
  std::vector<std::string> overrides;
  std::stringstream stream(overrides_text);
  for (std::string item; stream >> item;) overrides.push_back(item);
  const RunConfig config = parse_config("model: {dim: 16}", overrides);
  RunRecord run;
  run.status = status;
  run.config = flat_config(config);
  run.test_mse = mse;
  return run;
}

SweepSpec spec_with_claims(const std::string& claims) {
  return parse_sweep_spec(
      "base: {model: {dim: 16}}\ngrid: {model.heads: [1, 4], train.seed: [0, 1, 2]}\n"
      "figure:\n  kind: curves\n  x: model.heads\n  claims:\n" +
          claims,
      "spec.yaml");
}

const std::string kTwoClaims = R"(    - says: one head beats four
      better: {model.heads: 1}
      worse: {model.heads: 4}
    - says: low lr beats high lr
      better: {train.lr: 1e-3}
      worse: {train.lr: 0.1}
)";

}  // namespace

TEST(FigureClaims, Parse) {
  const SweepSpec spec = spec_with_claims(kTwoClaims);
  ASSERT_EQ(spec.figure.claims.size(), 2u);
  EXPECT_EQ(spec.figure.claims[0].says, "one head beats four");
  ASSERT_EQ(spec.figure.claims[0].better.size(), 1u);
  EXPECT_EQ(spec.figure.claims[0].better[0].first, "model.heads");
  EXPECT_EQ(spec.figure.claims[0].better[0].second, "1");
  EXPECT_EQ(spec.figure.claims[1].worse[0].second, "0.1");
}

TEST(FigureClaims, BadClaimsAreConfigErrorsNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"    - {says: x, better: {model.heads: 1}}\n", "figure.claims[0].worse: missing"},
      {"    - {says: x, better: {model.heads: 1}, worse: {model.heads: 4}, why: y}\n",
       "figure.claims[0].why: unknown key"},
      {"    - {says: x, better: {model.hedas: 1}, worse: {model.heads: 4}}\n",
       "figure.claims[0].better.model.hedas: unknown config key"},
      {"    - {says: x, better: {model.heads: [1, 2]}, worse: {model.heads: 4}}\n",
       "figure.claims[0].better.model.heads: expected a single value"},
      {"    - {says: x, better: {}, worse: {model.heads: 4}}\n",
       "figure.claims[0].better: expected a map"},
      {"    {says: x}\n", "figure.claims: expected a list"},
      {"    []\n", "figure.claims: empty list"},
      {"    - {says: '', better: {model.heads: 1}, worse: {model.heads: 4}}\n",
       "figure.claims[0].says: empty"},
      {"    - {better: {model.heads: 1}, worse: {model.heads: 4}}\n",
       "figure.claims[0].says: missing: the claim in words"},
      {"    - {says: x, better: {model.heads: 1, train.seed: 0}, worse: {model.heads: 4}}\n",
       "figure.claims[0].better.train.seed: a side is every seed of one configuration"},
      {"    - {says: x, better: {model.rank: auto}, worse: {model.heads: 4}}\n",
       "figure.claims[0].better.model.rank: 'auto' selects nothing"},
      {"    - {says: x, better: {model.heads: 1}, worse: lots}\n",
       "figure.claims[0].worse: 'lots': expected a map of config keys to values, or a number"},
      {"    - {says: x, better: {model.heads: 1}, worse: {model.heads: 4}, metric: speed}\n",
       "figure.claims[0].metric: 'speed': expected a final metric"},
      {"    - {says: x, better: {model.heads: 1}, worse: 2, metric: head_angle_gap_deg}\n",
       "figure.claims[0].metric: 'head_angle_gap_deg'"},  // only for heads figures
  };
  for (const auto& [claims, message] : cases) {
    try {
      spec_with_claims(claims);
      ADD_FAILURE() << "accepted: " << claims;
    } catch (const ConfigError& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos)
          << error.what() << "\nexpected: " << message;
    }
  }
}

TEST(FigureClaims, Verdicts) {
  FigureSpec figure = spec_with_claims(kTwoClaims).figure;
  // Heads: 1 is below 4 on average but a seed overlaps (within the spread); lr: 1e-3
  // matches 0.001 as a number (the same runs, so the same verdict).
  std::vector<RunRecord> runs = {
      run_with("model.heads=1 train.lr=0.001 train.seed=0", 0.10),
      run_with("model.heads=1 train.lr=0.001 train.seed=1", 0.12),
      run_with("model.heads=4 train.lr=0.1 train.seed=0", 0.50),
      run_with("model.heads=4 train.lr=0.1 train.seed=1", 0.11),
      run_with("model.heads=1 train.lr=0.001 train.seed=2", 0.01, "failed"),
  };
  auto checks = check_claims(figure, runs);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].better.runs(), 2);  // the failed run is not counted
  EXPECT_EQ(checks[0].worse.runs(), 2);
  EXPECT_NEAR(checks[0].better.stats.mean, 0.11, 1e-12);
  EXPECT_EQ(checks[0].metric, "test_mse");
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kWithinSpread);  // 0.11 < 0.12 overlaps
  EXPECT_EQ(checks[1].verdict, ClaimVerdict::kWithinSpread);

  runs[3].test_mse = 0.40;  // now every worse seed is above every better seed
  checks = check_claims(figure, runs);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kHolds);

  // A diverged seed of the worse side counts as +infinity: still holds.
  runs.push_back(run_with("model.heads=4 train.lr=0.1 train.seed=2", NAN, "diverged"));
  checks = check_claims(figure, runs);
  EXPECT_EQ(checks[0].worse.diverged, 1);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kHolds);
  // A diverged seed of the better side where the worse side has none: does not hold.
  runs.back() = run_with("model.heads=1 train.lr=0.001 train.seed=2", NAN, "diverged");
  checks = check_claims(figure, runs);
  EXPECT_EQ(checks[0].better.diverged, 1);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kContradicted);
  EXPECT_NE(claims_table(checks).find("1 diverged"), std::string::npos);
  runs.pop_back();

  runs[2].test_mse = 0.05;  // worse mean 0.05 < better mean 0.11: contradicted
  runs[3].test_mse = 0.06;
  checks = check_claims(figure, runs);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kContradicted);

  // One seed a side: the means' order, never "beyond the spread".
  checks = check_claims(figure, {runs[0], run_with("model.heads=4 train.lr=0.1", 0.9)});
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kWithinSpread);

  checks = check_claims(figure, {runs[0]});
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kNotRun);
  const std::string table = claims_table(checks);
  EXPECT_NE(table.find("| one head beats four | test_mse | model.heads = 1 | model.heads = 4 |"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("no runs"), std::string::npos);
  EXPECT_NE(table.find("1 seed)"), std::string::npos) << table;
  EXPECT_EQ(claims_summary(checks),
            "claims: 0 of 2 hold beyond the seeds' spread (0 within the spread, 0 do not hold, 2 "
            "not run)");
  const std::string csv = claims_csv(checks);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "claim,metric,better,worse,better_mean,better_std,better_min,better_max,better_seeds,"
            "better_diverged,worse_mean,worse_std,worse_min,worse_max,worse_seeds,worse_diverged,"
            "verdict");
  EXPECT_NE(csv.find("one head beats four,test_mse,model.heads = 1,model.heads = 4,0.1,,0.1,0.1,"
                     "1,0,,,,,0,0,not run"),
            std::string::npos)
      << csv;
}

TEST(FigureClaims, BoundAndOwnMetric) {
  const SweepSpec spec = spec_with_claims(R"(    - says: "one head: loss below 0.2"
      better: {model.heads: 1}
      worse: 0.2
      metric: final_train_loss
)");
  const FigureClaim& claim = spec.figure.claims[0];
  EXPECT_TRUE(claim.worse.empty());
  EXPECT_EQ(claim.worse_than, 0.2);
  std::vector<RunRecord> runs = {run_with("model.heads=1 train.seed=0", 0.9),
                                 run_with("model.heads=1 train.seed=1", 0.9)};
  runs[0].final_train_loss = 0.1;
  runs[1].final_train_loss = 0.15;
  auto checks = check_claims(spec.figure, runs);
  EXPECT_EQ(checks[0].metric, "final_train_loss");
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kHolds);  // by its metric, not test MSE
  runs[1].final_train_loss = 0.25;                     // mean 0.175 < 0.2, a seed above
  EXPECT_EQ(check_claims(spec.figure, runs)[0].verdict, ClaimVerdict::kWithinSpread);
  runs[0].final_train_loss = 0.3;
  EXPECT_EQ(check_claims(spec.figure, runs)[0].verdict, ClaimVerdict::kContradicted);

  // Heads figures may claim on the heads' angle gap, filled in from the heads.
  const SweepSpec heads = parse_sweep_spec(R"(grid: {model.heads: [1], train.seed: [0, 1]}
figure:
  kind: heads
  x: model.heads
  claims:
    - {says: near -I, better: {model.heads: 1}, worse: 1, metric: head_angle_gap_deg}
)",
                                           "heads.yaml");
  std::vector<RunRecord> trained = {run_with("model.heads=1 train.seed=0", 0.1),
                                    run_with("model.heads=1 train.seed=1", 0.1)};
  trained[0].id = "a";
  trained[1].id = "b";
  std::vector<HeadPoint> points(3);
  points[0].run_id = "a";
  points[0].angle_to_identity = 179.8;
  points[1].run_id = "a";
  points[1].angle_to_identity = 179.4;  // run a: mean 179.6, gap 0.4
  points[2].run_id = "b";
  points[2].angle_to_identity = 178.5;  // run b: gap 1.5
  add_head_metrics(trained, points);
  EXPECT_NEAR(trained[0].metric(kHeadAngleGap), 0.4, 1e-9);
  checks = check_claims(heads.figure, trained);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kWithinSpread);  // mean 0.95 < 1, b above
}

TEST(FigureClaims, SelectionsAreCheckedAgainstTheGrid) {
  const auto expect_error = [](const std::string& claims, const std::string& message) {
    const SweepSpec spec = spec_with_claims(claims);
    try {
      check_claim_selections(spec.figure, expand_sweep(spec));
      ADD_FAILURE() << "accepted: " << claims;
    } catch (const ConfigError& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos)
          << error.what() << "\nexpected: " << message;
    }
  };
  // The grid: model.heads in {1, 4} x three seeds (spec_with_claims).
  expect_error("    - {says: x, better: {model.heads: four}, worse: {model.heads: 4}}\n",
               "figure.claims[0].better.model.heads: no run of the grid has 'four' (its runs "
               "have 1, 4)");
  expect_error("    - {says: x, better: {model.heads: 1}, worse: {model.heads: 3}}\n",
               "figure.claims[0].worse.model.heads: no run of the grid has '3'");
  expect_error("    - {says: x, better: {model.dim: 16}, worse: {model.heads: 4}}\n",
               "figure.claims[0].better: selects 2 configurations, not one (they differ in "
               "model.heads, model.rank, model.value_rank): name those keys too");
  expect_error("    - {says: x, better: {model.heads: 1}, worse: {model.heads: 1.0}}\n",
               "figure.claims[0]: better and worse select the same configuration");
  const SweepSpec good =
      spec_with_claims("    - {says: x, better: {model.heads: 1.0}, worse: {model.heads: 4}}\n");
  EXPECT_NO_THROW(check_claim_selections(good.figure, expand_sweep(good)));
}

TEST(FigureClaims, MediumPresetsClaimsSelectOneConfigurationOfAllSeeds) {
  for (const auto& figure : reproduce_figures()) {
    SCOPED_TRACE(figure);
    const SweepSpec spec = load_sweep_spec(
        find_preset(figure, "medium", std::string(ATTNRANK_SOURCE_DIR) + "/configs/reproduce"));
    EXPECT_FALSE(spec.figure.claims.empty());
    const auto planned = expand_sweep(spec);
    EXPECT_NO_THROW(check_claim_selections(spec.figure, planned));
    std::vector<RunRecord> runs;
    for (const PlannedRun& run : planned) {
      RunRecord record;
      record.status = "done";
      record.config = flat_config(run.config);
      record.test_mse = 1.0;
      record.final_metrics[spec.figure.metric] = 1.0;
      record.final_metrics[kHeadAngleGap] = 1.0;
      runs.push_back(record);
    }
    for (const ClaimCheck& check : check_claims(spec.figure, runs)) {
      EXPECT_GE(check.better.runs(), 3) << check.claim.says;  // 3 or 4 seeds a configuration
      if (!check.claim.worse.empty()) {
        EXPECT_EQ(check.worse.runs(), check.better.runs());
      }
    }
  }
}
