// Config system: defaults, file + override precedence, derivation, round trip,
// one test per class of bad input, the shipped configs and the reference docs.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"

namespace attnrank {
namespace {

namespace fs = std::filesystem;

const std::string kSource = "x.yaml";

// The message of the ConfigError that parsing throws; fails the test if none.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, overrides, kSource);
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return "";
}

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "'" << (text) << "' lacks '" << (part) << "'"

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---------------------------------------------------------------- defaults

TEST(ConfigDefaults, AreThePublishedSetup) {
  const RunConfig c = parse_config("", {});
  EXPECT_EQ(c.model.dim, 64);
  EXPECT_EQ(c.model.heads, 1);
  EXPECT_EQ(c.model.rank, 64);  // d / H
  EXPECT_EQ(c.model.value_rank, 64);
  EXPECT_EQ(c.model.width_multiplier, 1);
  EXPECT_EQ(c.model.layers, 1);
  EXPECT_EQ(c.model.ffn, 2048);
  EXPECT_EQ(name_of(c.model.norm), "sphere");
  EXPECT_FALSE(c.model.norm_first);
  EXPECT_TRUE(c.model.bias);
  EXPECT_EQ(name_of(c.model.positional), "none");
  EXPECT_EQ(c.model.positional_dim, 64);
  EXPECT_TRUE(c.model.residual);
  EXPECT_EQ(name_of(c.task.name), "farthest");
  EXPECT_EQ(c.task.points, 16);
  EXPECT_EQ(c.task.queries, 1);
  EXPECT_EQ(name_of(c.task.distribution), "uniform");
  EXPECT_EQ(c.train.steps, 100000);
  EXPECT_EQ(c.train.batch, 256);
  EXPECT_EQ(c.train.lr, 0.01);
  EXPECT_EQ(c.train.beta1, 0.9);
  EXPECT_EQ(c.train.beta2, 0.95);
  EXPECT_EQ(c.train.eps, 1e-8);
  EXPECT_EQ(c.train.weight_decay, 0.0);
  EXPECT_EQ(c.train.warmup, 0.05);
  EXPECT_EQ(c.train.min_lr, 0.0);
  EXPECT_EQ(c.train.clip, 0.0);
  EXPECT_EQ(c.train.seed, 0u);
  EXPECT_EQ(c.train.threads, 0);
  EXPECT_EQ(c.train.eval_batches, 16);
  EXPECT_EQ(c.train.log_every, 100);
}

TEST(ConfigDefaults, EmptyPathCommentsAndEmptySectionsGiveDefaults) {
  const RunConfig defaults = parse_config("", {});
  EXPECT_EQ(load_config("", {}), defaults);
  EXPECT_EQ(parse_config("# nothing here\n", {}), defaults);
  EXPECT_EQ(parse_config("model:\n  # dim: 8\ntask:\ntrain: {}\n", {}), defaults);
}

// ---------------------------------------------------------------- precedence

TEST(ConfigPrecedence, FileSetsEveryKey) {
  const RunConfig c = parse_config(R"(
model:
  dim: 8
  heads: 2
  rank: 3
  value_rank: 5
  width_multiplier: 4
  layers: 3
  ffn: 0
  norm: layer
  norm_first: true
  bias: false
  positional: additive
  positional_dim: 7
  residual: false
task:
  name: nearest
  points: 5
  queries: 3
  distribution: orthogonal
train:
  steps: 123
  batch: 17
  lr: 0.003
  betas: [0.8, 0.99]
  eps: 1.0e-6
  weight_decay: 0.1
  warmup: 0.2
  min_lr: 0.0001
  clip: 1.5
  seed: 18446744073709551615
  threads: 2
  eval_batches: 3
  log_every: 10
)",
                                   {});
  EXPECT_EQ(c.model.dim, 8);
  EXPECT_EQ(c.model.heads, 2);
  EXPECT_EQ(c.model.rank, 3);
  EXPECT_EQ(c.model.value_rank, 5);
  EXPECT_EQ(c.model.width_multiplier, 4);
  EXPECT_EQ(c.model.layers, 3);
  EXPECT_EQ(c.model.ffn, 0);
  EXPECT_EQ(name_of(c.model.norm), "layer");
  EXPECT_TRUE(c.model.norm_first);
  EXPECT_FALSE(c.model.bias);
  EXPECT_EQ(name_of(c.model.positional), "additive");
  EXPECT_EQ(c.model.positional_dim, 7);
  EXPECT_FALSE(c.model.residual);
  EXPECT_EQ(name_of(c.task.name), "nearest");
  EXPECT_EQ(c.task.points, 5);
  EXPECT_EQ(c.task.queries, 3);
  EXPECT_EQ(name_of(c.task.distribution), "orthogonal");
  EXPECT_EQ(c.train.steps, 123);
  EXPECT_EQ(c.train.batch, 17);
  EXPECT_EQ(c.train.lr, 0.003);
  EXPECT_EQ(c.train.beta1, 0.8);
  EXPECT_EQ(c.train.beta2, 0.99);
  EXPECT_EQ(c.train.eps, 1e-6);
  EXPECT_EQ(c.train.weight_decay, 0.1);
  EXPECT_EQ(c.train.warmup, 0.2);
  EXPECT_EQ(c.train.min_lr, 0.0001);
  EXPECT_EQ(c.train.clip, 1.5);
  EXPECT_EQ(c.train.seed, 18446744073709551615u);
  EXPECT_EQ(c.train.threads, 2);
  EXPECT_EQ(c.train.eval_batches, 3);
  EXPECT_EQ(c.train.log_every, 10);
}

