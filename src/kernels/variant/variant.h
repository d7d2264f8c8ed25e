// Included first by every source in src/kernels/variant/, which CMake compiles once
// per instruction set with ATTNRANK_VARIANT (the namespace: avx512, avx2, sse2,
// neon, portable) and ATTNRANK_VECTOR_BYTES (the ISA's vector register width) set.
// Everything such a source defines must stay inside attnrank::kernels::VARIANT:
// an inline function or template instantiation defined outside it would be a weak
// symbol that the linker may take from the AVX-512 object for every caller.
#pragma once
#if !defined(ATTNRANK_VARIANT) || !defined(ATTNRANK_VECTOR_BYTES)
#error "src/kernels/variant/ sources are compiled per ISA by CMake (attnrank_add_kernel_variant)"
#endif
#include <cstring>

namespace attnrank::kernels::ATTNRANK_VARIANT {

// One vector register of T: 64 bytes with AVX-512, 32 with AVX2, 16 with SSE2/NEON.
template <typename T>
struct VectorOf {
  typedef T type __attribute__((vector_size(ATTNRANK_VECTOR_BYTES)));
};
template <typename T>
using Vector = typename VectorOf<T>::type;

// Values of T in one Vector<T>.
template <typename T>
constexpr int kLanes = static_cast<int>(ATTNRANK_VECTOR_BYTES / sizeof(T));

constexpr int round_up(int value, int multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

template <typename T>
inline Vector<T> load_vector(const T* from) {
  Vector<T> v;
  std::memcpy(&v, from, sizeof v);
  return v;
}

template <typename T>
inline void store_vector(T* to, const Vector<T>& v) {
  std::memcpy(to, &v, sizeof v);
}

template <typename T>
constexpr T max_of(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
constexpr T min_of(T a, T b) {
  return b < a ? b : a;
}

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
