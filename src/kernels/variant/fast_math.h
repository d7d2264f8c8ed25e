// Vectorisable elementwise math for the hot loops.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "variant.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

// Cephes' expf polynomial: e^r for |r| <= ln(2)/2, on a float or a whole register.
template <typename V>
inline V exp_reduced(V r) {
  const V r2 = r * r;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r2 + r + 1.0f;
}

// exp(x) for float (about 2 ulp): x = n ln 2 + r, e^x = 2^n e^r, with 2^n built
// from its bits. Inputs below -87 give ~1e-38, not 0.
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return exp_reduced(r) * scale;
}

inline double exp_fast(double x) {
  return __builtin_exp(x);
}

// exp_fast on a whole register, operation for operation the scalar one (GCC does
// not vectorise the scalar function's float-to-int bit trick by itself).
inline Vector<float> exp_fast(Vector<float> x) {
  typedef int32_t Integers __attribute__((vector_size(ATTNRANK_VECTOR_BYTES)));
  x = x < -87.0f ? Vector<float>{} - 87.0f : x;
  x = x > 88.0f ? Vector<float>{} + 88.0f : x;
  const Vector<float> y = x * 1.44269504088896341f + 0.5f;
  Vector<float> n = __builtin_convertvector(__builtin_convertvector(y, Integers), Vector<float>);
  n = n > y ? n - 1.0f : n;  // floor: truncation rounds negative values up
  const Vector<float> r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  const Integers bits = (__builtin_convertvector(n, Integers) + 127) << 23;
  return exp_reduced(r) * (Vector<float>)bits;  // a vector cast reinterprets the bits
}

inline Vector<double> exp_fast(Vector<double> x) {
  for (int i = 0; i < kLanes<double>; ++i) x[i] = __builtin_exp(x[i]);
  return x;
}

// The builtins, not std::sqrt: no inline function from a std header (see variant.h).
inline float square_root(float x) {
  return __builtin_sqrtf(x);
}
inline double square_root(double x) {
  return __builtin_sqrt(x);
}

// out[i] = exp_fast(in[i] - shift), whole registers then a scalar tail (in may
// equal out).
template <typename T>
inline void exp_shifted_array(const T* in, T shift, T* out, int count) {
  constexpr int kL = kLanes<T>;
  int i = 0;
  for (; i + kL <= count; i += kL) store_vector(out + i, exp_fast(load_vector(in + i) - shift));
  for (; i < count; ++i) out[i] = exp_fast(static_cast<T>(in[i] - shift));
}

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
