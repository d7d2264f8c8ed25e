// The authors' protocol as options (docs/fidelity.md): replayed data, the best
// epoch-mean training loss, a separate init seed, identical initial layers, the
// positional-table init, the published "perfect" measure, the published random-feature
// heads, the paper presets against the authors' hyperparameters, and reproduce
// --protocol through the binary.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <set>
#include <sstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/eigen_dense.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/experiment/sweep.h"
#include "attnrank/nn/model.h"
#include "attnrank/theory/inspect.h"
#include "attnrank/theory/random_features.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "cli_runner.h"
#include "test_files.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

RunConfig tiny(const std::vector<std::string>& overrides) {
  std::vector<std::string> all = {"model.dim=4",   "model.heads=2", "model.ffn=8",
                                  "task.points=3", "train.batch=4", "train.eval_batches=2"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return parse_config("", all);
}

Batch batch_at(const Objective& objective, const RunConfig& config, int64_t step) {
  Batch batch;
  objective.training_batch(config.train.seed, training_batch_index(config.train, step),
                           config.train.batch, batch);
  return batch;
}

std::vector<float> tensor(const Transformer<float>& model, const std::string& name) {
  const TensorInfo& info = model.layout().find(name);
  const float* data = model.parameters().data() + info.offset;
  return {data, data + info.size};
}

}  // namespace

TEST(Fidelity, ReplayedDataRepeatsExactlyEachEpoch) {
  const RunConfig replay = tiny({"train.data=replay", "train.epoch_batches=3"});
  const auto objective = make_objective(replay);
  for (int64_t step = 0; step < 3; ++step) {
    const Batch first = batch_at(*objective, replay, step);
    for (int epoch = 1; epoch <= 2; ++epoch) {
      const Batch later = batch_at(*objective, replay, step + 3 * epoch);
      EXPECT_EQ(first.inputs, later.inputs) << "step " << step << " epoch " << epoch;
      EXPECT_EQ(first.targets, later.targets);
    }
    // Within an epoch the batches differ.
    EXPECT_NE(first.inputs, batch_at(*objective, replay, (step + 1) % 3).inputs);
  }
  // Fresh data (the default) never repeats a batch.
  const RunConfig fresh = tiny({});
  EXPECT_EQ(fresh.train.data, DataMode::kFresh);
  EXPECT_NE(batch_at(*objective, fresh, 0).inputs, batch_at(*objective, fresh, 3).inputs);
  // Replay's epoch is fresh data's first epoch.
  EXPECT_EQ(batch_at(*objective, fresh, 2).inputs, batch_at(*objective, replay, 5).inputs);
}

TEST(Fidelity, BestEpochLossTracksCompleteEpochsOnly) {
  BestEpochLoss best(2);
  EXPECT_TRUE(std::isnan(best.best()));
  best.add(4.0);
  EXPECT_TRUE(std::isnan(best.best()));  // half an epoch
  best.add(2.0);
  EXPECT_DOUBLE_EQ(best.best(), 3.0);
  best.add(1.0);
  best.add(2.0);
  EXPECT_DOUBLE_EQ(best.best(), 1.5);
  best.add(5.0);
  best.add(5.0);
  best.add(0.0);  // an incomplete last epoch does not count
  EXPECT_DOUBLE_EQ(best.best(), 1.5);
  EXPECT_EQ(best.epochs(), 3);
}

