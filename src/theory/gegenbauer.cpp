#include "attnrank/theory/gegenbauer.h"

#include <algorithm>
#include <boost/math/quadrature/gauss.hpp>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "attnrank/core/error.h"

namespace attnrank {

namespace {

void check_dim(int dim, int max_degree) {
  if (dim < 2)
    throw ConfigError("gegenbauer: dimension must be >= 2 (got " + std::to_string(dim) + ")");
  if (max_degree < 0) throw ConfigError("gegenbauer: max degree must be >= 0");
}

// Off-diagonal a_k (k >= 1) of the Jacobi matrix of the orthonormal polynomials:
// t Q_k = a_{k+1} Q_{k+1} + a_k Q_{k-1}.
double jacobi_off_diagonal(int dim, int k) {
  if (dim == 2 && k == 1) return std::sqrt(0.5);  // the general formula reads 0/0 there
  const double kk = k, d = dim;
  return std::sqrt(kk * (kk + d - 3.0) / ((2.0 * kk + d - 4.0) * (2.0 * kk + d - 2.0)));
}

// Gauss-Legendre nodes and weights on [-1, 1] (Boost stores the non-negative half).
struct GaussRule {
  std::vector<double> nodes, weights;
};

const GaussRule& gauss_rule() {
  static const GaussRule rule = [] {
    using Gauss = boost::math::quadrature::gauss<double, 30>;
    GaussRule r;
    const auto& x = Gauss::abscissa();
    const auto& w = Gauss::weights();
    for (size_t i = 0; i < x.size(); ++i) {
      r.nodes.push_back(x[i]);
      r.weights.push_back(w[i]);
      if (x[i] != 0.0) {
        r.nodes.push_back(-x[i]);
        r.weights.push_back(w[i]);
      }
    }
    return r;
  }();
  return rule;
}

}  // namespace

double sphere_dot_density_constant(int dim) {
  check_dim(dim, 0);
  return std::exp(std::lgamma(0.5 * dim) - std::lgamma(0.5 * (dim - 1))) /
         std::sqrt(std::numbers::pi);
}

double sphere_dot_density(int dim, double t) {
  if (t <= -1.0 || t >= 1.0) return dim == 3 ? 0.5 : (dim > 3 ? 0.0 : INFINITY);
  return sphere_dot_density_constant(dim) * std::pow(1.0 - t * t, 0.5 * (dim - 3));
}

double harmonic_dimension(int dim, int degree) {
  check_dim(dim, degree);
  if (degree == 0) return 1.0;
  if (dim == 2) return 2.0;
  // N(d,k) = (2k + d - 2) (k + d - 3)! / (k! (d - 2)!)
  const double k = degree, d = dim;
  return std::exp(std::log(2.0 * k + d - 2.0) + std::lgamma(k + d - 2.0) - std::lgamma(k + 1.0) -
                  std::lgamma(d - 1.0));
}

void legendre_sphere(int dim, int max_degree, double t, double* out) {
  check_dim(dim, max_degree);
  out[0] = 1.0;
  if (max_degree >= 1) out[1] = t;
  for (int k = 1; k < max_degree; ++k)
    out[k + 1] = ((2.0 * k + dim - 2.0) * t * out[k] - k * out[k - 1]) / (k + dim - 2.0);
}

void gegenbauer_orthonormal(int dim, int max_degree, double t, double* out) {
  check_dim(dim, max_degree);
  out[0] = 1.0;
  if (max_degree >= 1) out[1] = t / jacobi_off_diagonal(dim, 1);
  for (int k = 1; k < max_degree; ++k)
    out[k + 1] =
        (t * out[k] - jacobi_off_diagonal(dim, k) * out[k - 1]) / jacobi_off_diagonal(dim, k + 1);
}

double ZonalExpansion::degree_energy(int degree) const {
  const double c = coefficients.at(static_cast<size_t>(degree));
  return c * c;
}

double ZonalExpansion::energy_above(int degree) const {
  double captured = 0.0;
  for (int k = 0; k <= std::min(degree, max_degree()); ++k) captured += degree_energy(k);
  return std::max(0.0, energy - captured);
}

ZonalExpansion gegenbauer_expand(const std::function<double(double)>& f, int dim, int max_degree,
                                 const std::vector<double>& breakpoints) {
  check_dim(dim, max_degree);
  // Panel edges in theta = acos(t), increasing.
  std::vector<double> edges = {0.0, std::numbers::pi};
  for (double t : breakpoints)
    if (t > -1.0 && t < 1.0) edges.push_back(std::acos(t));
  std::sort(edges.begin(), edges.end());
  // The integrand is a trigonometric polynomial of degree about K + d in theta times the
  // smooth pieces of f; 30 nodes resolve about 16 radians of its phase per panel.
  const double panels_total =
      std::max(8.0, std::ceil((max_degree + dim) * std::numbers::pi / 16.0));
  const GaussRule& rule = gauss_rule();
  const double c_d = sphere_dot_density_constant(dim);

  ZonalExpansion result;
  result.dim = dim;
  result.coefficients.assign(static_cast<size_t>(max_degree) + 1, 0.0);
  std::vector<double> q(static_cast<size_t>(max_degree) + 1);
  for (size_t e = 0; e + 1 < edges.size(); ++e) {
    const double lo = edges[e], hi = edges[e + 1];
    if (hi <= lo) continue;
    const int panels =
        std::max(1, static_cast<int>(std::ceil(panels_total * (hi - lo) / std::numbers::pi)));
    const double width = (hi - lo) / panels;
    for (int p = 0; p < panels; ++p) {
      const double mid = lo + (p + 0.5) * width;
      for (size_t i = 0; i < rule.nodes.size(); ++i) {
        const double theta = mid + 0.5 * width * rule.nodes[i];
        const double t = std::cos(theta);
        const double weight =
            0.5 * width * rule.weights[i] * c_d * std::pow(std::sin(theta), dim - 2);
        const double value = f(t);
        result.energy += weight * value * value;
        gegenbauer_orthonormal(dim, max_degree, t, q.data());
        for (int k = 0; k <= max_degree; ++k) result.coefficients[k] += weight * value * q[k];
      }
    }
  }
  return result;
}

ZonalExpansion sign_expansion(int dim, int max_degree) {
  check_dim(dim, max_degree);
  ZonalExpansion result;
  result.dim = dim;
  result.energy = 1.0;
  result.coefficients.assign(static_cast<size_t>(max_degree) + 1, 0.0);
  // Values and derivatives of Q_k at 0 by the differentiated recurrence.
  double value_prev = 1.0, value = 0.0;                                // Q_0(0), Q_1(0)
  double slope_prev = 0.0, slope = 1.0 / jacobi_off_diagonal(dim, 1);  // Q_0'(0), Q_1'(0)
  const double c_d = sphere_dot_density_constant(dim);
  for (int k = 1; k <= max_degree; ++k) {
    if (k % 2 == 1) result.coefficients[k] = 2.0 * c_d * slope / (k * (k + dim - 2.0));
    const double a_k = jacobi_off_diagonal(dim, k), a_next = jacobi_off_diagonal(dim, k + 1);
    const double value_next = -a_k * value_prev / a_next;
    const double slope_next = (value - a_k * slope_prev) / a_next;
    value_prev = value;
    value = value_next;
    slope_prev = slope;
    slope = slope_next;
  }
  return result;
}

double zonal_product_mean(const std::vector<double>& f, const std::vector<double>& g, int dim,
                          double rho) {
  const size_t degrees = std::min(f.size(), g.size());
  if (degrees == 0) return 0.0;
  std::vector<double> p(degrees);
  legendre_sphere(dim, static_cast<int>(degrees) - 1, rho, p.data());
  double sum = 0.0;
  for (size_t k = 0; k < degrees; ++k) sum += f[k] * g[k] * p[k];
  return sum;
}

}  // namespace attnrank
