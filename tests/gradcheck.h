// Float64 central finite differences against analytic gradients.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "attnrank/core/rng.h"

namespace attnrank::testing {

inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed, 77);
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

// Compares analytic[i] with (loss(x + h e_i) - loss(x - h e_i)) / 2h for up to
// `samples` indices of `values` (all when fewer). `loss` reads `values`.
inline void expect_gradient_matches(const std::string& what, std::vector<double>& values,
                                    const std::vector<double>& analytic,
                                    const std::function<double()>& loss, int samples = 40,
                                    double tolerance = 1e-6) {
  ASSERT_EQ(values.size(), analytic.size()) << what;
  const size_t n = values.size();
  Rng rng(n, 99);
  const double h = 1e-6;
  const size_t count = std::min<size_t>(n, static_cast<size_t>(samples));
  for (size_t k = 0; k < count; ++k) {
    const size_t i = n <= static_cast<size_t>(samples) ? k : rng.next_u64() % n;
    const double saved = values[i];
    values[i] = saved + h;
    const double plus = loss();
    values[i] = saved - h;
    const double minus = loss();
    values[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    const double scale = std::max({1.0, std::abs(numeric), std::abs(analytic[i])});
    EXPECT_NEAR(analytic[i], numeric, tolerance * scale) << what << " index " << i;
  }
}

}  // namespace attnrank::testing
