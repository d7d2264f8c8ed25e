#include "attnrank/theory/fact1.h"

#include <cmath>

#include "attnrank/core/error.h"
#include "attnrank/nn/model.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/train/objective.h"
#include "bare_attention.h"
#include "task_monte_carlo.h"

namespace attnrank {

MonteCarloEstimate fact1_mse(TaskKind task_name, int dim, int points, AttentionKind kind,
                             double beta, int64_t samples, uint64_t seed) {
  TaskConfig task_config;
  task_config.name = task_name;
  task_config.points = points;
  task_config.queries = 1;
  const PointTask task(task_config, dim);
  const ModelConfig model_config = bare_attention(dim, 1, dim, dim);
  SequenceSpec sequence = point_sequence(task);
  sequence.kind = kind;
  Transformer<double> model(model_config, sequence);
  // in_proj rows [W_Q^T; W_K^T; W_V^T]. Scores are q.k / sqrt(r), so W_Q = s sqrt(r) I and
  // W_K = I give the bilinear form s I with s = +beta (nearest) or -beta (farthest).
  const double sign = task_name == TaskKind::kNearest ? 1.0 : -1.0;
  double* in = model.parameter("layers.0.attn.in_proj_weight");
  double* out = model.parameter("layers.0.attn.out_proj_weight");
  for (int i = 0; i < dim; ++i) {
    in[static_cast<size_t>(i) * dim + i] = sign * beta * std::sqrt(double(dim));
    in[static_cast<size_t>(dim + i) * dim + i] = 1.0;
    in[static_cast<size_t>(2 * dim + i) * dim + i] = 1.0;
    out[static_cast<size_t>(i) * dim + i] = 1.0;
  }
  return task_mse_monte_carlo(model, task, samples, seed);
}

}  // namespace attnrank