TEST(Fidelity, ReportedStatisticEqualsBruteForceFromPerStepLosses) {
  // log_every = 1: metrics.csv holds every step's loss; the statistic is the lowest
  // mean of 5 consecutive steps at epoch boundaries.
  const fs::path dir = attnrank::testing::fresh_run_dir("fidelity", "best_epoch");
  const auto result = attnrank::testing::run_attnrank(
      "train --config " + std::string(ATTNRANK_SOURCE_DIR) +
      "/configs/tiny.yaml train.steps=23 train.log_every=1 train.data=replay "
      "train.epoch_batches=5 train.threads=1 --out " +
      dir.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::istringstream metrics(attnrank::testing::read_file(dir / "metrics.csv"));
  std::string line;
  std::getline(metrics, line);
  std::vector<double> losses;
  while (std::getline(metrics, line)) {
    const size_t comma = line.find(',');
    losses.push_back(std::stod(line.substr(comma + 1, line.find(',', comma + 1) - comma - 1)));
  }
  ASSERT_EQ(losses.size(), 23u);
  double best = INFINITY;
  for (size_t begin = 0; begin + 5 <= losses.size(); begin += 5) {
    double sum = 0.0;
    for (size_t i = begin; i < begin + 5; ++i) sum += losses[i];
    best = std::min(best, sum / 5);
  }
  const auto json = nlohmann::json::parse(attnrank::testing::read_file(dir / "summary.json"));
  ASSERT_TRUE(json.contains(kBestEpochTrainLoss)) << json.dump();
  // metrics.csv rounds each loss to 9 significant digits.
  EXPECT_NEAR(json[kBestEpochTrainLoss].get<double>(), best, 1e-8 * best);
  EXPECT_TRUE(json.contains("test_mse"));
  // Fresh data: no such statistic.
  const fs::path fresh = attnrank::testing::fresh_run_dir("fidelity", "fresh");
  ASSERT_EQ(
      attnrank::testing::run_attnrank("train --config " + std::string(ATTNRANK_SOURCE_DIR) +
                                      "/configs/tiny.yaml train.steps=10 --out " + fresh.string())
          .exit_code,
      0);
  EXPECT_FALSE(nlohmann::json::parse(attnrank::testing::read_file(fresh / "summary.json"))
                   .contains(kBestEpochTrainLoss));
}

TEST(Fidelity, ReplayedTrainingIsDeterministicAndDiffersFromFresh) {
  auto run = [](const std::string& name, const std::string& extra) {
    const fs::path dir = attnrank::testing::fresh_run_dir("fidelity", name);
    const auto result = attnrank::testing::run_attnrank(
        "train --config " + std::string(ATTNRANK_SOURCE_DIR) +
        "/configs/tiny.yaml train.steps=40 train.log_every=10 " + extra + " --out " + dir.string());
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return attnrank::testing::read_file(dir / "metrics.csv");
  };
  const std::string a = run("replay_a", "train.data=replay train.epoch_batches=4");
  EXPECT_EQ(a, run("replay_b", "train.data=replay train.epoch_batches=4"));
  EXPECT_NE(a, run("fresh_a", ""));
}

TEST(Fidelity, InitSeedIsSeparateFromTheDataSeed) {
  const RunConfig a = tiny({"train.seed=1", "train.init_seed=613"});
  const RunConfig b = tiny({"train.seed=2", "train.init_seed=613"});
  EXPECT_EQ(a.train.model_seed(), 613u);
  const auto objective = make_objective(a);
  Transformer<float> ma(a.model, objective->sequence()), mb(b.model, objective->sequence());
  ma.initialize(a.train.model_seed());
  mb.initialize(b.train.model_seed());
  EXPECT_EQ(ma.parameters(), mb.parameters());
  // The default (-1) is the data seed: two seeds, two initialisations.
  const RunConfig c = tiny({"train.seed=2"});
  EXPECT_EQ(c.train.init_seed, -1);
  EXPECT_EQ(c.train.model_seed(), 2u);
  EXPECT_NE(a.train.model_seed(), c.train.model_seed());
  // -2 is no seed.
  EXPECT_THROW(tiny({"train.init_seed=-2"}), ConfigError);
}

TEST(Fidelity, IdenticalLayersStartEqual) {
  const RunConfig same =
      tiny({"model.layers=3", "model.width_multiplier=2", "model.identical_layers=true"});
  const auto objective = make_objective(same);
  Transformer<float> model(same.model, objective->sequence());
  model.initialize(7);
  int compared = 0;
  for (const TensorInfo& info : model.layout().tensors()) {
    if (info.name.rfind("layers.0.", 0) != 0) continue;
    const std::string suffix = info.name.substr(9);
    for (int layer = 1; layer < 3; ++layer) {
      EXPECT_EQ(tensor(model, info.name),
                tensor(model, "layers." + std::to_string(layer) + "." + suffix))
          << suffix;
      ++compared;
    }
  }
  EXPECT_GE(compared, 10);
  // Within a layer the c modules still differ (each nn.MultiheadAttention draws its own).
  const std::vector<float> in = tensor(model, "layers.0.attn.in_proj_weight");
  const size_t half = in.size() / 2;
  EXPECT_FALSE(std::equal(in.begin(), in.begin() + half, in.begin() + half));
  // Independent layers (the default) differ.
  const RunConfig independent = tiny({"model.layers=3"});
  EXPECT_FALSE(independent.model.identical_layers);
  Transformer<float> other(independent.model, objective->sequence());
  other.initialize(7);
  EXPECT_NE(tensor(other, "layers.0.attn.in_proj_weight"),
            tensor(other, "layers.1.attn.in_proj_weight"));
}

TEST(Fidelity, PositionalInitStatistics) {
  for (const char* positional : {"additive", "concat"}) {
    for (const char* init : {"normal", "uniform"}) {
      const RunConfig config = parse_config(
          "", {"model.dim=8", "model.heads=1", "model.ffn=8", "task.points=64",
               std::string("model.positional=") + positional, "model.positional_dim=32",
               std::string("model.positional_init=") + init});
      const auto objective = make_objective(config);
      Transformer<float> model(config.model, objective->sequence());
      model.initialize(3);
      const std::vector<float> table =
          tensor(model, std::string("pos.") + positional);  // (N, columns)
      const double columns = std::string(positional) == "concat" ? 32 : 8;
      ASSERT_EQ(table.size(), static_cast<size_t>(64 * columns));
      double sum = 0.0, squares = 0.0, largest = 0.0;
      for (float v : table) {
        sum += v;
        squares += double(v) * v;
        largest = std::max(largest, std::abs(double(v)));
      }
      const double n = double(table.size()), mean = sum / n, variance = squares / n - mean * mean;
      // Uniform(-1, 1): variance 1/3, all within 1. Normal: variance 1/columns.
      const double expected = std::string(init) == "uniform" ? 1.0 / 3.0 : 1.0 / columns;
      EXPECT_NEAR(variance, expected, 0.15 * expected) << positional << " " << init;
      EXPECT_NEAR(mean, 0.0, 4 * std::sqrt(expected / n)) << positional << " " << init;
      if (std::string(init) == "uniform") {
        EXPECT_LE(largest, 1.0);
        EXPECT_GT(largest, 0.95);
      }
    }
  }
}

TEST(Fidelity, NewKeysAtTheirDefaultsLeaveRunIdentitiesAlone) {
  RunConfig config = tiny({});
  const std::string before = canonical_config(config);
  for (const char* key : {"train.data", "train.epoch_batches", "train.init_seed",
                          "model.identical_layers", "model.positional_init"})
    EXPECT_EQ(before.find(key), std::string::npos) << key;
  const RunConfig replay = tiny({"train.data=replay"});
  EXPECT_NE(run_identity(config), run_identity(replay));
  EXPECT_NE(canonical_config(replay).find("train.data: replay"), std::string::npos);
}

TEST(Fidelity, PublishedPerfectMeasureIsTheAngleOfQKTranspose) {
  RunConfig config = tiny({"model.heads=1", "model.dim=4"});
  const auto objective = make_objective(config);
  Transformer<float> model(config.model, objective->sequence());
  model.initialize(11);
  const ModelInspection inspection = inspect_model(model);
  ASSERT_EQ(inspection.heads.size(), 1u);
  // Q, K: the query and key row blocks of in_proj_weight (PyTorch's layout).
  const std::vector<float> in = tensor(model, "layers.0.attn.in_proj_weight");
  Eigen::MatrixXd q(4, 4), k(4, 4);
  for (int e = 0; e < 4; ++e)
    for (int i = 0; i < 4; ++i) {
      q(e, i) = in[e * 4 + i];
      k(e, i) = in[(4 + e) * 4 + i];
    }
  const Eigen::MatrixXd published = q * k.transpose();
  const double angle =
      std::acos(published.trace() / (published.norm() * 2.0)) * 180.0 / std::numbers::pi;
  EXPECT_NEAR(inspection.heads[0].published_angle, angle, 1e-9);
  EXPECT_NEAR(inspection.heads[0].published_scale, published.norm() / 2.0, 1e-9);
  // Ours is M = Q^T K: the same trace, in general another norm.
  const Eigen::MatrixXd ours = q.transpose() * k;
  EXPECT_NEAR(inspection.heads[0].frobenius, ours.norm(), 1e-9);
  EXPECT_GT(std::abs(ours.norm() - published.norm()), 1e-6);
}

TEST(Fidelity, PublishedRandomFeatureHeads) {
  const int dim = 16, count = 4000;
  for (HeadDirections directions : {HeadDirections::kAuthors, HeadDirections::kAuthorsNormalised}) {
    const RandomHeads heads = draw_random_heads(dim, count, 5, 0, directions);
    double sum = 0.0, squares = 0.0, shortest = 2.0, longest = 0.0;
    for (int h = 0; h < count; ++h) {
      const double* q = heads.queries.data() + static_cast<size_t>(h) * dim;
      const double* k = heads.keys.data() + static_cast<size_t>(h) * dim;
      double qk = 0.0, kk = 0.0;
      for (int i = 0; i < dim; ++i) {
        qk += q[i] * k[i];
        kk += k[i] * k[i];
      }
      // cos angle(q, k) = q.k / |k|; the drawn c is q.k itself in both variants.
      sum += qk;
      squares += qk * qk;
      shortest = std::min(shortest, std::sqrt(kk));
      longest = std::max(longest, std::sqrt(kk));
    }
    // c ~ U(-1, 1): mean 0, second moment 1/3.
    EXPECT_NEAR(sum / count, 0.0, 4 * std::sqrt(1.0 / 3.0 / count));
    EXPECT_NEAR(squares / count, 1.0 / 3.0, 0.03);
    if (directions == HeadDirections::kAuthors) {
      EXPECT_LT(shortest, 0.9);  // not renormalised: |k|^2 = 1 - (1 - c^2)(q.e)^2
      EXPECT_LE(longest, 1.0 + 1e-12);
    } else {
      EXPECT_NEAR(shortest, 1.0, 1e-12);
      EXPECT_NEAR(longest, 1.0, 1e-12);
    }
  }
  // The as-run Gram diagonal follows the short keys; the dense and prefix solvers agree.
  const RandomHeads heads = draw_random_heads(8, 40, 1, 0, HeadDirections::kAuthors);
  const HeadTargetProduct b(8);
  const std::vector<double> a = optimal_output_weights(heads, b);
  const PrefixCurve curve = optimal_mse_by_prefix(heads, b);
  EXPECT_NEAR(curve.mse.back(), closed_form_mse(heads, b, a), 1e-8);
}

namespace {

bool same_value(const std::string& a, const std::string& b) {
  try {
    size_t used_a = 0, used_b = 0;
    const double x = std::stod(a, &used_a), y = std::stod(b, &used_b);
    if (used_a == a.size() && used_b == b.size()) return std::abs(x - y) <= 1e-12 * std::abs(y);
  } catch (const std::exception&) {
  }
  return a == b;
}

std::string value_of(const std::vector<std::pair<std::string, std::string>>& flat,
                     const std::string& key) {
  for (const auto& [k, v] : flat)
    if (k == key) return v;
  ADD_FAILURE() << "no key " << key;
  return "";
}

}  // namespace

TEST(Fidelity, PaperPresetsMatchTheAuthorsHyperparameters) {
  const std::string source = ATTNRANK_SOURCE_DIR;
  const YAML::Node table = YAML::LoadFile(source + "/tests/data/authors_hyperparameters.yaml");
  ASSERT_TRUE(table.IsSequence());
  std::map<std::string, std::vector<std::vector<std::pair<std::string, std::string>>>> runs;
  int rows = 0;
  for (const YAML::Node& row : table) {
    const std::string figure = row["figure"].as<std::string>();
    const std::string key = row["key"].as<std::string>();
    ASSERT_TRUE(row["source"]) << figure << " " << key << ": every row cites the authors' file";
    if (!runs.contains(figure)) {
      const SweepSpec spec =
          protocol_spec(load_sweep_spec(source + "/configs/reproduce/" + figure + "-paper.yaml"),
                        Protocol::kAuthors);
      for (const PlannedRun& run : expand_sweep(spec))
        runs[figure].push_back(flat_config(run.config));
    }
    std::set<std::string> expected, found;
    for (const YAML::Node& value : row["values"]) expected.insert(value.as<std::string>());
    for (const auto& flat : runs[figure]) {
      bool selected = true;
      for (const auto& where : row["where"])
        selected = selected && same_value(value_of(flat, where.first.as<std::string>()),
                                          where.second.as<std::string>());
      if (selected) found.insert(value_of(flat, key));
    }
    // Set equality, numbers compared as numbers.
    auto covered = [](const std::set<std::string>& from, const std::set<std::string>& in) {
      return std::all_of(from.begin(), from.end(), [&](const std::string& v) {
        return std::any_of(in.begin(), in.end(),
                           [&](const std::string& w) { return same_value(v, w); });
      });
    };
    std::string found_text;
    for (const auto& v : found) found_text += v + " ";
    EXPECT_TRUE(covered(expected, found) && covered(found, expected))
        << figure << " " << key << ": preset has {" << found_text << "} ("
        << row["source"].as<std::string>() << ")";
    ++rows;
  }
  EXPECT_GE(rows, 50);
}

TEST(Fidelity, AuthorsProtocolAddsItsKeysAndExtraGrids) {
  const std::string source = ATTNRANK_SOURCE_DIR;
  const SweepSpec clean = load_sweep_spec(source + "/configs/reproduce/fig1-paper.yaml");
  const SweepSpec authors = protocol_spec(clean, Protocol::kAuthors);
  EXPECT_EQ(expand_sweep(clean).size(), 315u);
  EXPECT_EQ(expand_sweep(authors).size(), 315u + 24u);  // fig1_supp1: 4 lr x 3 seeds x 2 H
  EXPECT_EQ(authors.figure.metric, kBestEpochTrainLoss);
  EXPECT_EQ(protocol_spec(clean, Protocol::kClean).base_yaml, clean.base_yaml);
  EXPECT_THROW(protocol_from_name("faithful"), ConfigError);
}

TEST(Fidelity, ReproduceBothProtocolsThroughTheBinary) {
  const fs::path dir = attnrank::testing::fresh_run_dir("fidelity", "reproduce");
  const fs::path presets = dir / "presets";
  fs::create_directories(presets);
  std::ofstream(presets / "fig1-small.yaml") << R"(name: fig1-small
base:
  model: {dim: 4, ffn: 8}
  task: {points: 3}
  train: {steps: 200, batch: 8, eval_batches: 2, log_every: 100}
grid:
  model.heads: [1, 4]
  train.seed: [0, 1]
derived:
  model.rank: d/heads
figure:
  kind: curves
  x: model.rank
)";
  const fs::path out = dir / "out";
  const auto result = attnrank::testing::run_attnrank(
      "reproduce fig1 --scale small --protocol both --jobs 1 --quiet --presets " +
      presets.string() + " --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out;
  for (const char* file : {"comparison.md", "comparison.csv", "fig1.csv", "report.md",
                           "authors/fig1.csv", "authors/report.md", "results.db"})
    EXPECT_TRUE(fs::exists(out / file)) << file;
  const std::string csv = attnrank::testing::read_file(out / "comparison.csv");
  EXPECT_EQ(attnrank::testing::count_lines(csv), 3) << csv;  // header + ranks 1 and 4
  EXPECT_NE(attnrank::testing::read_file(out / "authors/fig1.csv").find(kBestEpochTrainLoss),
            std::string::npos);
  // A second call resumes: nothing retrains.
  const auto again = attnrank::testing::run_attnrank(
      "reproduce fig1 --scale small --protocol both --jobs 1 --quiet --presets " +
      presets.string() + " --out " + out.string());
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(attnrank::testing::read_file(out / "comparison.csv"), csv);

  const auto bad = attnrank::testing::run_attnrank("reproduce fig1 --protocol faithful --presets " +
                                                   presets.string() + " --out " + out.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("attnrank: error: --protocol 'faithful'"), std::string::npos) << bad.err;
}

TEST(Fidelity, TheoryRandomFeaturesAcceptsThePublishedDirections) {
  const fs::path dir = attnrank::testing::fresh_run_dir("fidelity", "random_features");
  for (const char* directions : {"authors", "authors-normalised"}) {
    const auto result = attnrank::testing::run_attnrank(
        std::string("theory random-features --dims 8 --max-heads 64 --trials 2 --check-heads 0 "
                    "--directions ") +
        directions + " --out " + (dir / directions).string());
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(attnrank::testing::read_file(dir / directions / "random_features.json")
                  .find(std::string("\"directions\": \"") + directions + "\""),
              std::string::npos);
  }
  const auto bad = attnrank::testing::run_attnrank(
      "theory random-features --directions published --out " + (dir / "bad").string());
  EXPECT_EQ(bad.exit_code, 2);
}

TEST(Fidelity, StoppedAndResumedReplayRunKeepsItsStatistic) {
  // The epoch accumulators travel in the checkpoint: stopped mid-epoch twice, the
  // resumed run reports the uninterrupted run's statistic, bit for bit.
  const RunConfig config =
      tiny({"train.steps=60", "train.data=replay", "train.epoch_batches=7", "train.log_every=5",
            "train.threads=1", "train.checkpoint_every=off"});
  const fs::path reference = attnrank::testing::fresh_run_dir("fidelity", "resume_reference");
  const TrainSummary whole = train(config, reference.string(), TrainOptions{});
  const fs::path dir = attnrank::testing::fresh_run_dir("fidelity", "resume_stopped");
  for (int polls_allowed : {17, 23}) {
    TrainOptions options;
    int polls = 0;
    options.should_stop = [&] { return ++polls > polls_allowed; };
    ASSERT_EQ(train(config, dir.string(), options).status, "interrupted");
  }
  const TrainSummary resumed = train(config, dir.string(), TrainOptions{});
  ASSERT_EQ(resumed.status, "done");
  EXPECT_EQ(resumed.resumed_from_step, 40);
  ASSERT_TRUE(whole.final_metrics.contains(kBestEpochTrainLoss));
  EXPECT_EQ(resumed.final_metrics.at(kBestEpochTrainLoss),
            whole.final_metrics.at(kBestEpochTrainLoss));
  EXPECT_EQ(attnrank::testing::read_file(reference / "metrics.csv"),
            attnrank::testing::read_file(dir / "metrics.csv"));
}
