// Sweep specs: grid expansion, derived keys, run identity, shards, presets, and
// every kind of bad spec (one ConfigError line naming the key).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/experiment/sweep.h"
#include "sweep_fixtures.h"

using namespace attnrank;
using attnrank::testing::kSmallSpec;

namespace {

std::vector<std::string> ids_of(const std::vector<PlannedRun>& runs) {
  std::vector<std::string> ids;
  for (const auto& run : runs) ids.push_back(run.id);
  return ids;
}

void expect_spec_error(const std::string& yaml, const std::string& needle) {
  try {
    expand_sweep(parse_sweep_spec(yaml, "spec.yaml"));
    ADD_FAILURE() << "accepted:\n" << yaml;
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace

TEST(SweepGrid, CartesianProductFirstKeyOutermost) {
  const auto runs = expand_sweep(parse_sweep_spec(kSmallSpec, "spec.yaml"));
  ASSERT_EQ(runs.size(), 9u);
  EXPECT_EQ(runs[0].label, "model.heads=1 train.seed=0");
  EXPECT_EQ(runs[1].label, "model.heads=1 train.seed=1");
  EXPECT_EQ(runs[3].label, "model.heads=2 train.seed=0");
  EXPECT_EQ(runs[8].label, "model.heads=4 train.seed=2");
  // Base values and derived defaults are resolved in every run.
  EXPECT_EQ(runs[3].config.model.dim, 8);
  EXPECT_EQ(runs[3].config.model.heads, 2);
  EXPECT_EQ(runs[3].config.model.rank, 4);
  EXPECT_EQ(runs[8].config.train.seed, 2u);
  EXPECT_EQ(runs[8].config.train.steps, 50);
  const auto ids = ids_of(runs);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 9u);
}

TEST(SweepGrid, IdentityIgnoresThreadsAndHowAValueWasWritten) {
  RunConfig a = parse_config("model: {dim: 16, heads: 4}", {});
  RunConfig b = parse_config("model: {dim: 16, heads: 4, rank: 4, norm: sphere}", {});
  EXPECT_EQ(run_identity(a), run_identity(b)) << "auto rank = explicit d/H; default norm";
  b.train.threads = 7;
  EXPECT_EQ(run_identity(a), run_identity(b)) << "threads do not change results";
  b.train.seed = 1;
  EXPECT_NE(run_identity(a), run_identity(b));
  RunConfig c = a;
  c.train.lr = 0.005;
  EXPECT_NE(run_identity(a), run_identity(c));
  EXPECT_EQ(run_identity(a).size(), 16u);
  EXPECT_EQ(run_identity(a).find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(SweepGrid, CanonicalConfigListsOnlyNonDefaultKeysSorted) {
  EXPECT_EQ(canonical_config(RunConfig{}), "attnrank-run-v1\n");
  RunConfig config;
  config.train.seed = 3;
  config.model.dim = 16;  // rank follows: 16 != the default 64
  config.train.threads = 2;
  EXPECT_EQ(canonical_config(config),
            "attnrank-run-v1\nmodel.dim: 16\nmodel.rank: 16\nmodel.value_rank: 16\n"
            "train.seed: 3\n");
}

TEST(SweepGrid, AddingSeedsKeepsEveryOldIdentity) {
  const std::string two = R"(
base: {model: {dim: 8, ffn: 16}}
grid: {model.heads: [1, 2], train.seed: [0, 1]}
)";
  const std::string three = R"(
base: {model: {dim: 8, ffn: 16}}
grid: {model.heads: [1, 2, 8], train.seed: [0, 1, 2]}
)";
  const auto old_ids = ids_of(expand_sweep(parse_sweep_spec(two, "a.yaml")));
  const auto new_ids = ids_of(expand_sweep(parse_sweep_spec(three, "b.yaml")));
  EXPECT_EQ(new_ids.size(), 9u);
  for (const auto& id : old_ids)
    EXPECT_NE(std::find(new_ids.begin(), new_ids.end(), id), new_ids.end()) << id;
}

TEST(SweepGrid, DerivedHeadsFromAnExplicitRankList) {
  const auto runs = expand_sweep(parse_sweep_spec(R"(
base: {model: {dim: 16, ffn: 16}}
grid: {model.rank: [16, 4, 1]}
derived: {model.heads: d / rank}
)",
                                                  "spec.yaml"));
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].config.model.heads, 1);
  EXPECT_EQ(runs[1].config.model.heads, 4);
  EXPECT_EQ(runs[2].config.model.heads, 16);
  EXPECT_EQ(runs[2].config.model.rank, 1);
  // The same runs written the default way (heads, rank = d/heads) are the same runs.
  const auto by_heads = expand_sweep(parse_sweep_spec(R"(
base: {model: {dim: 16, ffn: 16}}
grid: {model.heads: [1, 4, 16]}
derived: {model.rank: d/heads}
)",
                                                      "spec.yaml"));
  EXPECT_EQ(ids_of(runs), ids_of(by_heads));
}