TEST(ConfigPrecedence, OverridesApplyAfterTheFileInOrder) {
  const RunConfig c = parse_config("model:\n  dim: 32\n  layers: 2\ntrain:\n  lr: 0.1\n",
                                   {"model.dim=16", "train.lr=0.02", "model.dim=8"});
  EXPECT_EQ(c.model.dim, 8);      // last override wins
  EXPECT_EQ(c.model.layers, 2);   // file value kept
  EXPECT_EQ(c.train.lr, 0.02);    // override beats file
  EXPECT_EQ(c.train.batch, 256);  // default kept
}

TEST(ConfigPrecedence, OverrideValuesAreYaml) {
  const RunConfig c =
      parse_config("", {"train.betas=[0.5, 0.75]", "model.norm=none", "model.bias=false",
                        "model.rank=auto", " task.name = nearest"});
  EXPECT_EQ(c.train.beta1, 0.5);
  EXPECT_EQ(c.train.beta2, 0.75);
  EXPECT_EQ(name_of(c.model.norm), "none");
  EXPECT_FALSE(c.model.bias);
  EXPECT_EQ(c.model.rank, 64);
  EXPECT_EQ(name_of(c.task.name), "nearest");
}

TEST(ConfigPrecedence, LoadConfigReadsAFile) {
  const fs::path path = fs::path(testing::TempDir()) / "attnrank_test_config_load.yaml";
  std::ofstream(path) << "model:\n  heads: 4\n";
  const RunConfig c = load_config(path.string(), {"model.dim=32"});
  EXPECT_EQ(c.model.heads, 4);
  EXPECT_EQ(c.model.rank, 8);  // derived after the override
  std::ofstream(path) << "";
  EXPECT_EQ(load_config(path.string(), {}), parse_config("", {}));  // empty file
  fs::remove(path);
}

// ---------------------------------------------------------------- derivation

