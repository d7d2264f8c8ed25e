#include "attnrank/theory/bottleneck.h"

#include <algorithm>
#include <cmath>

#include "attnrank/core/eigen_dense.h"
#include "attnrank/core/error.h"
#include "attnrank/core/rng.h"
#include "attnrank/nn/attention.h"

namespace attnrank {

namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Matrix as_matrix(const std::vector<double>& values, int rows, int cols) {
  return Eigen::Map<const Matrix>(values.data(), rows, cols);
}

std::vector<double> as_vector(const Matrix& m) {
  return std::vector<double>(m.data(), m.data() + m.size());
}

void check_problem(const BottleneckProblem& p) {
  if (p.tokens < 1 || p.dim < p.tokens)
    throw ConfigError("bottleneck: need 1 <= tokens <= dim (inputs of full row rank)");
}

// W = X^+ M for M (n x d_p): the minimum-norm solution of X W = M.
Matrix right_inverse_times(const BottleneckProblem& p, const Matrix& m) {
  const Matrix x = as_matrix(p.inputs, p.tokens, p.dim);
  const Matrix gram = x * x.transpose();
  return x.transpose() * gram.ldlt().solve(m);
}

template <typename T>
std::vector<double> context_mapping(const BottleneckProblem& p, const HeadWeights& head) {
  const int n = p.tokens, d = p.dim, dp = head.head_size;
  AttentionShape shape;
  shape.tokens = n;
  shape.width = d;
  shape.heads = 1;
  shape.rank = dp;
  shape.value_rank = 1;
  // in_proj rows [W_Q^T (d_p rows); W_K^T (d_p rows); one zero value row].
  std::vector<T> in(static_cast<size_t>(2 * dp + 1) * d, T(0)), out(d, T(0));
  for (int e = 0; e < dp; ++e)
    for (int i = 0; i < d; ++i) {
      in[static_cast<size_t>(e) * d + i] =
          static_cast<T>(head.query[static_cast<size_t>(i) * dp + e]);
      in[static_cast<size_t>(dp + e) * d + i] =
          static_cast<T>(head.key[static_cast<size_t>(i) * dp + e]);
    }
  std::vector<T> x(p.inputs.begin(), p.inputs.end());
  std::vector<T> qkv(static_cast<size_t>(n) * shape.qkv_stride()),
      probs(static_cast<size_t>(n) * n), context(static_cast<size_t>(n) * shape.context_stride()),
      y(static_cast<size_t>(n) * d);
  attention_forward<T>(shape, x.data(), in.data(), nullptr, out.data(), nullptr, qkv.data(),
                       probs.data(), context.data(), y.data());
  attention_probabilities<T>(shape, std::vector<T>(probs).data(), probs.data());
  std::vector<double> mapping(static_cast<size_t>(n) * n);
  for (int i = 0; i < n; ++i)  // probs[i][j]: query i over keys j; column i of P_hat
    for (int j = 0; j < n; ++j)
      mapping[static_cast<size_t>(j) * n + i] = probs[static_cast<size_t>(i) * n + j];
  return mapping;
}

// Row softmax of U V^T / sqrt(d_p) against the row-stochastic target T = P^T: loss and
// gradient with respect to z = [U; V] (each n x d_p, row-major).
struct LogitsObjective {
  const Matrix& target;  // T
  int n, dp;

