// Monte-Carlo MSE of a weighted mixture of rank-1 hard-attention heads, through the
// engine's own forward pass, to check the closed forms end to end.
#include <algorithm>
#include <cmath>

#include "attnrank/core/error.h"
#include "attnrank/nn/model.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/theory/random_features.h"
#include "attnrank/train/objective.h"
#include "bare_attention.h"
#include "task_monte_carlo.h"

namespace attnrank {

MonteCarloEstimate head_mixture_mse_monte_carlo(const RandomHeads& heads,
                                                const std::vector<double>& weights, int64_t samples,
                                                uint64_t seed) {
  const int count = heads.count(), dim = heads.dim;
  if (static_cast<int>(weights.size()) != count)
    throw ConfigError("monte carlo: one output weight per head is needed");
  TaskConfig task_config;
  task_config.name = TaskKind::kNearest;
  task_config.points = 2;
  task_config.queries = 1;
  const PointTask task(task_config, dim);
  const ModelConfig model_config = bare_attention(dim, count, 1, dim);
  SequenceSpec sequence = point_sequence(task);
  sequence.kind = AttentionKind::kHardmax;
  Transformer<double> model(model_config, sequence);

  // in_proj rows: [W_Q^T (row h = q_h); W_K^T (row h = k_h); W_V^T (head h: identity)].
  double* in = model.parameter("layers.0.attn.in_proj_weight");
  double* out = model.parameter("layers.0.attn.out_proj_weight");
  const size_t width = dim, context = static_cast<size_t>(count) * dim;
  for (int h = 0; h < count; ++h) {
    std::copy_n(heads.queries.data() + static_cast<size_t>(h) * dim, dim, in + h * width);
    std::copy_n(heads.keys.data() + static_cast<size_t>(h) * dim, dim,
                in + (static_cast<size_t>(count) + h) * width);
    for (int e = 0; e < dim; ++e) {
      in[(2 * static_cast<size_t>(count) + static_cast<size_t>(h) * dim + e) * width + e] = 1.0;
      out[e * context + static_cast<size_t>(h) * dim + e] = weights[h];  // column block h = a_h I
    }
  }

  return task_mse_monte_carlo(model, task, samples, seed);
}

}  // namespace attnrank
