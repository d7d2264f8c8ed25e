// Zonal functions on the sphere S^{d-1} and their Gegenbauer expansions (Amsel et al. 2024, arXiv
// 2407.16153, the tool behind Theorem 2 and the random-features experiment).
//
// For u, v independent and uniform on S^{d-1}, t = <u, v> has the density
// c_d (1 - t^2)^{(d-3)/2} on [-1, 1]. The normalised Gegenbauer polynomials Q_k are
// orthonormal for that density, E[Q_j(t) Q_k(t)] = delta_jk, and Q_k = sqrt(N(d,k)) P_k
// where P_k(1) = 1 and N(d,k) is the dimension of the degree-k spherical harmonics.
// A zonal function f(t) = sum_k f_k Q_k(t) has energy E[f(t)^2] = sum_k f_k^2; f_k^2 is its
// energy in degree k. Dimensions d >= 2 are supported (d = 2: Chebyshev polynomials).
#pragma once
#include <functional>
#include <vector>

namespace attnrank {

// c_d: normalising constant of the density of t = <u, v>; it is also the density at t = 0.
double sphere_dot_density_constant(int dim);
// c_d (1 - t^2)^{(d-3)/2}.
double sphere_dot_density(int dim, double t);
// N(d, k) as a double (infinite when it overflows).
double harmonic_dimension(int dim, int degree);

// P_0(t) .. P_K(t) with P_k(1) = 1 (Legendre for d = 3, Chebyshev for d = 2); |P_k| <= 1.
void legendre_sphere(int dim, int max_degree, double t, double* out);
// Q_0(t) .. Q_K(t), orthonormal for the density of t.
void gegenbauer_orthonormal(int dim, int max_degree, double t, double* out);

// Coefficients f_0 .. f_K and the total energy E[f(t)^2] of a zonal function.
struct ZonalExpansion {
  int dim = 0;
  std::vector<double> coefficients;
  double energy = 0.0;

  int max_degree() const { return static_cast<int>(coefficients.size()) - 1; }
  // f_k^2.
  double degree_energy(int degree) const;
  // Energy above degree k: E[f^2] - sum_{j <= k} f_j^2 (clamped at 0).
  double energy_above(int degree) const;
};

// Computes the expansion by quadrature in the angle (t = cos theta, so the weight
// (1 - t^2)^{(d-3)/2} dt becomes sin^{d-2}(theta) d(theta)): composite Gauss-Legendre
// (Boost.Math, 30 nodes per panel) with panel edges at `breakpoints` (the t values where f
// jumps or has a kink). A function that is smooth in theta between its breakpoints (sign,
// arcsin, polynomials) gets coefficients accurate to about 1e-13.
ZonalExpansion gegenbauer_expand(const std::function<double(double)>& f, int dim, int max_degree,
                                 const std::vector<double>& breakpoints = {});

// Exact coefficients of sign(t): zero for even k, and for odd k, from the Sturm-Liouville
// form of the Gegenbauer equation, f_k = 2 c_d Q_k'(0) / (k (k + d - 2)). Energy 1.
ZonalExpansion sign_expansion(int dim, int max_degree);

// E_y[F(<y, q>) G(<y, k>)] for y uniform and unit q, k with <q, k> = rho, from the
// coefficients of F and G (Funk-Hecke): sum_k F_k G_k P_k(rho), over the common degrees.
double zonal_product_mean(const std::vector<double>& f, const std::vector<double>& g, int dim,
                          double rho);

}  // namespace attnrank
