// In-context linear regression (Garg, Tsipras, Liang & Valiant 2022, "What can
// transformers learn in-context?"): data generator, loss, per-position error curve
// and the least-squares reference.
//
// Config: features m >= 1, examples k >= 1 (in-context examples before the query),
// noise sigma >= 0 (finite). Bad values throw ConfigError naming task.features,
// task.examples or task.noise.
//
// Sequences. For each sequence, independently:
//   w ~ N(0, I_m) (a fresh task vector per sequence),
//   x_1 .. x_{k+1} ~ N(0, I_m) iid,
//   y_i = w.x_i + sigma * eps_i, eps_i ~ N(0, 1).
// Draw order from Rng(seed, stream, index, sample): w, then per example x_i and eps_i.
// eps is drawn whatever sigma, so the same (seed, stream, index) gives the same w and x
// for every noise level. In float, x is rounded to float first and y is computed in
// double from the rounded x, so y is exactly linear in the x the model sees (up to the
// final rounding of y).
//
// Tokens: 2k+1 of them, x_1, y_1, x_2, y_2, ..., x_k, y_k, x_{k+1} (the query), each of
// width m+1. An x token is (x, 0); a y token is (0, ..., 0, y).
//   inputs:  (batch, 2k+1, m+1)
//   targets: (batch, 2k+1, 1): y_i at the token of x_i (token 2(i-1)), 0 at y tokens.
// A causal model predicts y_i at the position of x_i for every i = 1..k+1; at x_i it has
// seen i-1 examples. Only x tokens (even tokens) are scored.
//
// Loss: squared error at the scored positions divided by m, mean over scored positions
// and batch:
//   L = 1/(B(k+1)) sum_b sum_{i=1..k+1} (out_{b,2(i-1)} - y_{b,i})^2 / m.
// Predicting 0 scores E[y^2]/m = 1 + sigma^2/m (trivial_loss()).
//
// Error curve: entry i (i = 0..k) is the mean over sequences of (out at x_{i+1} -
// y_{i+1})^2 / m, the error after i in-context examples. IclErrorCurve accumulates
// sums and counts over several batches.
//
// Least-squares reference: on the same sequences, for each i = 0..k, w_hat is the
// minimum-norm least-squares fit to (x_1..x_i, y_1..y_i) (w_hat = 0 for i = 0; for i < m
// the minimum-norm interpolant, i.e. the pseudo-inverse solution), computed in double by
// a complete orthogonal decomposition; its error is (x_{i+1}.w_hat - y_{i+1})^2 / m.
//
// Expected least-squares error after i examples (icl_least_squares_expected_error).
// With x ~ N(0, I) independent of the fit, E[(x.(w - w_hat))^2] = E||w - w_hat||^2, and
// w_hat = P w + X^+ eps with P the projection onto the span of the i examples:
//   sigma = 0:  1 - i/m for i < m, 0 for i >= m.
//   sigma > 0:  i <= m-2:        (m - i + sigma^2 (1 + i/(m - i - 1))) / m
//                                (E tr (X X^T)^{-1} = i/(m - i - 1), X X^T ~ Wishart_i(m));
//               m-1 <= i <= m+1: +infinity (the inverse-Wishart mean diverges);
//               i >= m+2:        sigma^2 (1 + m/(i - m - 1)) / m
//                                (target noise plus OLS variance, E (X^T X)^{-1} =
//                                I/(i - m - 1)).
// Every valid (m, sigma, i) has this closed form; NaN is returned for invalid arguments
// (m < 1, i < 0, sigma < 0 or not finite). Monte Carlo averages converge slowly near the
// divergence: the error has infinite variance for m-3 <= i <= m+3 when sigma > 0.
#pragma once
#include <cstdint>
#include <vector>

#include "attnrank/tasks/point_task.h"  // Stream

namespace attnrank {

struct IclLinearConfig {
  int features = 20;   // m
  int examples = 40;   // k
  double noise = 0.0;  // sigma
};

class IclLinearTask {
 public:
  explicit IclLinearTask(const IclLinearConfig& config);  // throws ConfigError

  int features() const { return config_.features; }
  int examples() const { return config_.examples; }
  double noise() const { return config_.noise; }
  int tokens() const { return 2 * config_.examples + 1; }
  int input_width() const { return config_.features + 1; }
  // Scored (x) tokens: even tokens; there are examples() + 1 of them.
  bool scored(int token) const { return token >= 0 && token < tokens() && token % 2 == 0; }
  int scored_tokens() const { return config_.examples + 1; }
  // Token of x_{i+1}, the prediction after i examples (i = 0..k).
  static int query_token(int i) { return 2 * i; }
  // Loss of predicting 0 everywhere: E[y^2]/m.
  double trivial_loss() const { return 1.0 + config_.noise * config_.noise / config_.features; }

  // Batch `index` of (seed, stream), identical whatever the thread count.
  // inputs: (batch, tokens(), input_width()); targets: (batch, tokens(), 1).
  template <typename T>
  void generate(uint64_t seed, Stream stream, uint64_t index, int batch, T* inputs,
                T* targets) const;

 private:
  IclLinearConfig config_;
};

// Loss above; outputs, targets, d_outputs: (batch, tokens(), 1). d_outputs (if
// non-null) receives dLoss/dOutput, zero at unscored (y) tokens.
template <typename T>
double icl_loss(const IclLinearTask& task, const T* outputs, const T* targets, int batch,
                T* d_outputs);

// Sum and count of the per-sequence error after i examples, i = 0..k.
class IclErrorCurve {
 public:
  explicit IclErrorCurve(int positions);  // positions = examples + 1
  explicit IclErrorCurve(const IclLinearTask& task) : IclErrorCurve(task.scored_tokens()) {}

  int positions() const { return static_cast<int>(sums_.size()); }
  void add(int position, double error);
  void merge(const IclErrorCurve& other);  // same positions()
  const std::vector<double>& sums() const { return sums_; }
  const std::vector<int64_t>& counts() const { return counts_; }
  // sums / counts; NaN where nothing was added.
  std::vector<double> mean() const;

 private:
  std::vector<double> sums_;
  std::vector<int64_t> counts_;
};

// Adds the model's per-sequence errors of one batch (outputs, targets: (batch, tokens(), 1)).
template <typename T>
void add_icl_errors(const IclLinearTask& task, const T* outputs, const T* targets, int batch,
                    IclErrorCurve& curve);

// The model's error curve of one batch (length examples + 1).
template <typename T>
std::vector<double> icl_error_curve(const IclLinearTask& task, const T* outputs, const T* targets,
                                    int batch);

// Least-squares predictions of one sequence (inputs: (tokens(), input_width())): entry
// i = x_{i+1}.w_hat_i, w_hat_i the minimum-norm fit of the first i examples of the
// sequence (read from its x and y tokens). Length examples + 1.
template <typename T>
std::vector<double> icl_least_squares_predictions(const IclLinearTask& task, const T* inputs);

// Adds the least-squares reference's per-sequence errors on the batch `inputs`,
// `targets` (as generated) into `curve`; the result does not depend on the thread count.
template <typename T>
void add_least_squares_errors(const IclLinearTask& task, const T* inputs, const T* targets,
                              int batch, IclErrorCurve& curve);

// Expectation of the least-squares error after `seen` examples (see the header comment):
// a closed form for every valid argument (+infinity where it diverges), NaN for invalid
// arguments.
double icl_least_squares_expected_error(int features, double noise, int seen);

}  // namespace attnrank
