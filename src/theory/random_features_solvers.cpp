// Optimal output weights for many random heads: one blocked Cholesky factorisation for the
// whole MSE-vs-H curve, and a matrix-free conjugate-gradient solver.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>

#include "attnrank/core/error.h"
#include "attnrank/theory/random_features.h"

namespace attnrank {

namespace {

constexpr double kVoteScale = 4.0 / (std::numbers::pi * std::numbers::pi);

// Lower triangle of E (column-major, n x n): E_ab = (4/pi^2) asin(q_a.q_b) asin(k_a.k_b).
void fill_vote_gram(const RandomHeads& heads, double* e) {
  const int n = heads.count(), dim = heads.dim;
  // Row-major (n, dim) directions are column-major (dim, n) matrices.
  cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, n, dim, 1.0, heads.queries.data(), dim, 0.0, e,
              n);
  const int block = 256;
  std::vector<double> key_dots(static_cast<size_t>(n) * block);
  for (int j0 = 0; j0 < n; j0 += block) {
    const int jb = std::min(block, n - j0), rows = n - j0;
    // key_dots(i - j0, j - j0) = k_i . k_j for i >= j0, j in the block.
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, rows, jb, dim, 1.0,
                heads.keys.data() + static_cast<size_t>(j0) * dim, dim,
                heads.keys.data() + static_cast<size_t>(j0) * dim, dim, 0.0, key_dots.data(), rows);
#pragma omp parallel for schedule(dynamic, 8)
    for (int j = j0; j < j0 + jb; ++j) {
      double* column = e + static_cast<size_t>(j) * n;
      const double* keys = key_dots.data() + static_cast<size_t>(j - j0) * rows;
      // Unit directions: asin(1)^2 (4/pi^2) = 1, exactly. Keys shorter than 1 (the
      // authors' unnormalised construction) give (2/pi) asin(|k|^2), as their C_mat does.
      const double key_norm2 = keys[j - j0];
      column[j] = key_norm2 >= 1.0 - kUnitDotSnap
                      ? 1.0
                      : kVoteScale * unit_dot_asin(column[j]) * unit_dot_asin(key_norm2);
      for (int i = j + 1; i < n; ++i)
        column[i] = kVoteScale * unit_dot_asin(column[i]) * unit_dot_asin(keys[i - j0]);
    }
  }
}

// In-place blocked right-looking Cholesky of the lower triangle (column-major). A column
// whose pivot is below `drop_tolerance` is replaced by the unit vector and marked dropped:
// the remaining factor is then the factor of the matrix without that head.
std::vector<char> cholesky_with_dropping(double* a, int n, double drop_tolerance) {
  std::vector<char> dropped(n, 0);
  const int block = 192;
  auto at = [a, n](int i, int j) -> double& { return a[i + static_cast<size_t>(j) * n]; };
  for (int j0 = 0; j0 < n; j0 += block) {
    const int jb = std::min(block, n - j0), end = j0 + jb;
    for (int j = j0; j < end; ++j) {
      for (int k = j0; k < j; ++k) {
        if (dropped[k]) continue;
        const double l_jk = at(j, k);
        for (int i = j; i < end; ++i) at(i, j) -= at(i, k) * l_jk;
      }
      const double pivot = at(j, j);
      if (!(pivot > drop_tolerance)) {
        dropped[j] = 1;
        for (int i = j + 1; i < end; ++i) at(i, j) = 0.0;
        at(j, j) = 1.0;
        continue;
      }
      const double l = std::sqrt(pivot);
      at(j, j) = l;
      for (int i = j + 1; i < end; ++i) at(i, j) /= l;
    }
    const int rows = n - end;
    if (rows == 0) break;
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rows, jb, 1.0,
                &at(j0, j0), n, &at(end, j0), n);
    for (int j = j0; j < end; ++j)
      if (dropped[j]) std::fill(&at(end, j), &at(end, j) + rows, 0.0);
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, rows, jb, -1.0, &at(end, j0), n, 1.0,
                &at(end, end), n);
  }
  return dropped;
}

// Solves L w = r in place (dropped rows give w = 0).
void forward_substitute(const double* l, int n, const std::vector<char>& dropped, double* r) {
  for (int j = 0; j < n; ++j) {
    const double* column = l + static_cast<size_t>(j) * n;
    if (dropped[j]) {
      r[j] = 0.0;
      continue;
    }
    r[j] /= column[j];
    const double w = r[j];
    for (int i = j + 1; i < n; ++i) r[i] -= w * column[i];
  }
}

double optimum_from_solves(double alpha, double beta, double gamma) {
  const double s = (alpha + beta) / (1.0 + alpha);
  return 1.0 - 0.5 * (s + gamma + (1.0 - s) * beta);
}

}  // namespace

