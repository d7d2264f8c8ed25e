// Fact 1 (Amsel et al.): one full-rank head with W_Q W_K^T = -beta*I and
// W_V W_O = I computes the farthest point as beta -> infinity. The construction
// lives in the theory module (fact1_mse); here: the error falls monotonically to ~0.
#include <gtest/gtest.h>

#include "attnrank/theory/fact1.h"

using namespace attnrank;

TEST(Fact1, FarthestErrorFallsTowardZeroAsBetaGrows) {
  for (int dim : {4, 16}) {
    double previous =
        fact1_mse(TaskKind::kFarthest, dim, 8, AttentionKind::kSoftmax, 0.0, 128, 11).mean;
    EXPECT_GT(previous, 0.5) << "beta = 0 averages the points";
    for (double beta : {1.0, 10.0, 100.0, 1e3, 1e4, 1e5}) {
      const double error =
          fact1_mse(TaskKind::kFarthest, dim, 8, AttentionKind::kSoftmax, beta, 128, 11).mean;
      EXPECT_LT(error, previous) << "dim " << dim << " beta " << beta;
      previous = error;
    }
    EXPECT_LT(previous, 1e-3) << "dim " << dim;
  }
}
