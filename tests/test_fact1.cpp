// Fact 1 (Amsel et al.): one full-rank head with W_Q W_K^T = -beta*I and
// W_V W_O = I computes the farthest point as beta -> infinity.
#include <gtest/gtest.h>

#include <cmath>

#include "attnrank/model.h"
#include "attnrank/tasks.h"

using namespace attnrank;

namespace {

double farthest_error(double beta, int dim, int points) {
  ModelConfig m;
  m.dim = dim;
  m.heads = 1;
  m.rank = dim;
  m.value_rank = dim;
  m.ffn = 0;
  m.norm = "none";
  m.residual = false;
  m.bias = false;
  TaskConfig t;
  t.name = "farthest";
  t.points = points;
  const PointTask task(t, dim);
  Transformer<double> model(m, task.sequence());
  // in_proj rows: [W_Q^T; W_K^T; W_V^T]; scores = q.k / sqrt(r), so scale q by sqrt(r).
  double* in = model.parameter("layers.0.attn.in_proj_weight");
  double* out = model.parameter("layers.0.attn.out_proj_weight");
  for (int i = 0; i < dim; ++i) {
    in[i * dim + i] = -beta * std::sqrt(double(dim));
    in[(dim + i) * dim + i] = 1.0;
    in[(2 * dim + i) * dim + i] = 1.0;
    out[i * dim + i] = 1.0;
  }
  const int batch = 128;
  std::vector<double> x(batch * points * dim), target(x.size()), y(x.size());
  task.generate(11, Stream::kTest, 0, batch, x.data(), target.data());
  model.forward(x.data(), batch, y.data());
  return squared_error_loss(y.data(), target.data(), batch, points, dim, 0, points,
                            static_cast<double*>(nullptr));
}

}  // namespace

TEST(Fact1, ErrorFallsTowardZeroAsBetaGrows) {
  for (int dim : {4, 16}) {
    double previous = farthest_error(0.0, dim, 8);
    EXPECT_GT(previous, 0.5) << "beta = 0 averages the points";
    for (double beta : {1.0, 10.0, 100.0, 1e3, 1e4, 1e5}) {
      const double error = farthest_error(beta, dim, 8);
      EXPECT_LT(error, previous) << "dim " << dim << " beta " << beta;
      previous = error;
    }
    EXPECT_LT(previous, 1e-3) << "dim " << dim;
  }
}