TEST(SweepGrid, DerivedExpressionsEvaluate) {
  const RunConfig config = parse_config("model: {dim: 16, heads: 4, width_multiplier: 8}", {});
  EXPECT_DOUBLE_EQ(evaluate_derived("k", "d/H", config), 4.0);
  EXPECT_DOUBLE_EQ(evaluate_derived("k", "(model.dim + 4) * 2 - c", config), 32.0);
  EXPECT_DOUBLE_EQ(evaluate_derived("k", "-rank / 8", config), -0.5);
  EXPECT_DOUBLE_EQ(evaluate_derived("k", "width / heads", config), 4.0);
  EXPECT_DOUBLE_EQ(evaluate_derived("k", "lr * 2", config), 0.02);
  EXPECT_THROW(evaluate_derived("k", "d / 0", config), ConfigError);
  EXPECT_THROW(evaluate_derived("k", "d +", config), ConfigError);
  EXPECT_THROW(evaluate_derived("k", "(d", config), ConfigError);
  EXPECT_THROW(evaluate_derived("k", "norm", config), ConfigError) << "not a number";
  EXPECT_THROW(evaluate_derived("k", "depth", config), ConfigError) << "unknown name";
}

TEST(SweepGrid, DuplicateRunsAreDroppedAndGridListsUnite) {
  const auto runs = expand_sweep(parse_sweep_spec(R"(
base: {model: {dim: 8, ffn: 16}}
grid:
  - {model.heads: [1, 2], model.layers: [1]}
  - {model.heads: [2, 4]}
)",
                                                  "spec.yaml"));
  // heads=2 with layers=1 is the default layers: the same run twice.
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[2].config.model.heads, 4);
}

TEST(SweepGrid, ListValuesPassThroughAsYaml) {
  const auto runs = expand_sweep(parse_sweep_spec(R"(
base: {model: {dim: 8, ffn: 16}}
grid: {train.betas: [[0.9, 0.95], [0.9, 0.99]], model.positional: [none, concat]}
)",
                                                  "spec.yaml"));
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_DOUBLE_EQ(runs[2].config.train.beta2, 0.99);
  EXPECT_EQ(name_of(runs[3].config.model.positional), "concat");
}

TEST(SweepGrid, BaseConfigFileWithInlineOverrides) {
  const auto dir = attnrank::testing::fresh_dir("base_config");
  std::ofstream(dir / "base.yaml") << "model: {dim: 8, ffn: 16}\ntrain: {steps: 7}\n";
  std::ofstream(dir / "spec.yaml") << "base_config: base.yaml\nbase: {train: {steps: 9}}\n"
                                      "grid: {train.seed: [0]}\n";
  const auto runs = expand_sweep(load_sweep_spec((dir / "spec.yaml").string()));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].config.model.dim, 8);
  EXPECT_EQ(runs[0].config.train.steps, 9);
}

