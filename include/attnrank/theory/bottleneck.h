// The low-rank bottleneck of one attention head (Bhojanapalli et al., ICML 2020).
//
// n tokens are the rows of X (n x d, full row rank, n <= d). A head with W_Q, W_K (d x d_p)
// has logits S = X W_Q W_K^T X^T / sqrt(d_p) (S_ij: query i, key j) and, in the paper's
// column convention, the context mapping P_hat with column i = softmax_j(S_ij) (the
// engine's attention probabilities, transposed), a column-stochastic matrix. The logits have
// rank <= d_p, and softmax ignores adding a constant to all logits of one query, so a head
// can match a positive P exactly iff some L + c 1^T (L = log P^T, c in R^n) has rank <= d_p.
// Generically that minimum rank is n - 1 (choose c to zero one column), so:
//   d_p >= n     (the paper's representation theorem) suffices, and so does d_p = n - 1;
//   d_p <= n - 2 leaves a positive error for generic P (the low-rank bottleneck).
// Construction for d_p >= n - 1: L' = L - L e_1 1^T has a zero first column, so
// L' = A E^T with A = L'[:, 2..n] and E = [0; I_{n-1}] (n x (n-1)); with the right inverse
// X^+ = X^T (X X^T)^{-1},
//   W_Q = X^+ [A | 0],  W_K = sqrt(d_p) X^+ [E | 0]  (both d x d_p)
// give X W_Q (X W_K)^T / sqrt(d_p) = L', whose row softmax is P^T.
#pragma once
#include <cstdint>
#include <vector>

namespace attnrank {

struct BottleneckProblem {
  int tokens = 0;              // n
  int dim = 0;                 // d
  std::vector<double> inputs;  // X: (n, d) row-major, Gaussian (full rank almost surely)
  std::vector<double> target;  // P: (n, n) row-major, positive, every column sums to 1
};

// X Gaussian; the columns of P independent and uniform on the simplex (Dirichlet(1)).
// Depends only on (seed, index).
BottleneckProblem random_bottleneck_problem(int tokens, int dim, uint64_t seed, uint64_t index);

struct HeadWeights {
  int dim = 0, head_size = 0;  // d, d_p
  std::vector<double> query;   // W_Q: (d, d_p) row-major
  std::vector<double> key;     // W_K: (d, d_p) row-major
};

// The head's context mapping P_hat (n x n, column-stochastic), computed by the engine's
// attention_forward in double or in float.
std::vector<double> head_context_mapping(const BottleneckProblem& problem, const HeadWeights& head);
std::vector<double> head_context_mapping_float(const BottleneckProblem& problem,
                                               const HeadWeights& head);

// The explicit construction above; needs head_size >= tokens - 1 and dim >= tokens.
HeadWeights exact_bottleneck_head(const BottleneckProblem& problem, int head_size);

struct BottleneckFitOptions {
  int restarts = 4;           // starts; the best is kept
  bool svd_start = true;      // first start: truncated SVD of log P^T (else every start random)
  int max_iterations = 3000;  // L-BFGS iterations per start
  double gradient_tolerance = 1e-12;
  uint64_t seed = 0;
};

struct BottleneckFit {
  double frobenius_error = 0.0;  // ||P_hat - P||_F of the best start
  double max_error = 0.0;        // max |P_hat - P|
  int iterations = 0;            // of the best start
  HeadWeights weights;
};

// Minimises ||P_hat - P||_F^2 over the head's weights by L-BFGS. X has full row rank, so
// X W_Q and X W_K range over all n x d_p matrices: the search runs over U = X W_Q,
// V = X W_K directly and maps back with W = X^+ U. The best of the starts is an upper
// bound on the infimum (which for d_p < n may only be approached as the logits grow).
BottleneckFit fit_bottleneck_head(const BottleneckProblem& problem, int head_size,
                                  const BottleneckFitOptions& options);

// ||A - B||_F and max |A - B| of equal-size matrices.
double frobenius_distance(const std::vector<double>& a, const std::vector<double>& b);
double max_abs_distance(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace attnrank
