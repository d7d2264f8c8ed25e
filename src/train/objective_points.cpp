// The point tasks (farthest, nearest) as an objective: vectors in and out, squared
// error, test MSE over test-stream batches, validation MSE over validation-stream
// batches.
#include <vector>

#include "attnrank/tasks/point_task.h"
#include "objectives.h"

namespace attnrank {

namespace {

class PointObjective final : public Objective {
 public:
  explicit PointObjective(const RunConfig& config) : task_(config.task, config.model.dim) {}

  SequenceSpec sequence() const override { return point_sequence(task_); }
  double trivial_loss() const override { return task_.trivial_mse(); }
  bool squared_error() const override { return true; }

  void training_batch(uint64_t seed, uint64_t index, int sequences, Batch& batch) const override {
    fill(seed, Stream::kTrain, index, sequences, batch);
  }

  double loss(const Batch& batch, const float* outputs, float* d_outputs) const override {
    return squared_error_loss(outputs, batch.targets.data(), batch.size, task_.tokens(),
                              task_.dim(), task_.loss_begin(), task_.loss_end(), d_outputs);
  }

  Evaluation evaluate(Transformer<float>& model, uint64_t seed, int batches,
                      int sequences) const override {
    return Evaluation{{{"test_mse", mean_loss(model, seed, Stream::kTest, batches, sequences)}},
                      {}};
  }

  std::vector<std::string> validation_names() const override { return {"validation_mse"}; }

  std::vector<double> validate(Transformer<float>& model, uint64_t seed, int batches,
                               int sequences) const override {
    return {mean_loss(model, seed, Stream::kValidation, batches, sequences)};
  }

 private:
  double mean_loss(Transformer<float>& model, uint64_t seed, Stream stream, int batches,
                   int sequences) const {
    return held_out_mean_loss(
        *this, model, batches,
        [&](uint64_t index, Batch& batch) { fill(seed, stream, index, sequences, batch); },
        [](const Batch&, const std::vector<float>&) {});
  }

  void fill(uint64_t seed, Stream stream, uint64_t index, int sequences, Batch& batch) const {
    const size_t values = static_cast<size_t>(sequences) * task_.tokens() * task_.dim();
    batch.size = sequences;
    batch.inputs.resize(values);
    batch.targets.resize(values);
    task_.generate(seed, stream, index, sequences, batch.inputs.data(), batch.targets.data());
  }

  PointTask task_;
};

}  // namespace

SequenceSpec point_sequence(const PointTask& task) {
  SequenceSpec spec;
  spec.tokens = task.tokens();
  if (task.config().name == TaskKind::kNearest) {
    spec.mask = AttentionMask::kPrefix;
    spec.key_limit = task.config().points;
  }
  return spec;
}

std::unique_ptr<Objective> make_point_objective(const RunConfig& config) {
  return std::make_unique<PointObjective>(config);
}

}  // namespace attnrank
