// Random rank-1 hard-attention heads with optimal output weights on the N = 2
// nearest-neighbour target (Amsel et al. 2024, arXiv 2407.16153, the random-features experiment).
//
// Points x_1, x_2 and the query y are uniform on S^{d-1}; the target is the nearest point
// f = x_{argmax_i <x_i, y>}. Head h has unit directions (q_h, k_h) and scores key x_j by
// (y.q_h)(k_h.x_j), so under hard attention it outputs x_1 exactly when its vote
// sigma_h = sign(y.q_h) sign(k_h.(x_1 - x_2)) is +1. With m = (x_1 + x_2)/2 and
// delta = (x_1 - x_2)/2 (orthogonal, E|m|^2 = E|delta|^2 = 1/2, and the direction of delta
// independent of its length) every head outputs m + sigma_h delta and the target is
// m + sigma* delta with sigma* = sign(y.(x_1 - x_2)). Hence, for the model sum_h a_h head_h:
//   C_ab = E[head_a . head_b] = 1/2 + (1/2) E_ab,  E_ab = E[sigma_a sigma_b]
//        = (4/pi^2) asin(q_a.q_b) asin(k_a.k_b),
//   b_h  = E[f . head_h] = 1/2 + (1/2) e_h,  e_h = E[sigma* sigma_h] = sum_k s_k A_k P_k(q_h.k_h)
// where s_k, A_k are the normalised Gegenbauer coefficients of sign(t) and (2/pi) asin(t)
// (Funk-Hecke after integrating out the direction of x_1 - x_2), and
//   MSE(a) = 1 - 2 b.a + a.C a,  minimised by C a = b.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnrank {

enum class HeadDirections {
  kIndependent,  // q_h and k_h independent and uniform (kernel_computations.py)
  kTied,         // q_h = k_h uniform (the voters of the majority-vote construction)
  // The published figure's heads (optim_weight_linsolve.py, uniform_construction): q_h
  // uniform, cos angle(q_h, k_h) = c ~ U(-1, 1), k_h = c q_h + sqrt(1 - c^2) e_perp with
  // e_perp the part of a uniform e orthogonal to q_h, *not renormalised*: |k_h| < 1, so the
  // closed-form C (which assumes unit keys) is not the heads' true C. As run.
  kAuthors,
  kAuthorsNormalised,  // the same with e_perp renormalised: unit k_h, q_h.k_h = c exactly
};

// The --directions names, in enum order.
const std::vector<std::string>& head_direction_names();

struct RandomHeads {
  int dim = 0;
  std::vector<double> queries;  // (count, dim), unit rows
  std::vector<double> keys;     // (count, dim), unit rows

  int count() const { return dim == 0 ? 0 : static_cast<int>(queries.size() / dim); }
};

// Head h of trial `trial` depends only on (seed, trial, h), so the first H heads of a
// larger draw are the H-head draw.
RandomHeads draw_random_heads(int dim, int count, uint64_t seed, uint64_t trial,
                              HeadDirections directions);

// asin of a dot product of unit vectors; dot products within kUnitDotSnap of +-1 count as
// exactly +-1 (equal or opposite directions), since asin would amplify their rounding error
// to about 1e-8. The change for genuinely distinct directions is below 5e-7.
constexpr double kUnitDotSnap = 1e-13;
double unit_dot_asin(double dot);

// C_ab from the two direction dot products.
double head_gram_entry(double query_dot, double key_dot);

// b_h and e_h as functions of rho = q_h.k_h, from truncated Gegenbauer series. The degree
// is raised until the Cauchy-Schwarz bound on the neglected terms of e,
// sqrt(sum_{k>K} s_k^2 * sum_{k>K} A_k^2), is below the tolerance (or K reaches 16383).
class HeadTargetProduct {
 public:
  HeadTargetProduct(int dim, double tolerance = 1e-7);

  double vote_correlation(double rho) const;                                         // e(rho)
  double operator()(double rho) const { return 0.5 + 0.5 * vote_correlation(rho); }  // b(rho)
  int dim() const { return dim_; }
  int max_degree() const { return static_cast<int>(products_.size()) - 1; }
  double error_bound() const { return error_bound_; }  // on e; b's bound is half of it

 private:
  int dim_;
  std::vector<double> products_;  // s_k A_k
  double error_bound_ = 0.0;
};

// e and b for every head of `heads`.
std::vector<double> head_target_vector(const RandomHeads& heads, const HeadTargetProduct& b);

// MSE of the optimal output weights using only the first h heads, for every h = 1..count,
// from one Cholesky factorisation of the vote Gram matrix E (a leading block of a
// Cholesky factor is the factor of the leading block). Writing the model as
// (1.a) m + (sum_h a_h sigma_h) delta, the optimum is
//   MSE = 1 - (s + gamma + (1 - s) beta) / 2,  s = (alpha + beta) / (1 + alpha),
// with alpha = 1.E^{-1}1, beta = 1.E^{-1}e, gamma = e.E^{-1}e; this avoids the rank-one
// H/2 part of C, which would dominate its rounding error. Heads whose Cholesky pivot falls
// below `drop_tolerance` (numerically in the span of earlier heads) are skipped.
struct PrefixCurve {
  std::vector<double> mse;  // mse[h - 1]: optimum with heads 0..h-1
  int dropped = 0;
};
PrefixCurve optimal_mse_by_prefix(const RandomHeads& heads, const HeadTargetProduct& b,
                                  double drop_tolerance = 1e-10);

// The same optimum for all `heads` by conjugate gradients on E x = [1, e], with the
// product E v computed block by block from the directions (memory O(H * block)), for H
// too large for a dense matrix.
struct ConjugateGradientResult {
  double mse = 1.0;
  int iterations = 0;
  double relative_residual = 0.0;  // max over the two right-hand sides
  bool converged = false;
};
ConjugateGradientResult optimal_mse_conjugate_gradient(const RandomHeads& heads,
                                                       const HeadTargetProduct& b,
                                                       double tolerance = 1e-8,
                                                       int max_iterations = 2000);

// Optimal output weights a = C^{-1} b from the dense C (small H), and the MSE of any
// weights by the closed form 1 - 2 b.a + a.C a.
std::vector<double> optimal_output_weights(const RandomHeads& heads, const HeadTargetProduct& b);
double closed_form_mse(const RandomHeads& heads, const HeadTargetProduct& b,
                       const std::vector<double>& weights);

struct MonteCarloEstimate {
  double mean = 0.0;
  double standard_error = 0.0;
  int64_t samples = 0;
  double low() const { return mean - 1.96 * standard_error; }  // 95% interval
  double high() const { return mean + 1.96 * standard_error; }
};

// Samples the N = 2 nearest task (attnrank's `nearest` task, test stream of `seed`) and
// runs the heads through the engine's hard-attention forward pass (Transformer<double>:
// one layer, H heads of rank 1, value = identity, output weights a_h I, no norm, no
// residual, no MLP); returns the mean squared error of the query output.
MonteCarloEstimate head_mixture_mse_monte_carlo(const RandomHeads& heads,
                                                const std::vector<double>& weights, int64_t samples,
                                                uint64_t seed);

}  // namespace attnrank