TEST(ConfigDerivation, RankIsWidthOverHeadsAndValueRankFollowsRank) {
  RunConfig c = parse_config("model:\n  heads: 4\n", {});
  EXPECT_EQ(c.model.rank, 16);
  EXPECT_EQ(c.model.value_rank, 16);
  c = parse_config("model:\n  heads: 4\n  rank: auto\n  value_rank: auto\n", {});
  EXPECT_EQ(c.model.rank, 16);
  c = parse_config("model:\n  heads: 4\n  rank: 32\n", {});
  EXPECT_EQ(c.model.rank, 32);
  EXPECT_EQ(c.model.value_rank, 32);
  c = parse_config("model:\n  heads: 4\n  value_rank: 2\n", {});
  EXPECT_EQ(c.model.rank, 16);
  EXPECT_EQ(c.model.value_rank, 2);
}

TEST(ConfigDerivation, ConcatPositionalDimsCountTowardsTheRank) {
  RunConfig c = parse_config("model:\n  heads: 4\n  positional: concat\n", {});
  EXPECT_EQ(c.model.rank, (64 + 64) / 4);
  c = parse_config("model:\n  heads: 4\n  positional: concat\n  positional_dim: 8\n", {});
  EXPECT_EQ(c.model.rank, (64 + 8) / 4);
  c = parse_config("model:\n  heads: 4\n  positional: additive\n", {});
  EXPECT_EQ(c.model.rank, 64 / 4);
}

TEST(ConfigDerivation, ResolveAndValidateWorksOnStructsBuiltInCode) {
  RunConfig c;
  c.model.heads = 8;
  resolve_and_validate(c);
  EXPECT_EQ(c.model.rank, 8);
  EXPECT_EQ(c.model.value_rank, 8);
}

// ---------------------------------------------------------------- output

TEST(ConfigOutput, RoundTripsExactly) {
  std::vector<RunConfig> configs = {parse_config("", {})};
  RunConfig odd = parse_config(R"(
model: {dim: 12, heads: 3, rank: 7, value_rank: 2, positional: concat, positional_dim: 5,
        norm: layer, norm_first: true, bias: false, residual: false, ffn: 0}
task: {name: nearest, points: 9, queries: 2, distribution: orthogonal}
train: {steps: 5000000000, lr: 0.30000000000000004, betas: [0.1, 0.999999999], eps: 1e-300,
        warmup: 0.3333333333333333, min_lr: 1.0e-7, clip: 1e10, seed: 12345678901234567}
)",
                               {});
  configs.push_back(odd);
  for (const RunConfig& c : configs) {
    const std::string yaml = to_yaml(c);
    EXPECT_EQ(parse_config(yaml, {}), c) << yaml;
  }
}

TEST(ConfigOutput, WritesEveryKeyWithResolvedRanks) {
  RunConfig c;  // rank and value_rank still `auto`
  c.model.heads = 2;
  const std::string yaml = to_yaml(c);
  EXPECT_CONTAINS(yaml, "  rank: 32\n");
  EXPECT_CONTAINS(yaml, "  value_rank: 32\n");
  EXPECT_CONTAINS(yaml, "  betas: [0.9, 0.95]\n");
  const YAML::Node root = YAML::Load(yaml);
  for (const std::string& key : config_keys()) {
    const auto dot = key.find('.');
    EXPECT_TRUE(root[key.substr(0, dot)][key.substr(dot + 1)].IsDefined()) << key;
  }
}

TEST(ConfigOutput, KeysAreListedInDocumentationOrder) {
  const std::vector<std::string> keys = config_keys();
  ASSERT_EQ(keys.size(), 47u);
  EXPECT_EQ(keys.front(), "model.dim");
  EXPECT_EQ(keys[2], "model.rank");
  EXPECT_EQ(keys[13], "model.head_size");
  EXPECT_EQ(keys[15], "model.embed_std");
  EXPECT_EQ(keys[17], "model.positional_init");
  EXPECT_EQ(keys[18], "task.name");
  EXPECT_EQ(keys[28], "train.steps");
  EXPECT_EQ(keys[38], "train.init_seed");
  EXPECT_EQ(keys[43], "train.log_every");
  EXPECT_EQ(keys[45], "train.eval_every");
  EXPECT_EQ(keys[46], "train.tensorboard");
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  const std::vector<ConfigKeyInfo> reference = config_reference();
  ASSERT_EQ(reference.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(reference[i].key, keys[i]);
    EXPECT_FALSE(reference[i].type.empty());
    EXPECT_FALSE(reference[i].doc.empty());
  }
  EXPECT_EQ(reference[0].default_value, "64");
  EXPECT_EQ(reference[2].default_value, "auto");
  EXPECT_EQ(reference[2].type, "integer | auto");
  EXPECT_EQ(reference[7].type, "sphere | layer | none");
}

