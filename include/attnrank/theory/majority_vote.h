// Depth helps for N = 2 (Amsel et al. 2024, arXiv 2407.16153, Theorem 5): a two-layer network of
// rank-1 hard-attention heads computes the nearest of two points by majority vote.
//
// Tokens x_1, x_2 (the points) and y (the query) carry two concatenated scratch coordinates:
// POS (+1 on x_1, -1 on x_2, 0 on y) and VOTE (0 on every token); width D = d + 2.
// Keys are the two points only (prefix mask); attention is hard (argmax, first on ties).
//   Layer 1: H heads of rank 1 with tied random unit directions q_h. Head h scores key x_j by
//     (y.q_h)(q_h.x_j), so it selects x_1 exactly when its vote
//     v_h = sign(y.q_h) sign(q_h.(x_1 - x_2)) is +1; its value is the key's POS (= v_h) and
//     its output adds v_h / H to VOTE. Residual connection: y leaves with VOTE = mean vote.
//   Layer 2: one head of rank 1 scores key x_j by VOTE(y) * POS(x_j), so it selects x_1
//     exactly when the mean vote is >= 0; its value/output copy the d point coordinates.
//     No residual: the network outputs the selected point.
// For fixed (y, u = (x_1 - x_2)/|x_1 - x_2|) and random q the votes are independent and
// agree with the truth sign(y.u) with probability p(t) = 1/2 + |asin t| / pi, t = <y, u>
// (the chance that a random hyperplane separates neither or both of y and u). Hence
//   P(wrong) = E_t[ P(Bin(H, p(t)) < H/2) + P(Bin(H, p(t)) = H/2) / 2 ],
//   MSE = E|x_1 - x_2|^2 P(wrong) = 2 P(wrong)   (|x_1 - x_2| is independent of u, t),
// with t distributed as <y, u> on S^{d-1}. For large H,
//   MSE ~ c_d sqrt(2 pi / H) ~ sqrt(d / H),
// so H = O(d / eps^2) heads reach error eps: polynomial in d, whereas one layer of rank-r
// heads needs exp(Omega(d)) heads (Theorem 2).
#pragma once
#include <cstdint>
#include <vector>

#include "attnrank/nn/attention.h"
#include "attnrank/theory/random_features.h"

namespace attnrank {

// The two layers in the engine's parameter layout (attention.h), no biases.
struct MajorityVoteNetwork {
  int dim = 0;    // d
  int width = 0;  // D = d + 2
  int heads = 0;  // H
  AttentionShape first, second;
  std::vector<double> first_in, first_out;    // (3H, D), (D, H)
  std::vector<double> second_in, second_out;  // (2 + d, D), (D, d)
};

// Builds the network from the voters' query directions (their keys must equal them).
MajorityVoteNetwork build_majority_vote(const RandomHeads& voters);

// points: (batch, 3, d) tokens x_1, x_2, y -> out: (batch, d), the output at y. Runs the
// engine's attention_forward for both layers.
void majority_vote_forward(const MajorityVoteNetwork& network, const double* points, int batch,
                           double* out);

// MSE on attnrank's `nearest` task with N = 2 (test stream of `seed`) by sampling.
MonteCarloEstimate majority_vote_mse_monte_carlo(const MajorityVoteNetwork& network,
                                                 int64_t samples, uint64_t seed);

// Probability that one tied random vote is right given t = <y, u>.
double vote_accuracy(double t);
// MSE averaged over random voters and data (formula above), by adaptive quadrature over t.
double majority_vote_expected_mse(int dim, int heads);
// Its large-H asymptote c_d sqrt(2 pi / H).
double majority_vote_asymptotic_mse(int dim, int heads);
// Smallest odd H whose expected MSE is <= target (bisection on odd H).
int majority_vote_heads_needed(int dim, double target_mse);

}  // namespace attnrank
