// Vectorisable elementwise math for the hot loops.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/variant/variant.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

// exp(x) for float with Cephes' expf polynomial (about 2 ulp); plain code the
// compiler vectorises, unlike a call to expf. Inputs below -87 give ~1e-38, not 0.
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline double exp_fast(double x) {
  return __builtin_exp(x);
}

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