// ---------------------------------------------------------------- bad input

TEST(ConfigErrors, UnknownKeySuggestsTheClosestKey) {
  EXPECT_EQ(error_of("model:\n  rnak: 4\n"),
            "x.yaml: model.rnak: unknown key (did you mean 'model.rank'?)");
  EXPECT_CONTAINS(error_of("model:\n  lr: 0.1\n"),
                  "model.lr: unknown key (did you mean 'train.lr'?)");
  EXPECT_CONTAINS(error_of("train:\n  warm_up: 0.1\n"), "did you mean 'train.warmup'?");
  const std::string far = error_of("model:\n  zzzzzzzzzz: 1\n");
  EXPECT_CONTAINS(far, "x.yaml: model.zzzzzzzzzz: unknown key");
  EXPECT_EQ(far.find("did you mean"), std::string::npos);
}

TEST(ConfigErrors, UnknownSection) {
  EXPECT_CONTAINS(error_of("optimizer:\n  lr: 0.1\n"),
                  "x.yaml: optimizer: unknown section (the sections are model, task and train)");
  EXPECT_CONTAINS(error_of("modle:\n  dim: 4\n"), "did you mean 'model'?");
}

TEST(ConfigErrors, SectionOrDocumentNotAMap) {
  EXPECT_EQ(error_of("model: 3\n"), "x.yaml: model: expected a map of keys, got '3'");
  EXPECT_CONTAINS(error_of("task: [1, 2]\n"), "x.yaml: task: expected a map of keys, got a list");
  EXPECT_CONTAINS(error_of("- model\n- task\n"), "x.yaml: expected a map with the sections");
  EXPECT_CONTAINS(error_of("just text\n"), "x.yaml: expected a map");
}

TEST(ConfigErrors, KeyOrSectionGivenTwice) {
  EXPECT_EQ(error_of("model:\n  dim: 4\n  dim: 8\n"), "x.yaml: model.dim: set twice");
  EXPECT_CONTAINS(error_of("model:\n  dim: 4\nmodel:\n  heads: 2\n"), "x.yaml: model: section");
}

TEST(ConfigErrors, WrongTypeForInteger) {
  EXPECT_EQ(error_of("model:\n  heads: abc\n"),
            "x.yaml: model.heads: expected an integer, got 'abc'");
  EXPECT_CONTAINS(error_of("model:\n  heads: 3.5\n"),
                  "model.heads: expected an integer, got '3.5'");
  EXPECT_CONTAINS(error_of("train:\n  steps: 1e5\n"), "train.steps: expected an integer");
  EXPECT_CONTAINS(error_of("model:\n  dim: [64]\n"), "model.dim: expected an integer, got a list");
  EXPECT_CONTAINS(error_of("model:\n  dim:\n"), "model.dim: expected an integer, got nothing");
  EXPECT_CONTAINS(error_of("model:\n  dim: \"64\"\n"),
                  "model.dim: expected an integer, got the quoted");
  EXPECT_CONTAINS(error_of("model:\n  dim: 99999999999\n"),
                  "model.dim: 99999999999 is out of range");
  EXPECT_CONTAINS(error_of("train:\n  seed: -1\n"),
                  "train.seed: expected a non-negative integer, got '-1'");
  EXPECT_CONTAINS(error_of("train:\n  seed: 18446744073709551616\n"), "train.seed: ");
}

