// Fact 1 through the engine: hard attention is exact for beta > 0, softmax error ~ 1/beta.
#include <gtest/gtest.h>

#include "attnrank/theory/fact1.h"

using namespace attnrank;

TEST(TheoryFact1, HardAttentionIsExactForAnyPositiveBeta) {
  for (const TaskKind task : {TaskKind::kNearest, TaskKind::kFarthest}) {
    for (double beta : {1e-3, 1.0, 100.0}) {
      const MonteCarloEstimate mc = fact1_mse(task, 8, 6, AttentionKind::kHardmax, beta, 2000, 1);
      EXPECT_EQ(mc.mean, 0.0) << name_of(task) << " beta " << beta;
    }
    // beta = 0 ties every key: argmax takes the first point, wrong most of the time.
    EXPECT_GT(fact1_mse(task, 8, 6, AttentionKind::kHardmax, 0.0, 2000, 1).mean, 0.5);
  }
}

TEST(TheoryFact1, SoftmaxErrorFallsLikeOneOverBeta) {
  for (const TaskKind task : {TaskKind::kNearest, TaskKind::kFarthest}) {
    const double at100 = fact1_mse(task, 8, 4, AttentionKind::kSoftmax, 100.0, 20000, 2).mean;
    const double at1000 = fact1_mse(task, 8, 4, AttentionKind::kSoftmax, 1000.0, 20000, 2).mean;
    EXPECT_GT(at100, 0.0);
    EXPECT_NEAR(at100 / at1000, 10.0, 3.0) << name_of(task);  // same samples: ratio close to 10
  }
}