TEST(SweepGridErrors, UnknownTopLevelKey) {
  expect_spec_error("gird: {train.seed: [0]}", "did you mean 'grid'");
}
TEST(SweepGridErrors, UnknownGridKeyWithSuggestion) {
  expect_spec_error("grid: {model.rnak: [1]}", "model.rank");
}
TEST(SweepGridErrors, UnknownBaseKey) {
  expect_spec_error("base: {model: {rnak: 2}}\ngrid: {train.seed: [0]}", "model.rnak");
}
TEST(SweepGridErrors, MissingGrid) {
  expect_spec_error("base: {model: {dim: 8}}", "grid");
}
TEST(SweepGridErrors, EmptyGridMap) {
  expect_spec_error("grid: {}", "empty grid");
}
TEST(SweepGridErrors, EmptyValueList) {
  expect_spec_error("grid: {model.heads: []}", "model.heads: empty list");
}
TEST(SweepGridErrors, ScalarInsteadOfList) {
  expect_spec_error("grid: {model.heads: 2}", "expected a list");
}
TEST(SweepGridErrors, KeyBothListedAndDerived) {
  expect_spec_error("grid: {model.rank: [1]}\nderived: {model.rank: d}", "also in the grid");
}
TEST(SweepGridErrors, DerivedNotAnInteger) {
  expect_spec_error(
      "base: {model: {dim: 8}}\ngrid: {model.heads: [3]}\nderived: {model.rank: d/heads}",
      "not an integer");
}
TEST(SweepGridErrors, InvalidRunNamesItsGridPoint) {
  expect_spec_error("base: {model: {dim: 8}}\ngrid: {model.heads: [2, 3]}", "model.heads=3");
}
TEST(SweepGridErrors, BadYaml) {
  expect_spec_error("grid: {model.heads: [1, 2}", "invalid YAML");
}
TEST(SweepGridErrors, UnknownFigureKey) {
  expect_spec_error("grid: {train.seed: [0]}\nfigure: {kind: curves, x: model.rank, colour: red}",
                    "figure.colour");
}
TEST(SweepGridErrors, MissingSpecFile) {
  EXPECT_THROW(load_sweep_spec("/nonexistent/spec.yaml"), ConfigError);
}

TEST(SweepShards, EveryRunInExactlyOneShard) {
  const auto runs = expand_sweep(parse_sweep_spec(kSmallSpec, "spec.yaml"));
  for (int count : {1, 2, 3, 7}) {
    std::vector<int> hits(runs.size(), 0);
    for (int index = 0; index < count; ++index)
      for (size_t r = 0; r < runs.size(); ++r) hits[r] += in_shard(runs[r].id, {index, count});
    for (int h : hits) EXPECT_EQ(h, 1) << count << " shards";
  }
}

TEST(SweepShards, ParsesAndRejects) {
  const Shard shard = parse_shard("2/5");
  EXPECT_EQ(shard.index, 2);
  EXPECT_EQ(shard.count, 5);
  for (const char* bad : {"5/5", "-1/3", "1", "a/b", "1/0", "1/2x", ""})
    EXPECT_THROW(parse_shard(bad), ConfigError) << bad;
}

TEST(SweepPresets, EveryPresetParsesAndExpands) {
  for (const auto& figure : reproduce_figures())
    for (const char* scale : {"small", "medium", "paper"}) {
      SCOPED_TRACE(figure + "-" + scale);
      const std::string path =
          find_preset(figure, scale, std::string(ATTNRANK_SOURCE_DIR) + "/configs/reproduce");
      const SweepSpec spec = load_sweep_spec(path);
      EXPECT_NE(spec.figure.kind, FigureKind::kNone);
      const auto runs = expand_sweep(spec);
      EXPECT_GE(runs.size(), 3u);
    }
  EXPECT_THROW(find_preset("fig9", "small", ""), ConfigError);
  EXPECT_THROW(find_preset("fig1", "huge", ""), ConfigError);
}

TEST(SweepGrid, FigureMetricAndYLabel) {
  const SweepSpec spec = parse_sweep_spec(R"(
grid: {train.seed: [0]}
figure: {kind: curves, x: model.rank, metric: validation_perplexity, y_label: perplexity}
)",
                                          "spec.yaml");
  EXPECT_EQ(spec.figure.metric, "validation_perplexity");
  EXPECT_EQ(spec.figure.metric_label(), "perplexity");
  const SweepSpec plain =
      parse_sweep_spec("grid: {train.seed: [0]}\nfigure: {kind: curves, x: model.rank}", "s.yaml");
  EXPECT_EQ(plain.figure.metric, "test_mse");
  EXPECT_EQ(plain.figure.metric_label(), "test MSE");
  const SweepSpec speed = parse_sweep_spec(
      "grid: {train.seed: [0]}\nfigure: {kind: curves, x: model.rank, metric: ms_per_step}",
      "s.yaml");
  EXPECT_EQ(speed.figure.metric_label(), "ms_per_step");
}
TEST(SweepGridErrors, FigureMetricOfNoKnownForm) {
  expect_spec_error("grid: {train.seed: [0]}\nfigure: {kind: curves, x: model.rank, metric: mse}",
                    "figure.metric: 'mse'");
}
