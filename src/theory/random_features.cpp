// Closed forms of the random-features experiment: head directions, C and b.
#include "attnrank/theory/random_features.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "attnrank/core/eigen_dense.h"
#include "attnrank/core/error.h"
#include "attnrank/core/rng.h"
#include "attnrank/core/vectors.h"
#include "attnrank/theory/gegenbauer.h"

namespace attnrank {

namespace {

// Dot product of vectors of norm at most 1: only rounding can leave [-1, 1].
double clamped_dot(const double* a, const double* b, int dim) {
  return std::clamp(dot(a, b, dim), -1.0, 1.0);
}

constexpr int kMaxDegree = 16383;
constexpr double kRoundingLevel = 1e-14;

}  // namespace

RandomHeads draw_random_heads(int dim, int count, uint64_t seed, uint64_t trial,
                              HeadDirections directions) {
  if (dim < 2) throw ConfigError("random heads: dimension must be >= 2");
  if (count < 1) throw ConfigError("random heads: need at least one head");
  RandomHeads heads;
  heads.dim = dim;
  heads.queries.resize(static_cast<size_t>(count) * dim);
  heads.keys.resize(heads.queries.size());
#pragma omp parallel for schedule(static)
  for (int h = 0; h < count; ++h) {
    Rng rng(seed, trial, static_cast<uint64_t>(h));
    double* q = heads.queries.data() + static_cast<size_t>(h) * dim;
    double* k = heads.keys.data() + static_cast<size_t>(h) * dim;
    random_unit_vector(rng, q, dim);
    if (directions == HeadDirections::kTied) {
      std::copy(q, q + dim, k);
    } else if (directions == HeadDirections::kIndependent) {
      random_unit_vector(rng, k, dim);
    } else {
      // cos angle(q, k) ~ U(-1, 1): k = c q + sqrt(1 - c^2) e_perp.
      const double c = rng.uniform(-1.0, 1.0);
      random_unit_vector(rng, k, dim);  // e, then its part orthogonal to q
      double along = 0.0;
      for (int i = 0; i < dim; ++i) along += q[i] * k[i];
      double norm = 0.0;
      for (int i = 0; i < dim; ++i) {
        k[i] -= along * q[i];
        norm += k[i] * k[i];
      }
      const double scale = directions == HeadDirections::kAuthorsNormalised && norm > 0.0
                               ? 1.0 / std::sqrt(norm)
                               : 1.0;
      const double s = std::sqrt(std::max(0.0, 1.0 - c * c)) * scale;
      for (int i = 0; i < dim; ++i) k[i] = c * q[i] + s * k[i];
    }
  }
  return heads;
}

const std::vector<std::string>& head_direction_names() {
  static const std::vector<std::string> names = {"independent", "tied", "authors",
                                                 "authors-normalised"};
  return names;
}

double unit_dot_asin(double dot) {
  // asin has an infinite slope at +-1, where a rounding error eps in the dot product of two
  // equal unit vectors would become an error sqrt(2 eps) ~ 1e-8; within kUnitDotSnap of +-1
  // the directions are taken as equal.
  if (dot >= 1.0 - kUnitDotSnap) return 0.5 * std::numbers::pi;
  if (dot <= -1.0 + kUnitDotSnap) return -0.5 * std::numbers::pi;
  return std::asin(dot);
}

double head_gram_entry(double query_dot, double key_dot) {
  return 0.5 + 2.0 / (std::numbers::pi * std::numbers::pi) * unit_dot_asin(query_dot) *
                   unit_dot_asin(key_dot);
}

HeadTargetProduct::HeadTargetProduct(int dim, double tolerance) : dim_(dim) {
  if (dim < 2) throw ConfigError("head-target product: dimension must be >= 2");
  if (!(tolerance > 0.0)) throw ConfigError("head-target product: tolerance must be > 0");
  auto scaled_arcsin = [](double t) { return 2.0 / std::numbers::pi * std::asin(t); };
  for (int degree = 63;; degree = std::min(2 * degree + 1, kMaxDegree)) {
    const ZonalExpansion sign = sign_expansion(dim, degree);
    const ZonalExpansion arcsin = gegenbauer_expand(scaled_arcsin, dim, degree);
    // A computed tail below the rounding level of the sums says nothing: floor it there.
    const double sign_tail = std::max(sign.energy_above(degree), kRoundingLevel * sign.energy);
    const double arcsin_tail =
        std::max(arcsin.energy_above(degree), kRoundingLevel * arcsin.energy);
    error_bound_ = std::sqrt(sign_tail * arcsin_tail);
    if (error_bound_ <= tolerance || degree == kMaxDegree) {
      products_.resize(static_cast<size_t>(degree) + 1);
      for (int k = 0; k <= degree; ++k)
        products_[k] = sign.coefficients[k] * arcsin.coefficients[k];
      return;
    }
  }
}

double HeadTargetProduct::vote_correlation(double rho) const {
  // Only odd degrees contribute (both functions are odd): run the P_k recurrence inline.
  double p_prev = 1.0, p = rho, sum = products_.size() > 1 ? products_[1] * rho : 0.0;
  for (int k = 1; k + 1 < static_cast<int>(products_.size()); ++k) {
    const double p_next = ((2.0 * k + dim_ - 2.0) * rho * p - k * p_prev) / (k + dim_ - 2.0);
    p_prev = p;
    p = p_next;
    sum += products_[k + 1] * p;
  }
  return sum;
}

std::vector<double> head_target_vector(const RandomHeads& heads, const HeadTargetProduct& b) {
  const int count = heads.count(), dim = heads.dim;
  std::vector<double> values(count);
#pragma omp parallel for schedule(static)
  for (int h = 0; h < count; ++h) {
    const size_t at = static_cast<size_t>(h) * dim;
    values[h] = b(clamped_dot(heads.queries.data() + at, heads.keys.data() + at, dim));
  }
  return values;
}

namespace {

Eigen::MatrixXd dense_head_gram(const RandomHeads& heads) {
  const int count = heads.count(), dim = heads.dim;
  Eigen::MatrixXd c(count, count);
  for (int a = 0; a < count; ++a)
    for (int b = 0; b <= a; ++b) {
      const size_t ia = static_cast<size_t>(a) * dim, ib = static_cast<size_t>(b) * dim;
      c(a, b) = c(b, a) =
          head_gram_entry(clamped_dot(heads.queries.data() + ia, heads.queries.data() + ib, dim),
                          clamped_dot(heads.keys.data() + ia, heads.keys.data() + ib, dim));
    }
  return c;
}

}  // namespace

std::vector<double> optimal_output_weights(const RandomHeads& heads, const HeadTargetProduct& b) {
  const Eigen::MatrixXd c = dense_head_gram(heads);
  const std::vector<double> target = head_target_vector(heads, b);
  const Eigen::VectorXd rhs = Eigen::Map<const Eigen::VectorXd>(target.data(), target.size());
  // LDL^T with pivoting copes with a semi-definite C (tied or repeated heads).
  const Eigen::VectorXd a = c.ldlt().solve(rhs);
  return std::vector<double>(a.data(), a.data() + a.size());
}

double closed_form_mse(const RandomHeads& heads, const HeadTargetProduct& b,
                       const std::vector<double>& weights) {
  const Eigen::MatrixXd c = dense_head_gram(heads);
  const std::vector<double> target = head_target_vector(heads, b);
  const Eigen::Map<const Eigen::VectorXd> a(weights.data(), weights.size());
  const Eigen::Map<const Eigen::VectorXd> rhs(target.data(), target.size());
  return 1.0 - 2.0 * rhs.dot(a) + a.dot(c * a);
}

}  // namespace attnrank
