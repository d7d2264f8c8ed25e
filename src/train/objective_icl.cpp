// In-context linear regression as an objective: (x, y) tokens read in linearly, one
// value read out per position, the normalised squared error at the x positions;
// held-out: the error after each number of in-context examples, next to the
// minimum-norm least-squares fit of the same sequences; during training, the
// model's errors on the validation stream.
#include <fmt/core.h>

#include <string>
#include <vector>

#include "attnrank/tasks/icl_linear.h"
#include "objectives.h"

namespace attnrank {

namespace {

IclLinearConfig icl_config(const TaskConfig& task) {
  IclLinearConfig config;
  config.features = task.features;
  config.examples = task.examples;
  config.noise = task.noise;
  return config;
}

class IclObjective final : public Objective {
 public:
  explicit IclObjective(const RunConfig& config) : task_(icl_config(config.task)) {}

  SequenceSpec sequence() const override {
    SequenceSpec spec;
    spec.tokens = task_.tokens();
    spec.mask = AttentionMask::kCausal;
    spec.input = InputKind::kLinear;
    spec.input_width = task_.input_width();
    spec.output = OutputKind::kLinear;
    spec.output_width = 1;
    return spec;
  }
  double trivial_loss() const override { return task_.trivial_loss(); }
  bool squared_error() const override { return true; }

  void training_batch(uint64_t seed, uint64_t index, int sequences, Batch& batch) const override {
    fill(seed, Stream::kTrain, index, sequences, batch);
  }

  double loss(const Batch& batch, const float* outputs, float* d_outputs) const override {
    return icl_loss(task_, outputs, batch.targets.data(), batch.size, d_outputs);
  }

  Evaluation evaluate(Transformer<float>& model, uint64_t seed, int batches,
                      int sequences) const override {
    IclErrorCurve model_curve(task_), least_squares(task_);
    const double mse =
        held_out(model, seed, Stream::kTest, batches, sequences, model_curve, &least_squares);
    const std::vector<double> ours = model_curve.mean();
    const std::vector<double> reference = least_squares.mean();
    const int k = task_.examples();
    Evaluation evaluation;
    evaluation.metrics = {{"test_mse", mse},
                          {"test_mse_query", ours[k]},
                          {"test_least_squares_query", reference[k]},
                          {"test_least_squares_mean", mean_of(reference)}};
    std::string csv = "examples,model_mse,least_squares_mse,least_squares_expected\n";
    for (int i = 0; i <= k; ++i)
      csv += fmt::format("{},{:.9g},{:.9g},{:.9g}\n", i, ours[i], reference[i],
                         icl_least_squares_expected_error(task_.features(), task_.noise(), i));
    evaluation.files.emplace_back("icl_curve.csv", csv);
    return evaluation;
  }

  std::vector<std::string> validation_names() const override {
    return {"validation_mse", "validation_mse_query"};
  }

  // The model's errors only: the least-squares reference does not change in training.
  std::vector<double> validate(Transformer<float>& model, uint64_t seed, int batches,
                               int sequences) const override {
    IclErrorCurve model_curve(task_);
    const double mse =
        held_out(model, seed, Stream::kValidation, batches, sequences, model_curve, nullptr);
    return {mse, model_curve.mean()[static_cast<size_t>(task_.examples())]};
  }

 private:
  // Mean loss over `batches` batches of `stream`; the model's error per number of
  // examples into `model_curve`, the least-squares fit's into `least_squares`.
  double held_out(Transformer<float>& model, uint64_t seed, Stream stream, int batches,
                  int sequences, IclErrorCurve& model_curve, IclErrorCurve* least_squares) const {
    return held_out_mean_loss(
        *this, model, batches,
        [&](uint64_t index, Batch& batch) { fill(seed, stream, index, sequences, batch); },
        [&](const Batch& batch, const std::vector<float>& outputs) {
          add_icl_errors(task_, outputs.data(), batch.targets.data(), sequences, model_curve);
          if (least_squares != nullptr)
            add_least_squares_errors(task_, batch.inputs.data(), batch.targets.data(), sequences,
                                     *least_squares);
        });
  }

  static double mean_of(const std::vector<double>& values) {
    double sum = 0.0;
    for (double v : values) sum += v;
    return sum / static_cast<double>(values.size());
  }

  void fill(uint64_t seed, Stream stream, uint64_t index, int sequences, Batch& batch) const {
    const size_t positions = static_cast<size_t>(sequences) * task_.tokens();
    batch.size = sequences;
    batch.inputs.resize(positions * task_.input_width());
    batch.targets.resize(positions);
    task_.generate(seed, stream, index, sequences, batch.inputs.data(), batch.targets.data());
  }

  IclLinearTask task_;
};

}  // namespace

std::unique_ptr<Objective> make_icl_objective(const RunConfig& config) {
  return std::make_unique<IclObjective>(config);
}

}  // namespace attnrank