TEST(ConfigErrors, WrongTypeForFloat) {
  EXPECT_EQ(error_of("train:\n  lr: fast\n"),
            "x.yaml: train.lr: expected a finite number, got 'fast'");
  EXPECT_CONTAINS(error_of("train:\n  eps: .inf\n"), "train.eps: expected a finite number");
  EXPECT_CONTAINS(error_of("train:\n  clip: nan\n"), "train.clip: expected a finite number");
  EXPECT_CONTAINS(error_of("train:\n  warmup: {a: 1}\n"),
                  "train.warmup: expected a number, got a map");
}

TEST(ConfigErrors, WrongTypeForBoolean) {
  EXPECT_EQ(error_of("model:\n  bias: yes\n"),
            "x.yaml: model.bias: expected true or false, got 'yes'");
  EXPECT_CONTAINS(error_of("model:\n  residual: 1\n"), "model.residual: expected true or false");
  EXPECT_CONTAINS(error_of("model:\n  norm_first: [true]\n"), "model.norm_first: expected true");
}

TEST(ConfigErrors, WrongTypeForList) {
  EXPECT_EQ(error_of("train:\n  betas: 0.9\n"),
            "x.yaml: train.betas: expected a list [beta1, beta2], got '0.9'");
  EXPECT_CONTAINS(error_of("train:\n  betas: [0.9]\n"),
                  "train.betas: expected a list [beta1, beta2], got 1 elements");
  EXPECT_CONTAINS(error_of("train:\n  betas: [0.9, 0.95, 0.99]\n"), "got 3 elements");
  EXPECT_CONTAINS(error_of("train:\n  betas: [0.9, high]\n"),
                  "train.betas: beta2: expected a finite number, got 'high'");
}

TEST(ConfigErrors, RankIsAPositiveIntegerOrAuto) {
  EXPECT_EQ(error_of("model:\n  rank: 0\n"),
            "x.yaml: model.rank: expected an integer >= 1 or 'auto', got '0'");
  EXPECT_CONTAINS(error_of("model:\n  rank: full\n"),
                  "model.rank: expected an integer >= 1 or 'auto'");
  EXPECT_CONTAINS(error_of("model:\n  value_rank: -2\n"),
                  "model.value_rank: expected an integer >= 1");
  EXPECT_CONTAINS(error_of("model:\n  value_rank: 2.5\n"),
                  "model.value_rank: expected an integer >= 1");
}

struct EnumCase {
  std::string key, value, choices;
};

class ConfigEnumErrors : public testing::TestWithParam<EnumCase> {};

TEST_P(ConfigEnumErrors, NamesTheKeyAndTheChoices) {
  const EnumCase& c = GetParam();
  const std::string override_text = c.key + "=" + c.value;
  EXPECT_EQ(error_of("", {override_text}), "override '" + override_text + "': " + c.key +
                                               ": expected one of " + c.choices + ", got '" +
                                               c.value + "'");
}

INSTANTIATE_TEST_SUITE_P(
    AllEnums, ConfigEnumErrors,
    testing::Values(EnumCase{"model.norm", "batch", "sphere | layer | none"},
                    EnumCase{"model.positional", "rotary", "none | additive | concat"},
                    EnumCase{"task.name", "sorting", "farthest | nearest | lm | mlm | icl-linear"},
                    EnumCase{"task.distribution", "gaussian", "uniform | orthogonal"}),
    [](const auto& info) {
      std::string name = info.param.key;
      std::replace(name.begin(), name.end(), '.', '_');
      return name;
    });

struct RangeCase {
  std::string name;      // test name
  std::string override;  // the bad value
  std::string message;   // expected tail after "override '...': "
};

class ConfigRangeErrors : public testing::TestWithParam<RangeCase> {};

