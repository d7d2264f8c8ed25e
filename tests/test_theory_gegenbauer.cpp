// Gegenbauer tools against Boost's polynomials, known expansions, brute-force quadrature
// in t, and Monte Carlo on the sphere.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/math/special_functions/gegenbauer.hpp>
#include <boost/math/special_functions/legendre.hpp>
#include <cmath>
#include <numbers>
#include <vector>

#include "attnrank/core/rng.h"
#include "attnrank/core/vectors.h"
#include "attnrank/theory/gegenbauer.h"

using namespace attnrank;

namespace {

// Midpoint rule in t itself (no change of variable), as an independent reference.
double direct_coefficient(const std::function<double(double)>& f, int dim, int degree) {
  const int steps = 2000000;
  const double h = 2.0 / steps;
  std::vector<double> q(static_cast<size_t>(degree) + 1);
  double sum = 0.0;
  for (int i = 0; i < steps; ++i) {
    const double t = -1.0 + (i + 0.5) * h;
    gegenbauer_orthonormal(dim, degree, t, q.data());
    sum += f(t) * q[degree] * sphere_dot_density(dim, t) * h;
  }
  return sum;
}

}  // namespace

TEST(Gegenbauer, LegendreNormalisedMatchesBoost) {
  std::vector<double> p(13);
  for (int dim : {2, 3, 5, 8, 64}) {
    for (double t : {-0.97, -0.4, 0.0, 0.31, 0.88}) {
      legendre_sphere(dim, 12, t, p.data());
      for (int k = 0; k <= 12; ++k) {
        double expected;
        if (dim == 2) {
          expected = std::cos(k * std::acos(t));
        } else if (dim == 3) {
          expected = boost::math::legendre_p(k, t);
        } else {
          const double lambda = 0.5 * (dim - 2);
          expected =
              boost::math::gegenbauer(k, lambda, t) / boost::math::gegenbauer(k, lambda, 1.0);
        }
        EXPECT_NEAR(p[k], expected, 1e-12) << "d " << dim << " k " << k << " t " << t;
      }
    }
  }
}

TEST(Gegenbauer, OrthonormalIsScaledLegendre) {
  std::vector<double> p(21), q(21);
  for (int dim : {2, 3, 7, 32}) {
    legendre_sphere(dim, 20, 0.37, p.data());
    gegenbauer_orthonormal(dim, 20, 0.37, q.data());
    for (int k = 0; k <= 20; ++k)
      EXPECT_NEAR(q[k], std::sqrt(harmonic_dimension(dim, k)) * p[k],
                  1e-10 * std::abs(q[k]) + 1e-13)
          << "d " << dim << " k " << k;
  }
  EXPECT_DOUBLE_EQ(harmonic_dimension(3, 4), 9.0);
  EXPECT_NEAR(harmonic_dimension(5, 2), 14.0, 1e-9);  // (d+2)(d-1)/2
}

TEST(Gegenbauer, ExpansionOfABasisPolynomialIsAUnitVector) {
  for (int dim : {3, 8, 64}) {
    const int j = 5;
    auto f = [dim](double t) {
      std::vector<double> q(j + 1);
      gegenbauer_orthonormal(dim, j, t, q.data());
      return q[j];
    };
    const ZonalExpansion e = gegenbauer_expand(f, dim, 12);
    EXPECT_NEAR(e.energy, 1.0, 1e-12);
    for (int k = 0; k <= 12; ++k) EXPECT_NEAR(e.coefficients[k], k == j ? 1.0 : 0.0, 1e-12);
  }
}

TEST(Gegenbauer, KnownExpansionOfTSquared) {
  // t^2 = 1/d + ((d-1)/d) P_2(t), and Q_2 = sqrt(N(d,2)) P_2.
  for (int dim : {2, 3, 10, 64}) {
    const ZonalExpansion e = gegenbauer_expand([](double t) { return t * t; }, dim, 6);
    EXPECT_NEAR(e.coefficients[0], 1.0 / dim, 1e-13);
    EXPECT_NEAR(e.coefficients[2], (dim - 1.0) / dim / std::sqrt(harmonic_dimension(dim, 2)),
                1e-13);
    for (int k : {1, 3, 4, 5, 6}) EXPECT_NEAR(e.coefficients[k], 0.0, 1e-13);
    EXPECT_NEAR(e.energy, 3.0 / (dim * (dim + 2.0)), 1e-13);  // E[t^4]
  }
}

TEST(Gegenbauer, SignClosedFormMatchesQuadrature) {
  for (int dim : {2, 3, 8, 64}) {
    const ZonalExpansion exact = sign_expansion(dim, 301);
    const ZonalExpansion quad = gegenbauer_expand(
        [](double t) { return t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0); }, dim, 301, {0.0});
    EXPECT_NEAR(quad.energy, 1.0, 1e-12);
    for (int k = 0; k <= 301; ++k)
      EXPECT_NEAR(exact.coefficients[k], quad.coefficients[k], 1e-12) << "d " << dim << " k " << k;
    // Degree 1: E[|t|] sqrt(d), which tends to sqrt(2/pi).
    const double mean_abs = 2.0 * sphere_dot_density_constant(dim) / (dim - 1.0);
    EXPECT_NEAR(exact.coefficients[1], mean_abs * std::sqrt(double(dim)), 1e-12);
    // Parseval: the captured energy increases towards 1.
    EXPECT_GT(exact.energy_above(1), exact.energy_above(11));
    EXPECT_LT(exact.energy_above(301), 0.05);
  }
}

TEST(Gegenbauer, ArcsinCoefficientsMatchDirectQuadrature) {
  for (int dim : {3, 8}) {
    const ZonalExpansion quad = gegenbauer_expand([](double t) { return std::asin(t); }, dim, 9);
    for (int k : {1, 3, 5, 9}) {
      const double direct = direct_coefficient([](double t) { return std::asin(t); }, dim, k);
      EXPECT_NEAR(quad.coefficients[k], direct, 1e-8) << "d " << dim << " k " << k;
    }
    EXPECT_NEAR(quad.coefficients[2], 0.0, 1e-14);
  }
}

TEST(Gegenbauer, FunkHeckeProductMatchesMonteCarlo) {
  const int dim = 6, degrees = 400;
  const double rho = 0.6;
  const ZonalExpansion sign = sign_expansion(dim, degrees);
  const ZonalExpansion arcsin =
      gegenbauer_expand([](double t) { return std::asin(t); }, dim, degrees);
  const double predicted = zonal_product_mean(sign.coefficients, arcsin.coefficients, dim, rho);
  // q = e_0, k = rho e_0 + sqrt(1 - rho^2) e_1.
  Rng rng(7);
  std::vector<double> y(dim);
  const int samples = 400000;
  double sum = 0.0, sum_sq = 0.0;
  for (int s = 0; s < samples; ++s) {
    random_unit_vector(rng, y.data(), dim);
    const double value =
        (y[0] > 0 ? 1.0 : -1.0) *
        std::asin(std::clamp(rho * y[0] + std::sqrt(1 - rho * rho) * y[1], -1.0, 1.0));
    sum += value;
    sum_sq += value * value;
  }
  const double mean = sum / samples;
  const double stderr_mean = std::sqrt((sum_sq / samples - mean * mean) / samples);
  EXPECT_NEAR(predicted, mean, 5 * stderr_mean);
  EXPECT_GT(predicted, 0.1);
}
