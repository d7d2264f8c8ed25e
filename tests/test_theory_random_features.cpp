// Random-features closed forms against brute-force sampling, and the three solvers (dense,
// prefix Cholesky, conjugate gradients) and the engine's forward pass against each other.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attnrank/core/rng.h"
#include "attnrank/core/vectors.h"
#include "attnrank/theory/random_features.h"

using namespace attnrank;

namespace {

// Brute force: sample (x_1, x_2, y), let each head pick its key by its own score, and
// average head_a . head_b and target . head_a.
struct SampledProducts {
  std::vector<double> gram, target;  // (H, H), (H)
  std::vector<double> gram_se, target_se;
};

SampledProducts sample_products(const RandomHeads& heads, int samples, uint64_t seed) {
  const int h_count = heads.count(), dim = heads.dim;
  SampledProducts out;
  out.gram.assign(h_count * h_count, 0.0);
  out.gram_se.assign(h_count * h_count, 0.0);
  out.target.assign(h_count, 0.0);
  out.target_se.assign(h_count, 0.0);
  Rng rng(seed);
  std::vector<double> x1(dim), x2(dim), y(dim);
  std::vector<const double*> picked(h_count);
  for (int s = 0; s < samples; ++s) {
    random_unit_vector(rng, x1.data(), dim);
    random_unit_vector(rng, x2.data(), dim);
    random_unit_vector(rng, y.data(), dim);
    const double* nearest =
        dot(y.data(), x1.data(), dim) >= dot(y.data(), x2.data(), dim) ? x1.data() : x2.data();
    for (int h = 0; h < h_count; ++h) {
      const double* q = heads.queries.data() + h * dim;
      const double* k = heads.keys.data() + h * dim;
      const double yq = dot(y.data(), q, dim);
      picked[h] =
          yq * dot(k, x1.data(), dim) >= yq * dot(k, x2.data(), dim) ? x1.data() : x2.data();
    }
    for (int a = 0; a < h_count; ++a) {
      const double t = dot(nearest, picked[a], dim);
      out.target[a] += t;
      out.target_se[a] += t * t;
      for (int b = 0; b < h_count; ++b) {
        const double g = dot(picked[a], picked[b], dim);
        out.gram[a * h_count + b] += g;
        out.gram_se[a * h_count + b] += g * g;
      }
    }
  }
  auto finish = [samples](std::vector<double>& mean, std::vector<double>& se) {
    for (size_t i = 0; i < mean.size(); ++i) {
      mean[i] /= samples;
      se[i] = std::sqrt(std::max(0.0, se[i] / samples - mean[i] * mean[i]) / samples);
    }
  };
  finish(out.gram, out.gram_se);
  finish(out.target, out.target_se);
  return out;
}

}  // namespace

TEST(RandomFeatures, GramAndTargetClosedFormsMatchSampling) {
  for (HeadDirections directions : {HeadDirections::kIndependent, HeadDirections::kTied}) {
    const int dim = 5;
    const RandomHeads heads = draw_random_heads(dim, 4, 3, 0, directions);
    const HeadTargetProduct b(dim);
    const std::vector<double> b_vec = head_target_vector(heads, b);
    const SampledProducts sampled = sample_products(heads, 200000, 17);
    for (int a = 0; a < 4; ++a) {
      EXPECT_NEAR(b_vec[a], sampled.target[a], 5 * sampled.target_se[a] + 1e-12) << "head " << a;
      for (int c = 0; c < 4; ++c) {
        const double closed =
            head_gram_entry(dot(&heads.queries[a * dim], &heads.queries[c * dim], dim),
                            dot(&heads.keys[a * dim], &heads.keys[c * dim], dim));
        EXPECT_NEAR(closed, sampled.gram[a * 4 + c], 5 * sampled.gram_se[a * 4 + c] + 1e-12)
            << "entry " << a << "," << c;
      }
    }
  }
}