TEST_P(ConfigRangeErrors, NamesTheKeyAndTheRule) {
  const RangeCase& c = GetParam();
  EXPECT_EQ(error_of("", {c.override}), "override '" + c.override + "': " + c.message);
}

INSTANTIATE_TEST_SUITE_P(
    EveryRule, ConfigRangeErrors,
    testing::Values(
        RangeCase{"dim", "model.dim=0", "model.dim: must be >= 1, got 0"},
        RangeCase{"heads", "model.heads=0", "model.heads: must be >= 1, got 0"},
        RangeCase{"width_multiplier", "model.width_multiplier=0",
                  "model.width_multiplier: must be >= 1, got 0"},
        RangeCase{"layers", "model.layers=-1", "model.layers: must be >= 1, got -1"},
        RangeCase{"ffn", "model.ffn=-1", "model.ffn: must be >= 0, got -1"},
        RangeCase{"points", "task.points=0", "task.points: must be >= 1, got 0"},
        RangeCase{"queries", "task.queries=0", "task.queries: must be >= 1, got 0"},
        RangeCase{"steps", "train.steps=0", "train.steps: must be >= 1, got 0"},
        RangeCase{"batch", "train.batch=0", "train.batch: must be >= 1, got 0"},
        RangeCase{"lr", "train.lr=0", "train.lr: must be > 0, got 0"},
        RangeCase{"beta1", "train.betas=[1, 0.95]", "train.betas: beta1 must be in [0, 1), got 1"},
        RangeCase{"beta2", "train.betas=[0.9, -0.5]",
                  "train.betas: beta2 must be in [0, 1), got -0.5"},
        RangeCase{"eps", "train.eps=0", "train.eps: must be > 0, got 0"},
        RangeCase{"weight_decay", "train.weight_decay=-0.1",
                  "train.weight_decay: must be >= 0, got -0.1"},
        RangeCase{"warmup_high", "train.warmup=1.5", "train.warmup: must be in [0, 1], got 1.5"},
        RangeCase{"warmup_low", "train.warmup=-0.1", "train.warmup: must be in [0, 1], got -0.1"},
        RangeCase{"min_lr", "train.min_lr=-1", "train.min_lr: must be >= 0, got -1"},
        RangeCase{"min_lr_above_lr", "train.min_lr=0.1",
                  "train.min_lr: must be <= train.lr (0.01), got 0.1"},
        RangeCase{"clip", "train.clip=-1", "train.clip: must be >= 0, got -1"},
        RangeCase{"threads", "train.threads=-2", "train.threads: must be >= 0, got -2"},
        RangeCase{"eval_batches", "train.eval_batches=0",
                  "train.eval_batches: must be >= 1, got 0"},
        RangeCase{"log_every", "train.log_every=0", "train.log_every: must be >= 1, got 0"}),
    [](const auto& info) { return info.param.name; });

TEST(ConfigErrors, FarthestNeedsTwoPointsNearestOne) {
  EXPECT_EQ(error_of("task:\n  points: 1\n"),
            "x.yaml: task.points: must be >= 2 for task.name = farthest, got 1");
  EXPECT_EQ(parse_config("task:\n  name: nearest\n  points: 1\n", {}).task.points, 1);
}

TEST(ConfigErrors, ConcatNeedsPositionalDims) {
  EXPECT_EQ(error_of("model:\n  positional: concat\n  positional_dim: 0\n"),
            "x.yaml: model.positional_dim: must be >= 1 with model.positional = concat, got 0");
  // Unused without concat.
  EXPECT_EQ(parse_config("model:\n  positional_dim: 0\n", {}).model.positional_dim, 0);
}

TEST(ConfigErrors, OrthogonalPointsMustFitTheDimension) {
  const std::string message =
      error_of("model:\n  dim: 8\ntask:\n  distribution: orthogonal\n  points: 9\n");
  EXPECT_CONTAINS(message, "x.yaml: task.points: ");
  EXPECT_CONTAINS(message, "task.points = 9");
  EXPECT_CONTAINS(message, "model.dim = 8");
  EXPECT_EQ(parse_config("model:\n  dim: 8\ntask:\n  distribution: orthogonal\n  points: 8\n", {})
                .task.points,
            8);
}

