// Objective factory and the pieces every objective shares.
#include "attnrank/train/objective.h"

#include <cmath>

#include "attnrank/core/error.h"
#include "objectives.h"

namespace attnrank {

double Evaluation::metric(const std::string& name) const {
  for (const auto& [key, value] : metrics)
    if (key == name) return value;
  return NAN;
}

std::unique_ptr<Objective> make_objective(const RunConfig& config) {
  const std::string& name = config.task.name;
  if (name == "farthest" || name == "nearest") return make_point_objective(config);
  if (name == "lm" || name == "mlm") return make_text_objective(config);
  if (name == "icl-linear") return make_icl_objective(config);
  throw ConfigError("task.name: unknown task '" + name + "'");
}

void forward_batch(Transformer<float>& model, const Batch& batch, float* outputs) {
  if (model.sequence().input == InputKind::kTokens) {
    model.forward_tokens(batch.tokens.data(), batch.size, outputs);
  } else {
    model.forward(batch.inputs.data(), batch.size, outputs);
  }
}

}  // namespace attnrank
