// The low-rank bottleneck: the explicit d_p >= n construction reproduces P through the
// engine's attention, and optimisation cannot when d_p < n.
#include <gtest/gtest.h>

#include <cmath>

#include "attnrank/theory/bottleneck.h"

using namespace attnrank;

TEST(Bottleneck, RandomTargetIsPositiveAndColumnStochastic) {
  const BottleneckProblem p = random_bottleneck_problem(6, 10, 1, 0);
  for (int j = 0; j < 6; ++j) {
    double sum = 0.0;
    for (int i = 0; i < 6; ++i) {
      EXPECT_GT(p.target[i * 6 + j], 0.0);
      sum += p.target[i * 6 + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-14);
  }
}

TEST(Bottleneck, ExactConstructionReproducesTheTarget) {
  for (int n : {2, 5, 8}) {
    for (int extra : {-1, 0, 2}) {  // d_p = n - 1 suffices: softmax ignores per-query shifts
      const BottleneckProblem p = random_bottleneck_problem(n, n + 7, 3, n);
      const HeadWeights head = exact_bottleneck_head(p, n + extra);
      EXPECT_LT(max_abs_distance(head_context_mapping(p, head), p.target), 1e-12)
          << "n " << n << " d_p " << n + extra;
      EXPECT_LT(max_abs_distance(head_context_mapping_float(p, head), p.target), 1e-6)
          << "float, n " << n;
    }
  }
  const BottleneckProblem p = random_bottleneck_problem(4, 6, 1, 0);
  EXPECT_THROW(exact_bottleneck_head(p, 2), std::runtime_error);
}

TEST(Bottleneck, FitErrorIsPositiveBelowNMinusOneAndVanishesFromThere) {
  const int n = 6;
  const BottleneckProblem p = random_bottleneck_problem(n, 12, 5, 0);
  BottleneckFitOptions options;
  options.restarts = 3;
  options.max_iterations = 2000;
  const double one = fit_bottleneck_head(p, 1, options).frobenius_error;
  const double three = fit_bottleneck_head(p, 3, options).frobenius_error;
  const double below = fit_bottleneck_head(p, n - 2, options).frobenius_error;
  const double shifted = fit_bottleneck_head(p, n - 1, options).frobenius_error;
  const double full = fit_bottleneck_head(p, n, options).frobenius_error;
  EXPECT_GT(one, 0.05);
  EXPECT_GT(three, 1e-4);
  EXPECT_LT(three, one);
  EXPECT_GT(below, 1e-5);
  EXPECT_LT(shifted, 1e-8);
  EXPECT_LT(full, 1e-8);
}

TEST(Bottleneck, FitFromRandomStartsAloneReachesTheTarget) {
  // The search itself, not only its SVD start, finds an exact head when d_p >= n.
  const int n = 4;
  const BottleneckProblem p = random_bottleneck_problem(n, 8, 9, 1);
  BottleneckFitOptions options;
  options.restarts = 2;
  options.svd_start = false;
  options.max_iterations = 4000;
  options.seed = 3;
  EXPECT_LT(fit_bottleneck_head(p, n + 1, options).max_error, 1e-6);
  EXPECT_GT(fit_bottleneck_head(p, 1, options).max_error, 1e-3);
}
