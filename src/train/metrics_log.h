// When a metrics row carries a held-out evaluation, and the TensorBoard scalars of
// a row (its metrics.csv line: run_directory.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attnrank/config/run_config.h"
#include "attnrank/core/tfevents.h"
#include "attnrank/train/run_directory.h"

namespace attnrank {

// Whether the metrics row at `steps_done` carries a held-out evaluation: every
// train.eval_every steps (a multiple of log_every) and at the last step.
bool evaluates_at(const TrainConfig& train, int64_t steps_done);

// The TensorBoard tag of a held-out metric: test_NAME -> test/NAME,
// validation_NAME -> validation/NAME.
std::string tensorboard_tag(const std::string& metric);
// train/loss, train/lr, train/grad_norm and validation/NAME for validation_NAME.
Scalars tensorboard_scalars(const MetricsRow& row,
                            const std::vector<std::string>& validation_names);

}  // namespace attnrank
