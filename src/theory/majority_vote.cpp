#include "attnrank/theory/majority_vote.h"

#include <algorithm>
#include <boost/math/distributions/binomial.hpp>
#include <boost/math/quadrature/gauss.hpp>
#include <cmath>
#include <numbers>

#include "attnrank/core/error.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/theory/gegenbauer.h"
#include "task_monte_carlo.h"

namespace attnrank {

namespace {

constexpr int kTokens = 3;  // x_1, x_2, y

AttentionShape layer_shape(int width, int heads, int value_rank, int batch) {
  AttentionShape shape;
  shape.batch = batch;
  shape.tokens = kTokens;
  shape.width = width;
  shape.heads = heads;
  shape.rank = 1;
  shape.value_rank = value_rank;
  shape.mask = AttentionMask::kPrefix;
  shape.key_limit = 2;
  shape.kind = AttentionKind::kHardmax;
  return shape;
}

// Runs one attention layer of `network` on (batch, 3, D) inputs.
void run_layer(AttentionShape shape, int batch, const double* x, const std::vector<double>& in,
               const std::vector<double>& out_weight, double* out) {
  shape.batch = batch;
  const size_t rows = static_cast<size_t>(batch) * kTokens;
  std::vector<double> qkv(rows * shape.qkv_stride()), context(rows * shape.context_stride());
  std::vector<double> probs(static_cast<size_t>(batch) * shape.heads * kTokens * kTokens);
  attention_forward<double>(shape, x, in.data(), nullptr, out_weight.data(), nullptr, qkv.data(),
                            probs.data(), context.data(), out);
}

}  // namespace

MajorityVoteNetwork build_majority_vote(const RandomHeads& voters) {
  const int d = voters.dim, h_count = voters.count();
  if (h_count < 1) throw ConfigError("majority vote: need at least one head");
  if (voters.queries != voters.keys)
    throw ConfigError("majority vote: voters need tied directions (q_h = k_h)");
  MajorityVoteNetwork net;
  net.dim = d;
  net.width = d + 2;
  net.heads = h_count;
  const int width = net.width, pos = d, vote = d + 1;
  net.first = layer_shape(width, h_count, 1, 1);
  net.second = layer_shape(width, 1, d, 1);

  // Layer 1 in_proj rows: [W_Q^T (H rows); W_K^T (H rows); W_V^T (H rows of width 1)].
  net.first_in.assign(static_cast<size_t>(3 * h_count) * width, 0.0);
  for (int h = 0; h < h_count; ++h) {
    const double* q = voters.queries.data() + static_cast<size_t>(h) * d;
    std::copy_n(q, d, net.first_in.data() + static_cast<size_t>(h) * width);
    std::copy_n(q, d, net.first_in.data() + static_cast<size_t>(h_count + h) * width);
    net.first_in[static_cast<size_t>(2 * h_count + h) * width + pos] = 1.0;  // value: POS
  }
  net.first_out.assign(static_cast<size_t>(width) * h_count, 0.0);  // (D, H)
  for (int h = 0; h < h_count; ++h)
    net.first_out[static_cast<size_t>(vote) * h_count + h] = 1.0 / h_count;

  // Layer 2: query VOTE, key POS, value and output the d point coordinates.
  net.second_in.assign(static_cast<size_t>(2 + d) * width, 0.0);
  net.second_in[vote] = 1.0;
  net.second_in[static_cast<size_t>(width) + pos] = 1.0;
  for (int e = 0; e < d; ++e) net.second_in[static_cast<size_t>(2 + e) * width + e] = 1.0;
  net.second_out.assign(static_cast<size_t>(width) * d, 0.0);  // (D, d)
  for (int e = 0; e < d; ++e) net.second_out[static_cast<size_t>(e) * d + e] = 1.0;
  return net;
}

void majority_vote_forward(const MajorityVoteNetwork& net, const double* points, int batch,
                           double* out) {
  const int d = net.dim, width = net.width;
  const size_t rows = static_cast<size_t>(batch) * kTokens;
  // Concatenate the scratch coordinates: POS = +1, -1, 0 for x_1, x_2, y; VOTE = 0.
  std::vector<double> x(rows * width, 0.0), layer1(rows * width), layer2(rows * width);
  for (size_t r = 0; r < rows; ++r) {
    std::copy_n(points + r * d, d, x.data() + r * width);
    const int token = static_cast<int>(r % kTokens);
    x[r * width + d] = token == 0 ? 1.0 : (token == 1 ? -1.0 : 0.0);
  }
  run_layer(net.first, batch, x.data(), net.first_in, net.first_out, layer1.data());
  for (size_t i = 0; i < x.size(); ++i) layer1[i] += x[i];  // residual
  run_layer(net.second, batch, layer1.data(), net.second_in, net.second_out, layer2.data());
  for (int b = 0; b < batch; ++b)
    std::copy_n(layer2.data() + (static_cast<size_t>(b) * kTokens + 2) * width, d,
                out + static_cast<size_t>(b) * d);
}

MonteCarloEstimate majority_vote_mse_monte_carlo(const MajorityVoteNetwork& net, int64_t samples,
                                                 uint64_t seed) {
  if (samples < 2) throw ConfigError("majority vote: need at least 2 samples");
  TaskConfig config;
  config.name = TaskKind::kNearest;
  config.points = 2;
  config.queries = 1;
  const PointTask task(config, net.dim);
  // About 2^20 (sample, head) pairs per batch bounds the attention buffers (~100 MB).
  const int d = net.dim;
  const int batch =
      static_cast<int>(std::min<int64_t>(samples, std::clamp((1 << 20) / net.heads, 16, 1024)));
  std::vector<double> x(static_cast<size_t>(batch) * kTokens * d), target(x.size());
  std::vector<double> out(static_cast<size_t>(batch) * d);
  double sum = 0.0, sum_squares = 0.0;
  int64_t done = 0;
  for (uint64_t index = 0; done < samples; ++index) {
    const int rows = static_cast<int>(std::min<int64_t>(batch, samples - done));
    task.generate(seed, Stream::kTest, index, batch, x.data(), target.data());
    majority_vote_forward(net, x.data(), batch, out.data());
    for (int s = 0; s < rows; ++s) {
      const double* want = target.data() + (static_cast<size_t>(s) * kTokens + 2) * d;
      double error = 0.0;
      for (int e = 0; e < d; ++e) error += (out[s * d + e] - want[e]) * (out[s * d + e] - want[e]);
      sum += error;
      sum_squares += error * error;
    }
    done += rows;
  }
  return estimate_from_sums(sum, sum_squares, done);
}

double vote_accuracy(double t) {
  return 0.5 + std::abs(std::asin(std::clamp(t, -1.0, 1.0))) / std::numbers::pi;
}

double majority_vote_expected_mse(int dim, int heads) {
  if (dim < 2) throw ConfigError("majority vote: dimension must be >= 2");
  if (heads < 1) throw ConfigError("majority vote: need at least one head");
  auto wrong_given_t = [heads](double t) {
    const boost::math::binomial_distribution<double> correct(heads, vote_accuracy(t));
    // Fewer than H/2 right votes loses; a tie (even H) picks x_1, right half the time.
    const int below = (heads - 1) / 2;  // largest count strictly below H/2
    double p = boost::math::cdf(correct, below);
    if (heads % 2 == 0) p += 0.5 * boost::math::pdf(correct, heads / 2);
    return p;
  };
  // In the angle phi = asin(t) the integrand (2 c_d cos^{d-2}(phi) P(wrong | sin phi)) is
  // smooth up to phi = pi/2, unlike in t. It varies on the scale s = min(1/sqrt(H),
  // 1/sqrt(d)) near 0 (the vote margin and the spread of t): composite 30-point
  // Gauss-Legendre on panels whose edges grow geometrically from s/64.
  const double c_d = sphere_dot_density_constant(dim);
  auto integrand = [&](double phi) {
    return 2.0 * c_d * std::pow(std::cos(phi), dim - 2) * wrong_given_t(std::sin(phi));
  };
  const double scale = std::min(1.0 / std::sqrt(double(heads)), 1.0 / std::sqrt(double(dim)));
  const double end = 0.5 * std::numbers::pi;
  using Rule = boost::math::quadrature::gauss<double, 30>;
  double wrong = 0.0, lo = 0.0;
  for (double hi = scale / 64; lo < end; hi = std::min(end, 2.0 * hi)) {
    wrong += Rule::integrate(integrand, lo, hi);
    lo = hi;
  }
  return 2.0 * wrong;  // E|x_1 - x_2|^2 = 2
}

double majority_vote_asymptotic_mse(int dim, int heads) {
  return sphere_dot_density_constant(dim) * std::sqrt(2.0 * std::numbers::pi / heads);
}

int majority_vote_heads_needed(int dim, double target_mse) {
  if (!(target_mse > 0.0)) throw ConfigError("majority vote: target MSE must be > 0");
  // Work with odd H = 2m + 1, for which the error falls monotonically in m.
  auto mse_at = [dim](int m) { return majority_vote_expected_mse(dim, 2 * m + 1); };
  int lo = 0, hi = 1;
  const int limit = 1 << 26;
  while (mse_at(hi) > target_mse) {
    lo = hi;
    hi *= 2;
    if (hi > limit) throw ConfigError("majority vote: target MSE needs more than 2^27 heads");
  }
  if (mse_at(lo) <= target_mse) return 2 * lo + 1;
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (mse_at(mid) > target_mse ? lo : hi) = mid;
  }
  return 2 * hi + 1;
}

}  // namespace attnrank
