// The two-layer majority-vote construction through the engine's attention against a
// brute-force majority, and its error formula against sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attnrank/core/rng.h"
#include "attnrank/core/vectors.h"
#include "attnrank/theory/majority_vote.h"

using namespace attnrank;

namespace {}  // namespace

TEST(MajorityVote, NetworkOutputsThePointTheMajorityVotesFor) {
  const int dim = 7, heads = 9, batch = 300;
  const RandomHeads voters = draw_random_heads(dim, heads, 2, 0, HeadDirections::kTied);
  const MajorityVoteNetwork net = build_majority_vote(voters);
  Rng rng(5);
  std::vector<double> points(batch * 3 * dim), out(batch * dim);
  for (int i = 0; i < batch * 3; ++i) random_unit_vector(rng, points.data() + i * dim, dim);
  majority_vote_forward(net, points.data(), batch, out.data());
  int wrong = 0;
  for (int b = 0; b < batch; ++b) {
    const double* x1 = points.data() + (b * 3) * dim;
    const double* x2 = x1 + dim;
    const double* y = x2 + dim;
    int votes = 0;
    for (int h = 0; h < heads; ++h) {
      const double* q = voters.queries.data() + h * dim;
      votes += (dot(y, q, dim) > 0) == (dot(q, x1, dim) - dot(q, x2, dim) > 0) ? 1 : -1;
    }
    const double* expected = votes >= 0 ? x1 : x2;
    for (int e = 0; e < dim; ++e) ASSERT_DOUBLE_EQ(out[b * dim + e], expected[e]) << "sample " << b;
    wrong += (votes >= 0) != (dot(y, x1, dim) >= dot(y, x2, dim));
  }
  EXPECT_GT(wrong, 0);          // the construction is approximate...
  EXPECT_LT(wrong, batch / 2);  // ...but better than chance
}

TEST(MajorityVote, VoteAccuracyMatchesSampling) {
  const int dim = 5;
  Rng rng(8);
  std::vector<double> y(dim), u(dim), q(dim);
  random_unit_vector(rng, y.data(), dim);
  random_unit_vector(rng, u.data(), dim);
  const double t = dot(y.data(), u.data(), dim);
  const int samples = 200000;
  int right = 0;
  for (int s = 0; s < samples; ++s) {
    random_unit_vector(rng, q.data(), dim);
    right += ((dot(y.data(), q.data(), dim) > 0) == (dot(q.data(), u.data(), dim) > 0)) == (t > 0);
  }
  const double p = vote_accuracy(t);
  EXPECT_NEAR(double(right) / samples, p, 5 * std::sqrt(p * (1 - p) / samples));
  EXPECT_DOUBLE_EQ(vote_accuracy(0.0), 0.5);
  EXPECT_DOUBLE_EQ(vote_accuracy(1.0), 1.0);
}

TEST(MajorityVote, ExpectedErrorMatchesEngineMonteCarlo) {
  for (int heads : {1, 4, 15}) {
    const int dim = 8, draws = 24, per_draw = 4000;
    double sum = 0.0, sum_var = 0.0;
    for (int draw = 0; draw < draws; ++draw) {
      const RandomHeads voters = draw_random_heads(dim, heads, 11, draw, HeadDirections::kTied);
      const MonteCarloEstimate mc =
          majority_vote_mse_monte_carlo(build_majority_vote(voters), per_draw, 100 + draw);
      sum += mc.mean;
      sum_var += mc.standard_error * mc.standard_error;
    }
    const double mean = sum / draws, se = std::sqrt(sum_var) / draws;
    EXPECT_NEAR(mean, majority_vote_expected_mse(dim, heads), 4 * se + 0.01) << "H = " << heads;
  }
  // One head: P(wrong) = E_t[1/2 - |asin t| / pi]; d = 3 has t uniform, giving 1/2 - (pi/2 - 1)/pi.
  EXPECT_NEAR(majority_vote_expected_mse(3, 1),
              2 * (0.5 - (std::acos(-1.0) / 2 - 1) / std::acos(-1.0)), 1e-10);
}

TEST(MajorityVote, ErrorFallsLikeSqrtDOverHAndHeadsGrowPolynomially) {
  for (int dim : {16, 64}) {
    const double exact = majority_vote_expected_mse(dim, 20001);
    EXPECT_NEAR(exact / majority_vote_asymptotic_mse(dim, 20001), 1.0, 0.02) << "d " << dim;
  }
  const int h16 = majority_vote_heads_needed(16, 0.1), h64 = majority_vote_heads_needed(64, 0.1);
  EXPECT_GT(h64, 3 * h16);  // about linear in d ...
  EXPECT_LT(h64, 5 * h16);  // ... not exponential
  EXPECT_LE(majority_vote_expected_mse(64, h64), 0.1);
  EXPECT_GT(majority_vote_expected_mse(64, h64 - 2), 0.1);
}