PrefixCurve optimal_mse_by_prefix(const RandomHeads& heads, const HeadTargetProduct& b,
                                  double drop_tolerance) {
  const int n = heads.count();
  std::vector<double> e = head_target_vector(heads, b);
  for (double& v : e) v = 2.0 * v - 1.0;  // b = (1 + e)/2
  const size_t entries = static_cast<size_t>(n) * n;
  // Uninitialised on purpose: fill_vote_gram writes every entry the factorisation reads.
  std::unique_ptr<double[]> gram(new double[entries]);
  fill_vote_gram(heads, gram.get());
  const std::vector<char> dropped = cholesky_with_dropping(gram.get(), n, drop_tolerance);
  std::vector<double> w_ones(n, 1.0), w_e = e;
  forward_substitute(gram.get(), n, dropped, w_ones.data());
  forward_substitute(gram.get(), n, dropped, w_e.data());
  gram.reset();

  PrefixCurve curve;
  curve.mse.resize(n);
  double alpha = 0.0, beta = 0.0, gamma = 0.0;
  for (int h = 0; h < n; ++h) {
    alpha += w_ones[h] * w_ones[h];
    beta += w_ones[h] * w_e[h];
    gamma += w_e[h] * w_e[h];
    curve.mse[h] = optimum_from_solves(alpha, beta, gamma);
    curve.dropped += dropped[h];
  }
  return curve;
}

namespace {

// out = E v for two right-hand sides stored as (n, 2) row-major, computed by row blocks
// so that only `block` rows of direction dot products exist at a time.
void vote_gram_product(const RandomHeads& heads, const std::vector<double>& v,
                       std::vector<double>& out, std::vector<double>& query_dots,
                       std::vector<double>& key_dots) {
  const int n = heads.count(), dim = heads.dim, block = 256;
  for (int i0 = 0; i0 < n; i0 += block) {
    const int ib = std::min(block, n - i0);
    // Row-major (ib, n) = Q_block Q^T.
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ib, n, dim, 1.0,
                heads.queries.data() + static_cast<size_t>(i0) * dim, dim, heads.queries.data(),
                dim, 0.0, query_dots.data(), n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ib, n, dim, 1.0,
                heads.keys.data() + static_cast<size_t>(i0) * dim, dim, heads.keys.data(), dim, 0.0,
                key_dots.data(), n);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < ib; ++i) {
      const double* qd = query_dots.data() + static_cast<size_t>(i) * n;
      const double* kd = key_dots.data() + static_cast<size_t>(i) * n;
      double sum0 = 0.0, sum1 = 0.0;
      for (int j = 0; j < n; ++j) {
        const double entry = kVoteScale * unit_dot_asin(qd[j]) * unit_dot_asin(kd[j]);
        sum0 += entry * v[2 * j];
        sum1 += entry * v[2 * j + 1];
      }
      out[2 * (i0 + i)] = sum0;
      out[2 * (i0 + i) + 1] = sum1;
    }
  }
}

}  // namespace

ConjugateGradientResult optimal_mse_conjugate_gradient(const RandomHeads& heads,
                                                       const HeadTargetProduct& b, double tolerance,
                                                       int max_iterations) {
  const int n = heads.count();
  std::vector<double> e = head_target_vector(heads, b);
  for (double& v : e) v = 2.0 * v - 1.0;
  // Two systems E x = 1 and E x = e, iterated together so they share each product.
  std::vector<double> x(2 * static_cast<size_t>(n), 0.0), r(x.size()), p, ep(x.size());
  for (int i = 0; i < n; ++i) {
    r[2 * i] = 1.0;
    r[2 * i + 1] = e[i];
  }
  p = r;
  std::vector<double> query_dots(static_cast<size_t>(std::min(256, n)) * n),
      key_dots(query_dots.size());
  double rr[2] = {0.0, 0.0}, rhs_norm[2] = {0.0, 0.0};
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < 2; ++c) rr[c] += r[2 * i + c] * r[2 * i + c];
  rhs_norm[0] = std::sqrt(rr[0]);
  rhs_norm[1] = std::sqrt(rr[1]);
  bool done[2] = {false, rhs_norm[1] == 0.0};
  ConjugateGradientResult result;
  auto relative = [&](int c) { return rhs_norm[c] == 0.0 ? 0.0 : std::sqrt(rr[c]) / rhs_norm[c]; };
  while (result.iterations < max_iterations && !(done[0] && done[1])) {
    vote_gram_product(heads, p, ep, query_dots, key_dots);
    ++result.iterations;
    for (int c = 0; c < 2; ++c) {
      if (done[c]) continue;
      double pep = 0.0;
      for (int i = 0; i < n; ++i) pep += p[2 * i + c] * ep[2 * i + c];
      const double step = rr[c] / pep;
      double rr_next = 0.0;
      for (int i = 0; i < n; ++i) {
        x[2 * i + c] += step * p[2 * i + c];
        r[2 * i + c] -= step * ep[2 * i + c];
        rr_next += r[2 * i + c] * r[2 * i + c];
      }
      const double ratio = rr_next / rr[c];
      rr[c] = rr_next;
      for (int i = 0; i < n; ++i) p[2 * i + c] = r[2 * i + c] + ratio * p[2 * i + c];
      if (relative(c) <= tolerance) done[c] = true;
    }
  }
  double alpha = 0.0, beta = 0.0, gamma = 0.0;
  for (int i = 0; i < n; ++i) {
    alpha += x[2 * i];
    beta += 0.5 * (x[2 * i + 1] + e[i] * x[2 * i]);  // 1.E^{-1}e = e.E^{-1}1
    gamma += e[i] * x[2 * i + 1];
  }
  result.mse = optimum_from_solves(alpha, beta, gamma);
  result.relative_residual = std::max(relative(0), relative(1));
  result.converged = done[0] && done[1];
  return result;
}

}  // namespace attnrank
