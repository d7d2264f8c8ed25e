// Monte-Carlo test error of a hand-built model on a point task, shared by the theory tools
// that check a closed form through the engine's forward pass.
#pragma once
#include <cstdint>

#include "attnrank/nn/model.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/theory/random_features.h"

namespace attnrank {

// Mean over `samples` test samples (the test stream of `seed`) of each sample's loss: the
// squared error summed over coordinates, averaged over the sample's scored tokens. The
// standard error is over samples.
MonteCarloEstimate task_mse_monte_carlo(Transformer<double>& model, const PointTask& task,
                                        int64_t samples, uint64_t seed);

// Mean and standard error from running sums of per-sample values.
MonteCarloEstimate estimate_from_sums(double sum, double sum_squares, int64_t samples);

}  // namespace attnrank
