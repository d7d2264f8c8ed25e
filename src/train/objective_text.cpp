// Language modelling on real text (lm: causal, mlm: masked) as an objective: byte
// tokens in, 256 logits out, cross-entropy; held-out metrics over the whole
// validation and test splits.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "attnrank/nn/layers.h"
#include "attnrank/tasks/text_task.h"
#include "objectives.h"

namespace attnrank {

namespace {

class TextModelObjective final : public Objective {
 public:
  explicit TextModelObjective(const RunConfig& config)
      : task_(TextCorpus::load(config.task.corpus),
              config.task.name == TaskKind::kMlm ? TextObjective::kMlm : TextObjective::kLm,
              config.task.length, config.task.mask_rate) {}

  SequenceSpec sequence() const override {
    SequenceSpec spec;
    spec.tokens = task_.tokens();
    spec.mask =
        task_.objective() == TextObjective::kLm ? AttentionMask::kCausal : AttentionMask::kFull;
    spec.input = InputKind::kTokens;
    spec.input_width = task_.vocabulary();
    spec.output = OutputKind::kLinear;
    spec.output_width = kByteTokens;
    return spec;
  }
  // Uniform over the 256 bytes.
  double trivial_loss() const override { return std::log(double(kByteTokens)); }
  bool squared_error() const override { return false; }

  void training_batch(uint64_t seed, uint64_t index, int sequences, Batch& batch) const override {
    resize(sequences, batch);
    task_.generate(seed, index, sequences, batch.tokens.data(), batch.labels.data());
  }

  double loss(const Batch& batch, const float* outputs, float* d_outputs) const override {
    return cross_entropy(outputs, batch.labels.data(), batch.size * task_.tokens(), kByteTokens,
                         d_outputs)
        .mean();
  }

  // Every window of the validation and test splits, in batches of `sequences`
  // (the last padded with unscored positions). `batches` does not apply.
  Evaluation evaluate(Transformer<float>& model, uint64_t seed, int /*batches*/,
                      int sequences) const override {
    Evaluation evaluation;
    for (const TextSplit split : {TextSplit::kTest, TextSplit::kValidation}) {
      const std::string prefix = split == TextSplit::kTest ? "test_" : "validation_";
      const Totals totals = evaluate_split(model, split, seed, sequences);
      const double nats_per_byte = totals.nats / static_cast<double>(totals.scored.tokens);
      const double bits = totals.nats / std::numbers::ln2;
      evaluation.metrics.emplace_back(prefix + "bits_per_char",
                                      bits / static_cast<double>(totals.scored.characters));
      evaluation.metrics.emplace_back(prefix + "loss", nats_per_byte);
      evaluation.metrics.emplace_back(prefix + "perplexity", std::exp(nats_per_byte));
      evaluation.metrics.emplace_back(prefix + "bits_per_byte",
                                      bits / static_cast<double>(totals.scored.tokens));
    }
    return evaluation;
  }

  std::vector<std::string> validation_names() const override {
    return {"validation_bits_per_char", "validation_loss"};
  }

  // The whole validation split, as in the final evaluation; `batches` does not apply.
  std::vector<double> validate(Transformer<float>& model, uint64_t seed, int /*batches*/,
                               int sequences) const override {
    const Totals totals = evaluate_split(model, TextSplit::kValidation, seed, sequences);
    return {totals.nats / std::numbers::ln2 / static_cast<double>(totals.scored.characters),
            totals.nats / static_cast<double>(totals.scored.tokens)};
  }

 private:
  struct Totals {
    double nats = 0.0;
    ScoredCount scored;
  };

  void resize(int sequences, Batch& batch) const {
    const size_t positions = static_cast<size_t>(sequences) * task_.tokens();
    batch.size = sequences;
    batch.tokens.resize(positions);
    batch.labels.resize(positions);
  }

  Totals evaluate_split(Transformer<float>& model, TextSplit split, uint64_t seed,
                        int sequences) const {
    Totals totals;
    Batch batch;
    std::vector<float> logits(static_cast<size_t>(sequences) * task_.tokens() * kByteTokens);
    const size_t windows = task_.evaluation_windows(split);
    for (size_t first = 0; first < windows; first += sequences) {
      const int count = static_cast<int>(std::min<size_t>(sequences, windows - first));
      resize(sequences, batch);
      std::fill(batch.tokens.begin(), batch.tokens.end(), 0);
      std::fill(batch.labels.begin(), batch.labels.end(), kIgnoreLabel);
      task_.evaluation_batch(split, seed, first, count, batch.tokens.data(), batch.labels.data());
      forward_batch(model, batch, logits.data());
      totals.nats += cross_entropy(logits.data(), batch.labels.data(), sequences * task_.tokens(),
                                   kByteTokens, static_cast<float*>(nullptr))
                         .total;
      const ScoredCount scored = count_scored(batch.labels.data(), count, task_.tokens());
      totals.scored.tokens += scored.tokens;
      totals.scored.characters += scored.characters;
    }
    return totals;
  }

  TextTask task_;
};

}  // namespace

std::unique_ptr<Objective> make_text_objective(const RunConfig& config) {
  return std::make_unique<TextModelObjective>(config);
}

}  // namespace attnrank
