// Small dense-vector helpers shared by the point tasks, the theory tools and their
// tests.
#pragma once
#include <cmath>

#include "attnrank/core/rng.h"

namespace attnrank {

// A point uniform on the sphere S^{dim-1}: a standard Gaussian vector, normalised
// (redrawn in the measure-zero case of the zero vector).
inline void random_unit_vector(Rng& rng, double* out, int dim) {
  double squares = 0.0;
  do {
    squares = 0.0;
    for (int i = 0; i < dim; ++i) {
      out[i] = rng.normal();
      squares += out[i] * out[i];
    }
  } while (squares == 0.0);
  const double inv = 1.0 / std::sqrt(squares);
  for (int i = 0; i < dim; ++i) out[i] *= inv;
}

inline double dot(const double* a, const double* b, int dim) {
  double sum = 0.0;
  for (int i = 0; i < dim; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace attnrank
