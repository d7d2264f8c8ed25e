// Objective factory and the pieces every objective shares.
#include "attnrank/train/objective.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "attnrank/core/error.h"
#include "objectives.h"

namespace attnrank {

double Evaluation::metric(const std::string& name) const {
  for (const auto& [key, value] : metrics)
    if (key == name) return value;
  return NAN;
}

std::unique_ptr<Objective> make_objective(const RunConfig& config) {
  switch (config.task.name) {
    case TaskKind::kFarthest:
    case TaskKind::kNearest:
      return make_point_objective(config);
    case TaskKind::kLm:
    case TaskKind::kMlm:
      return make_text_objective(config);
    case TaskKind::kIclLinear:
      return make_icl_objective(config);
  }
  throw std::logic_error("make_objective: a task kind without an objective");
}

uint64_t training_batch_index(const TrainConfig& train, int64_t step) {
  if (train.data == DataMode::kReplay)
    return static_cast<uint64_t>(step % std::max(1, train.epoch_batches));
  return static_cast<uint64_t>(step);
}

void BestEpochLoss::add(double loss) {
  sum_ += loss;
  if (++in_epoch_ < epoch_steps_) return;
  const double mean = sum_ / epoch_steps_;
  if (std::isnan(best_) || mean < best_) best_ = mean;
  ++epochs_;
  in_epoch_ = 0;
  sum_ = 0.0;
}

void BestEpochLoss::save(std::map<std::string, double>& loop) const {
  loop["best_epoch.in_epoch"] = in_epoch_;
  loop["best_epoch.sum"] = sum_;
  loop["best_epoch.best"] = best_;
  loop["best_epoch.epochs"] = static_cast<double>(epochs_);
}

void BestEpochLoss::restore(const std::map<std::string, double>& loop) {
  const auto in_epoch = loop.find("best_epoch.in_epoch");
  if (in_epoch == loop.end()) return;
  in_epoch_ = static_cast<int>(in_epoch->second);
  sum_ = loop.at("best_epoch.sum");
  best_ = loop.at("best_epoch.best");
  epochs_ = static_cast<int64_t>(loop.at("best_epoch.epochs"));
}

void forward_batch(Transformer<float>& model, const Batch& batch, float* outputs) {
  if (model.sequence().input == InputKind::kTokens) {
    model.forward_tokens(batch.tokens.data(), batch.size, outputs);
  } else {
    model.forward(batch.inputs.data(), batch.size, outputs);
  }
}

}  // namespace attnrank