  double operator()(const Eigen::VectorXd& z, Eigen::VectorXd* gradient) const {
    const Eigen::Map<const Matrix> u(z.data(), n, dp), v(z.data() + n * dp, n, dp);
    const double scale = 1.0 / std::sqrt(double(dp));
    Matrix r = (u * v.transpose()) * scale;
    for (int i = 0; i < n; ++i) {
      const double top = r.row(i).maxCoeff();
      r.row(i) = (r.row(i).array() - top).exp();
      r.row(i) /= r.row(i).sum();
    }
    const Matrix diff = r - target;
    if (gradient != nullptr) {
      const Matrix g = 2.0 * diff;
      Matrix ds(n, n);
      for (int i = 0; i < n; ++i) {
        const double inner = r.row(i).dot(g.row(i));
        ds.row(i) = r.row(i).array() * (g.row(i).array() - inner);
      }
      gradient->resize(z.size());
      Eigen::Map<Matrix>(gradient->data(), n, dp) = ds * v * scale;
      Eigen::Map<Matrix>(gradient->data() + n * dp, n, dp) = ds.transpose() * u * scale;
    }
    return diff.squaredNorm();
  }
};

// Limited-memory BFGS with a backtracking Armijo line search. Returns iterations used.
template <typename Objective>
int minimise_lbfgs(const Objective& f, Eigen::VectorXd& z, int max_iterations,
                   double gradient_tolerance) {
  const int memory = 10;
  std::vector<Eigen::VectorXd> s_hist, y_hist;
  std::vector<double> rho_hist;
  Eigen::VectorXd g, g_next;
  double value = f(z, &g);
  int iteration = 0;
  for (; iteration < max_iterations && g.norm() > gradient_tolerance; ++iteration) {
    // Two-loop recursion for the direction -H g.
    Eigen::VectorXd q = g;
    std::vector<double> alpha(s_hist.size());
    for (int i = static_cast<int>(s_hist.size()) - 1; i >= 0; --i) {
      alpha[i] = rho_hist[i] * s_hist[i].dot(q);
      q -= alpha[i] * y_hist[i];
    }
    if (!s_hist.empty()) q *= s_hist.back().dot(y_hist.back()) / y_hist.back().squaredNorm();
    for (size_t i = 0; i < s_hist.size(); ++i) {
      const double beta = rho_hist[i] * y_hist[i].dot(q);
      q += (alpha[i] - beta) * s_hist[i];
    }
    Eigen::VectorXd direction = -q;
    double slope = g.dot(direction);
    if (!(slope < 0.0)) {  // not a descent direction: restart from steepest descent
      s_hist.clear();
      y_hist.clear();
      rho_hist.clear();
      direction = -g;
      slope = -g.squaredNorm();
    }
    double step = s_hist.empty() ? std::min(1.0, 1.0 / g.norm()) : 1.0;
    Eigen::VectorXd z_next;
    double value_next = value;
    bool accepted = false;
    for (int tries = 0; tries < 60; ++tries, step *= 0.5) {
      z_next = z + step * direction;
      value_next = f(z_next, &g_next);
      if (value_next <= value + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;  // no decrease representable in double: converged
    Eigen::VectorXd s = z_next - z, y = g_next - g;
    const double sy = s.dot(y);
    if (sy > 1e-300) {
      if (static_cast<int>(s_hist.size()) == memory) {
        s_hist.erase(s_hist.begin());
        y_hist.erase(y_hist.begin());
        rho_hist.erase(rho_hist.begin());
      }
      s_hist.push_back(s);
      y_hist.push_back(y);
      rho_hist.push_back(1.0 / sy);
    }
    z = z_next;
    g = g_next;
    value = value_next;
  }
  return iteration;
}

}  // namespace

BottleneckProblem random_bottleneck_problem(int tokens, int dim, uint64_t seed, uint64_t index) {
  BottleneckProblem p;
  p.tokens = tokens;
  p.dim = dim;
  check_problem(p);
  Rng rng(seed, index);
  p.inputs.resize(static_cast<size_t>(tokens) * dim);
  for (double& v : p.inputs) v = rng.normal();
  p.target.resize(static_cast<size_t>(tokens) * tokens);
  for (double& v : p.target) v = -std::log(1.0 - rng.uniform());  // Exp(1), positive
  for (int j = 0; j < tokens; ++j) {
    double sum = 0.0;
    for (int i = 0; i < tokens; ++i) sum += p.target[static_cast<size_t>(i) * tokens + j];
    for (int i = 0; i < tokens; ++i) p.target[static_cast<size_t>(i) * tokens + j] /= sum;
  }
  return p;
}

std::vector<double> head_context_mapping(const BottleneckProblem& p, const HeadWeights& head) {
  return context_mapping<double>(p, head);
}

std::vector<double> head_context_mapping_float(const BottleneckProblem& p,
                                               const HeadWeights& head) {
  return context_mapping<float>(p, head);
}

HeadWeights exact_bottleneck_head(const BottleneckProblem& p, int head_size) {
  check_problem(p);
  const int n = p.tokens;
  if (head_size < n - 1)
    throw ConfigError("bottleneck: the exact construction needs head size >= tokens - 1");
  // L(i, j) = log P(j, i) (query i, key j); shifting row i by -L(i, 0) zeroes column 0.
  Matrix queries = Matrix::Zero(n, head_size), keys = Matrix::Zero(n, head_size);
  for (int i = 0; i < n; ++i) {
    const double shift = std::log(p.target[i]);  // P(0, i)
    for (int j = 1; j < n; ++j)
      queries(i, j - 1) = std::log(p.target[static_cast<size_t>(j) * n + i]) - shift;
  }
  for (int j = 1; j < n; ++j) keys(j, j - 1) = std::sqrt(double(head_size));
  HeadWeights head;
  head.dim = p.dim;
  head.head_size = head_size;
  head.query = as_vector(right_inverse_times(p, queries));
  head.key = as_vector(right_inverse_times(p, keys));
  return head;
}

BottleneckFit fit_bottleneck_head(const BottleneckProblem& p, int head_size,
                                  const BottleneckFitOptions& options) {
  check_problem(p);
  if (head_size < 1) throw ConfigError("bottleneck: head size must be >= 1");
  if (options.restarts < 1) throw ConfigError("bottleneck: need at least one start");
  const int n = p.tokens, dp = head_size;
  const Matrix target = as_matrix(p.target, n, n).transpose();  // T = P^T, row-stochastic
  const LogitsObjective objective{target, n, dp};

  // Start 0: the best rank-d_p approximation of the row-centred log T, split evenly.
  Matrix centred = target.array().log().matrix();
  for (int i = 0; i < n; ++i) centred.row(i).array() -= centred.row(i).mean();
  Eigen::JacobiSVD<Matrix> svd(centred, Eigen::ComputeFullU | Eigen::ComputeFullV);
  const double scale = std::pow(double(dp), 0.25);

  BottleneckFit best;
  best.frobenius_error = INFINITY;
  Rng rng(options.seed, static_cast<uint64_t>(n), static_cast<uint64_t>(dp));
  for (int start = 0; start < options.restarts; ++start) {
    Eigen::VectorXd z = Eigen::VectorXd::Zero(2 * n * dp);
    Eigen::Map<Matrix> u(z.data(), n, dp), v(z.data() + n * dp, n, dp);
    if (start == 0 && options.svd_start) {
      for (int c = 0; c < std::min(n, dp); ++c) {
        const double root = std::sqrt(svd.singularValues()(c));
        u.col(c) = svd.matrixU().col(c) * root * scale;
        v.col(c) = svd.matrixV().col(c) * root * scale;
      }
    } else {
      for (int i = 0; i < z.size(); ++i) z(i) = rng.normal();
    }
    const int iterations =
        minimise_lbfgs(objective, z, options.max_iterations, options.gradient_tolerance);
    const double loss = std::sqrt(objective(z, nullptr));
    if (loss < best.frobenius_error) {
      best.frobenius_error = loss;
      best.iterations = iterations;
      best.weights.dim = p.dim;
      best.weights.head_size = dp;
      best.weights.query = as_vector(right_inverse_times(p, Matrix(u)));
      best.weights.key = as_vector(right_inverse_times(p, Matrix(v)));
    }
  }
  // Report the error of the mapped-back weights through the engine's forward pass.
  const std::vector<double> mapping = head_context_mapping(p, best.weights);
  best.frobenius_error = frobenius_distance(mapping, p.target);
  best.max_error = max_abs_distance(mapping, p.target);
  return best;
}

double frobenius_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(sum);
}

double max_abs_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace attnrank
