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
#include <cstdint>
#include <type_traits>
#include <utility>

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

// A lane index per lane of Vector<T> (integers of T's width), for __builtin_shuffle.
template <typename T>
struct LaneIndicesOf {
  using Index = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef Index type __attribute__((vector_size(ATTNRANK_VECTOR_BYTES)));
};
template <typename T>
using LaneIndices = typename LaneIndicesOf<T>::type;

constexpr int round_up(int value, int multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Vector<T> at the alignment of T: loads and stores of whole registers anywhere in
// a row. Typed accesses, not memcpy: GCC treats a memcpy as able to write any
// object, so after each store it reloaded every pointer and stride a kernel keeps in
// a struct; a store of float lanes only aliases floats.
template <typename T>
struct UnalignedVectorOf {
  typedef T type __attribute__((vector_size(ATTNRANK_VECTOR_BYTES), aligned(alignof(T))));
};

template <typename T>
inline Vector<T> load_vector(const T* from) {
  return *reinterpret_cast<const typename UnalignedVectorOf<T>::type*>(from);
}

template <typename T>
inline void store_vector(T* to, const Vector<T>& v) {
  *reinterpret_cast<typename UnalignedVectorOf<T>::type*>(to) = v;
}

template <typename T>
constexpr T max_of(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
constexpr T min_of(T a, T b) {
  return b < a ? b : a;
}

// The register of lane indices lane_index(0), ..., lane_index(kLanes - 1), built at
// compile time: a shuffle's index register built lane by lane at run time cost a
// dozen masked broadcasts per shuffle (the sum below was a quarter of the per-head
// softmax's time).
template <typename T, typename LaneIndex, int... kLane>
constexpr LaneIndices<T> lane_indices(LaneIndex lane_index, std::integer_sequence<int, kLane...>) {
  return LaneIndices<T>{lane_index(kLane)...};
}
template <typename T, typename LaneIndex>
constexpr LaneIndices<T> lane_indices(LaneIndex lane_index) {
  return lane_indices<T>(lane_index, std::make_integer_sequence<int, kLanes<T>>{});
}

// A register's lanes combined as a tree in registers: lane i with lane i + step, for
// step = kLanes/2, ..., 1 (lanes >= step are not used); a fixed order for a given ISA.
template <typename T, int kStep = kLanes<T> / 2, typename Combine>
inline T reduce_lanes(Vector<T> lanes, Combine combine) {
  if constexpr (kStep == 0) {
    return lanes[0];
  } else {
    constexpr LaneIndices<T> upper =
        lane_indices<T>([](int lane) { return (lane + kStep) % kLanes<T>; });
    return reduce_lanes<T, kStep / 2>(combine(lanes, __builtin_shuffle(lanes, upper)), combine);
  }
}

template <typename T>
inline T sum_lanes(Vector<T> partial) {
  return reduce_lanes<T>(partial, [](Vector<T> lanes, Vector<T> upper) { return lanes + upper; });
}

template <typename T>
inline T largest_lane(Vector<T> top) {
  return reduce_lanes<T>(
      top, [](Vector<T> lanes, Vector<T> upper) { return upper > lanes ? upper : lanes; });
}

// Sum of term(i) over i < width, with kLanes<T> partial sums (register-wide terms
// vector_term(i) for whole registers, scalar_term(i) for the tail) added as a tree:
// short dependency chains, and a fixed order for a given ISA.
template <typename T, typename VectorTerm, typename ScalarTerm>
inline T sum_terms(int width, VectorTerm vector_term, ScalarTerm scalar_term) {
  constexpr int kL = kLanes<T>;
  Vector<T> partial = {};
  int i = 0;
  for (; i + kL <= width; i += kL) partial += vector_term(i);
  for (; i < width; ++i) partial[i % kL] += scalar_term(i);
  return sum_lanes<T>(partial);
}

// out[i] = term(i) for i < width: vector_term(i) for whole registers, scalar_term(i)
// for the tail (the same operations on each element, so the same values; the
// compiler's own vectorisation of such a loop measured 2x slower on 32-wide rows).
template <typename T, typename VectorTerm, typename ScalarTerm>
inline void write_terms(T* out, int width, VectorTerm vector_term, ScalarTerm scalar_term) {
  constexpr int kL = kLanes<T>;
  int i = 0;
  for (; i + kL <= width; i += kL) store_vector(out + i, vector_term(i));
  for (; i < width; ++i) out[i] = scalar_term(i);
}

// Largest of values[0 .. count), count >= 1 (exact in any order).
template <typename T>
inline T largest(const T* values, int count) {
  constexpr int kL = kLanes<T>;
  if (count < kL) {
    T top = values[0];
    for (int i = 1; i < count; ++i) top = max_of(top, values[i]);
    return top;
  }
  Vector<T> top = load_vector(values);
  for (int i = kL; i + kL <= count; i += kL) {
    const Vector<T> next = load_vector(values + i);
    top = next > top ? next : top;
  }
  T result = largest_lane<T>(top);
  for (int i = count - count % kL; i < count; ++i) result = max_of(result, values[i]);
  return result;
}

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
