#include "metrics_log.h"

#include <fmt/core.h>

namespace attnrank {

bool evaluates_at(const TrainConfig& train, int64_t steps_done) {
  return train.eval_every > 0 && (steps_done % train.eval_every == 0 || steps_done == train.steps);
}

std::string tensorboard_tag(const std::string& metric) {
  for (const std::string prefix : {"test_", "validation_"})
    if (metric.starts_with(prefix))
      return prefix.substr(0, prefix.size() - 1) + "/" + metric.substr(prefix.size());
  return metric;
}

Scalars tensorboard_scalars(const MetricsRow& row,
                            const std::vector<std::string>& validation_names) {
  Scalars scalars = {{"train/loss", static_cast<float>(row.train_loss)},
                     {"train/lr", static_cast<float>(row.lr)},
                     {"train/grad_norm", static_cast<float>(row.grad_norm)}};
  for (size_t i = 0; i < row.validation.size() && i < validation_names.size(); ++i)
    scalars.emplace_back(tensorboard_tag(validation_names[i]),
                         static_cast<float>(row.validation[i]));
  return scalars;
}

}  // namespace attnrank