TEST(RandomFeatures, TiedHeadsCorrelateWithTheTarget) {
  // q = k: the vote agrees with the truth with probability 1/2 + E|asin(t)|/pi > 1/2.
  for (int dim : {3, 16, 64}) {
    const HeadTargetProduct b(dim);
    EXPECT_GT(b.vote_correlation(1.0), 0.0);
    EXPECT_NEAR(b.vote_correlation(0.0), 0.0, 1e-15);  // odd series
    EXPECT_LT(b.error_bound(), 1e-7);
  }
}

TEST(RandomFeatures, PrefixCholeskyMatchesDenseSolvesForEveryPrefix) {
  const int dim = 8, count = 300;  // > one Cholesky block
  const RandomHeads heads = draw_random_heads(dim, count, 5, 1, HeadDirections::kIndependent);
  const HeadTargetProduct b(dim);
  const PrefixCurve curve = optimal_mse_by_prefix(heads, b);
  ASSERT_EQ(static_cast<int>(curve.mse.size()), count);
  EXPECT_EQ(curve.dropped, 0);
  for (int h : {1, 2, 7, 64, 193, 300}) {
    RandomHeads prefix = heads;
    prefix.queries.resize(static_cast<size_t>(h) * dim);
    prefix.keys.resize(static_cast<size_t>(h) * dim);
    const std::vector<double> a = optimal_output_weights(prefix, b);
    EXPECT_NEAR(curve.mse[h - 1], closed_form_mse(prefix, b, a), 1e-9) << "H = " << h;
  }
  for (int h = 1; h < count; ++h) EXPECT_LE(curve.mse[h], curve.mse[h - 1] + 1e-12);
  EXPECT_LT(curve.mse.back(), curve.mse.front());
}

TEST(RandomFeatures, ConjugateGradientMatchesCholesky) {
  const int dim = 16, count = 700;
  const RandomHeads heads = draw_random_heads(dim, count, 9, 0, HeadDirections::kIndependent);
  const HeadTargetProduct b(dim);
  const PrefixCurve curve = optimal_mse_by_prefix(heads, b);
  const ConjugateGradientResult cg = optimal_mse_conjugate_gradient(heads, b, 1e-10, 5000);
  EXPECT_TRUE(cg.converged);
  EXPECT_NEAR(cg.mse, curve.mse.back(), 1e-8);
}

TEST(RandomFeatures, RepeatedHeadsAreDropped) {
  RandomHeads heads = draw_random_heads(6, 5, 2, 0, HeadDirections::kIndependent);
  // Append copies of heads 1 and 3: their pivots are zero.
  for (int h : {1, 3}) {
    heads.queries.insert(heads.queries.end(), heads.queries.begin() + h * 6,
                         heads.queries.begin() + (h + 1) * 6);
    heads.keys.insert(heads.keys.end(), heads.keys.begin() + h * 6,
                      heads.keys.begin() + (h + 1) * 6);
  }
  const HeadTargetProduct b(6);
  const PrefixCurve curve = optimal_mse_by_prefix(heads, b);
  EXPECT_EQ(curve.dropped, 2);
  EXPECT_NEAR(curve.mse[6], curve.mse[4], 1e-12);
}

TEST(RandomFeatures, EngineMonteCarloAgreesWithClosedForm) {
  const int dim = 8, count = 24;
  const RandomHeads heads = draw_random_heads(dim, count, 11, 0, HeadDirections::kIndependent);
  const HeadTargetProduct b(dim);
  const std::vector<double> a = optimal_output_weights(heads, b);
  const double closed = closed_form_mse(heads, b, a);
  const MonteCarloEstimate mc = head_mixture_mse_monte_carlo(heads, a, 60000, 4);
  EXPECT_NEAR(mc.mean, closed, 4 * mc.standard_error);
  EXPECT_LT(mc.standard_error, 0.01);
  // Weights that are not optimal are predicted just as well.
  std::vector<double> uniform(count, 1.0 / count);
  const MonteCarloEstimate mc_uniform = head_mixture_mse_monte_carlo(heads, uniform, 60000, 5);
  EXPECT_NEAR(mc_uniform.mean, closed_form_mse(heads, b, uniform), 4 * mc_uniform.standard_error);
}
