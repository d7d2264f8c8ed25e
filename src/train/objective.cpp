// Objective factory and the pieces every objective shares.
#include "attnrank/train/objective.h"

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

void forward_batch(Transformer<float>& model, const Batch& batch, float* outputs) {
  if (model.sequence().input == InputKind::kTokens) {
    model.forward_tokens(batch.tokens.data(), batch.size, outputs);
  } else {
    model.forward(batch.inputs.data(), batch.size, outputs);
  }
}

}  // namespace attnrank
