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
      "grid: {model.heads: [1, 4], train.seed: [0, 1, 2]}\n"
      "figure:\n  kind: curves\n  x: model.heads\n  claims:\n" +
          claims,
      "spec.yaml");
}

const char* kTwoClaims = R"(    - says: one head beats four
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
      {"    - {says: x, better: {model.heads: 1}, worse: {model.heads: 1}}\n",
       "figure.claims[0]: better and worse select the same configuration"},
      {"    {says: x}\n", "figure.claims: expected a list"},
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
  // Heads: 1 is below 4 at every seed (holds); lr: 1e-3 matches 0.001 as a number and
  // its mean is lower, but a seed overlaps (within the spread).
  std::vector<RunRecord> runs = {
      run_with("model.heads=1 train.lr=0.001 train.seed=0", 0.10),
      run_with("model.heads=1 train.lr=0.001 train.seed=1", 0.12),
      run_with("model.heads=4 train.lr=0.1 train.seed=0", 0.50),
      run_with("model.heads=4 train.lr=0.1 train.seed=1", 0.11),
      run_with("model.heads=4 train.lr=0.1 train.seed=2", NAN, "diverged"),
      run_with("model.heads=1 train.lr=0.001 train.seed=2", 0.01, "failed"),
  };
  auto checks = check_claims(figure, runs);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].better.count, 2);  // the failed run is not counted
  EXPECT_EQ(checks[0].worse.count, 2);   // nor the diverged one
  EXPECT_NEAR(checks[0].better.mean, 0.11, 1e-12);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kWithinSpread);  // 0.11 < 0.12 overlaps
  EXPECT_EQ(checks[1].verdict, ClaimVerdict::kWithinSpread);  // same runs, by lr

  runs[3].test_mse = 0.40;  // now every worse seed is above every better seed
  checks = check_claims(figure, runs);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kHolds);

  runs[2].test_mse = 0.05;  // worse mean 0.225 > 0.11 but ranges overlap
  runs[3].test_mse = 0.06;  // worse mean 0.055 < better 0.11: contradicted
  checks = check_claims(figure, runs);
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kContradicted);

  // One seed a side: the means' order, never "beyond the spread".
  checks = check_claims(figure, {runs[0], run_with("model.heads=4 train.lr=0.1", 0.9)});
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kWithinSpread);

  checks = check_claims(figure, {runs[0]});
  EXPECT_EQ(checks[0].verdict, ClaimVerdict::kNotRun);
  const std::string table = claims_table(checks);
  EXPECT_NE(table.find("| one head beats four | model.heads = 1 | model.heads = 4 |"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("no runs"), std::string::npos);
  EXPECT_EQ(claims_summary(checks),
            "claims: 0 of 2 hold beyond the seeds' spread (0 within the spread, 0 do not hold, 2 "
            "not run)");
}

TEST(FigureClaims, MediumPresetsClaimsSelectRuns) {
  // Every claim of a medium preset selects runs of its own grid on both sides.
  for (const auto& figure : reproduce_figures()) {
    SCOPED_TRACE(figure);
    const SweepSpec spec = load_sweep_spec(
        find_preset(figure, "medium", std::string(ATTNRANK_SOURCE_DIR) + "/configs/reproduce"));
    std::vector<RunRecord> runs;
    for (const PlannedRun& planned : expand_sweep(spec)) {
      RunRecord run;
      run.status = "done";
      run.config = flat_config(planned.config);
      run.test_mse = 1.0;
      run.final_metrics[spec.figure.metric] = 1.0;
      runs.push_back(run);
    }
    if (spec.figure.kind == FigureKind::kCurves) {
      EXPECT_FALSE(spec.figure.claims.empty());
    }
    for (const ClaimCheck& check : check_claims(spec.figure, runs)) {
      EXPECT_GE(check.better.count, 2) << check.claim.says;
      EXPECT_GE(check.worse.count, 2) << check.claim.says;
    }
  }
}
