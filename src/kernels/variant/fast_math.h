// Vectorisable elementwise math for the hot loops.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "variant.h"

// The intrinsics headers define their functions always inline (never a weak symbol
// another variant's object could supply; see variant.h).
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

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

#if defined(__AVX512F__) && ATTNRANK_VECTOR_BYTES == 64
// The masked AVX-512 forms with every lane on: the unmasked ones start from an
// "undefined" register that GCC 12 reports as maybe uninitialised (-Werror).
constexpr __mmask16 kAllLanes = 0xFFFF;
#endif

// Per-lane max(x, low), min(x, high) and floor: one instruction each where the ISA
// has it. GCC compiles a vector ternary to a compare and a blend, and has no vector
// floor; the fallbacks are the same functions. Each keeps x where x is NaN, as the
// ternaries do (MAXPS(a, b) and MINPS(a, b) return b when either is NaN).
inline Vector<float> at_least(Vector<float> x, float low) {
#if defined(__AVX512F__) && ATTNRANK_VECTOR_BYTES == 64
  return _mm512_mask_max_ps(x, kAllLanes, Vector<float>{} + low, x);
#elif defined(__AVX__) && ATTNRANK_VECTOR_BYTES == 32
  return _mm256_max_ps(Vector<float>{} + low, x);
#elif defined(__SSE2__) && ATTNRANK_VECTOR_BYTES == 16
  return _mm_max_ps(Vector<float>{} + low, x);
#else
  return x < low ? Vector<float>{} + low : x;
#endif
}

inline Vector<float> at_most(Vector<float> x, float high) {
#if defined(__AVX512F__) && ATTNRANK_VECTOR_BYTES == 64
  return _mm512_mask_min_ps(x, kAllLanes, Vector<float>{} + high, x);
#elif defined(__AVX__) && ATTNRANK_VECTOR_BYTES == 32
  return _mm256_min_ps(Vector<float>{} + high, x);
#elif defined(__SSE2__) && ATTNRANK_VECTOR_BYTES == 16
  return _mm_min_ps(Vector<float>{} + high, x);
#else
  return x > high ? Vector<float>{} + high : x;
#endif
}

// floor(y) for |y| < 2^31 (exp_fast's range).
inline Vector<float> floor_lanes(Vector<float> y) {
#if defined(__AVX512F__) && ATTNRANK_VECTOR_BYTES == 64
  return _mm512_mask_floor_ps(y, kAllLanes, y);
#elif defined(__AVX__) && ATTNRANK_VECTOR_BYTES == 32
  return _mm256_floor_ps(y);
#elif defined(__SSE4_1__) && ATTNRANK_VECTOR_BYTES == 16
  return _mm_floor_ps(y);
#elif defined(__aarch64__)
  return vrndmq_f32(y);
#else
  typedef int32_t Integers __attribute__((vector_size(ATTNRANK_VECTOR_BYTES)));
  const Vector<float> n =
      __builtin_convertvector(__builtin_convertvector(y, Integers), Vector<float>);
  return n > y ? n - 1.0f : n;  // truncation rounds negative values up
#endif
}

// exp_fast on a whole register, operation for operation the scalar one (GCC does
// not vectorise the scalar function's float-to-int bit trick by itself).
inline Vector<float> exp_fast(Vector<float> x) {
  typedef int32_t Integers __attribute__((vector_size(ATTNRANK_VECTOR_BYTES)));
  x = at_most(at_least(x, -87.0f), 88.0f);
  const Vector<float> n = floor_lanes(x * 1.44269504088896341f + 0.5f);
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