TEST(ConfigErrors, AutoRankMustDivideTheWidth) {
  EXPECT_EQ(error_of("model:\n  heads: 3\n"),
            "x.yaml: model.rank: auto rank needs model.heads (3) to divide the model width 64; "
            "set model.rank explicitly");
  EXPECT_CONTAINS(error_of("model:\n  heads: 16\n  positional: concat\n  positional_dim: 4\n"),
                  "the model width 68 (model.dim + model.positional_dim)");
  EXPECT_CONTAINS(error_of("", {"model.heads=5"}), "override 'model.heads=5': model.rank: ");
  EXPECT_EQ(parse_config("model:\n  heads: 3\n  rank: 8\n", {}).model.rank, 8);
}

TEST(ConfigErrors, MalformedOverride) {
  for (const std::string bad : {"model.dim", "dim=3", "=3", ".dim=3", "model.=3", "  =  "}) {
    EXPECT_EQ(error_of("", {bad}),
              "override '" + bad + "': expected section.key=value, e.g. model.rank=32");
  }
  EXPECT_EQ(error_of("", {"model.dmi=3"}),
            "override 'model.dmi=3': model.dmi: unknown key (did you mean 'model.dim'?)");
  EXPECT_EQ(error_of("", {"optim.lr=3"}),
            "override 'optim.lr=3': optim.lr: unknown key (did you mean 'train.lr'?)");
  EXPECT_CONTAINS(error_of("", {"train.betas=[0.9"}),
                  "override 'train.betas=[0.9': train.betas: invalid YAML value");
  EXPECT_CONTAINS(error_of("", {"model.dim="}), "model.dim: expected an integer, got nothing");
}

TEST(ConfigErrors, OverrideErrorsNameTheOverrideFileErrorsTheFile) {
  EXPECT_EQ(error_of("model:\n  heads: 2\n", {"model.heads=0"}),
            "override 'model.heads=0': model.heads: must be >= 1, got 0");
  EXPECT_EQ(error_of("model:\n  heads: 0\n", {"model.dim=8"}),
            "x.yaml: model.heads: must be >= 1, got 0");
}

TEST(ConfigErrors, YamlSyntaxErrorGivesTheLine) {
  EXPECT_CONTAINS(error_of("model:\n  dim: 4\n  heads: [1, 2\n"), "x.yaml:");
  const std::string message = error_of("model:\n  dim: 4\n heads: 2\n");
  EXPECT_CONTAINS(message, "x.yaml:3:");
  EXPECT_CONTAINS(message, "invalid YAML");
  EXPECT_CONTAINS(error_of("model: {}\n---\ntask: {}\n"),
                  "x.yaml: holds more than one YAML document");
  // yaml-cpp 0.7 LoadAll yields documents forever here (found by fuzz/fuzz_config.cpp).
  EXPECT_CONTAINS(error_of("!a,b"), "x.yaml: holds more than one YAML document");
}

TEST(ConfigErrors, StayOnOneLineWhateverTheInput) {
  // error_of also checks that there is no line break.
  EXPECT_CONTAINS(error_of("model:\n  norm: \"a\\nb\"\n"), "got the quoted string 'a\\nb'");
  EXPECT_CONTAINS(error_of("model:\n  norm: |\n    two\n    lines\n"), "'two\\nlines\\n'");
  EXPECT_CONTAINS(error_of("model:\n  \"d\\nim\": 4\n"), "model.d\\nim: unknown key");
  EXPECT_CONTAINS(error_of("", {"model.dim=\nx"}), "override 'model.dim=\\nx'");
  EXPECT_CONTAINS(error_of("", {"model\n.dim=4"}), "unknown key");
  EXPECT_CONTAINS(error_of("model:\n  norm: " + std::string(200, 'x') + "\n"), "xxx...'");
}

TEST(ConfigErrors, MissingOrUnreadableFile) {
  const std::string missing = "/nonexistent/attnrank/none.yaml";
  try {
    load_config(missing, {});
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), missing + ": config file not found");
  }
  EXPECT_THROW(load_config(testing::TempDir(), {}), ConfigError);  // a directory
}

TEST(ConfigErrors, FileErrorsNameThePath) {
  const fs::path path = fs::path(testing::TempDir()) / "attnrank_test_config_bad.yaml";
  std::ofstream(path) << "model:\n  heads: abc\n";
  try {
    load_config(path.string(), {});
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              path.string() + ": model.heads: expected an integer, got 'abc'");
  }
  fs::remove(path);
}

// ---------------------------------------------------------------- shipped files

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(fs::path(ATTNRANK_SOURCE_DIR) / "configs"))
    if (entry.path().extension() == ".yaml") paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  return paths;
}

TEST(ShippedConfigs, EveryFileValidates) {
  const std::vector<fs::path> paths = shipped_configs();
  EXPECT_GE(paths.size(), 7u);
  for (const fs::path& path : paths) {
    SCOPED_TRACE(path.string());
    EXPECT_NO_THROW(load_config(path.string(), {}));
  }
}

TEST(ShippedConfigs, DefaultFileIsThePublishedSetupWithEveryKey) {
  const fs::path path = fs::path(ATTNRANK_SOURCE_DIR) / "configs" / "default.yaml";
  EXPECT_EQ(load_config(path.string(), {}), load_config("", {}));
  const YAML::Node root = YAML::LoadFile(path.string());
  for (const std::string& key : config_keys()) {
    const auto dot = key.find('.');
    EXPECT_TRUE(root[key.substr(0, dot)][key.substr(dot + 1)].IsDefined()) << key;
  }
}

TEST(ShippedConfigs, VariantsSetWhatTheirNamesSay) {
  const fs::path dir = fs::path(ATTNRANK_SOURCE_DIR) / "configs";
  const RunConfig nearest = load_config((dir / "nearest.yaml").string(), {});
  EXPECT_EQ(name_of(nearest.task.name), "nearest");
  EXPECT_EQ(nearest.task.queries, 4);
  EXPECT_EQ(name_of(load_config((dir / "orthogonal.yaml").string(), {}).task.distribution),
            "orthogonal");
  EXPECT_EQ(name_of(load_config((dir / "concat.yaml").string(), {}).model.positional), "concat");
  const RunConfig bare = load_config((dir / "attention-only.yaml").string(), {});
  EXPECT_EQ(bare.model.ffn, 0);
  EXPECT_EQ(name_of(bare.model.norm), "none");
  EXPECT_FALSE(bare.model.residual);
  const RunConfig small = load_config((dir / "small.yaml").string(), {});
  const RunConfig tiny = load_config((dir / "tiny.yaml").string(), {});
  EXPECT_LE(tiny.train.steps, 1000);
  EXPECT_LT(tiny.train.steps, small.train.steps);
}

TEST(ConfigDocs, ReferenceTableListsEveryKeyWithItsDefault) {
  const std::string docs = read_text(fs::path(ATTNRANK_SOURCE_DIR) / "docs" / "config.md");
  ASSERT_FALSE(docs.empty());
  for (const ConfigKeyInfo& info : config_reference()) {
    // A table row: | `model.dim` | type | `64` | meaning |
    const std::string row_start = "| `" + info.key + "` |";
    const auto row = docs.find(row_start);
    ASSERT_NE(row, std::string::npos) << info.key;
    const std::string line = docs.substr(row, docs.find('\n', row) - row);
    EXPECT_CONTAINS(line, "| `" + info.default_value + "` |");
  }
}

}  // namespace
}  // namespace attnrank
