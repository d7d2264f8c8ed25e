// Register-tiled GEMM for the tiny per-head products of attention (N x r times
// r x N and the like), where a BLAS call per head would cost more than the maths.
// Written with GCC vector extensions of the variant's width, so the accumulators
// stay in registers.
#pragma once
#include <cstring>

#include "variant.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

// Entry (i, e) of A, stored as is (a[i * lda + e]) or transposed (a[e * lda + i]).
template <bool kTransposedA, typename T>
inline T a_entry(const T* a, int lda, int i, int e) {
  return kTransposedA ? a[e * lda + i] : a[i * lda + e];
}

// Every e in [0, k) for every row of C.
struct AllTerms {
  int begin(int /*first_row*/) const { return 0; }
  int end(int /*last_row*/, int k) const { return k; }
};

// C (m, n_padded) = A (m, k) * B (k, n_padded), or A^T * B with A given as (k, m);
// n_padded is a multiple of kLanes<T>; row strides lda, ldb, ldc. Blocks of 4 rows
// x 2 vectors of C are accumulated in registers (two B loads per 8 multiply-adds),
// then 8 x 1 (4 x 1 for the last rows) for an odd last vector: eight independent
// sums keep both multiply-add units busy where four waited on their latency. Each
// entry of C is summed over e in order.
// `terms` may narrow the sum for rows [i, l] of C to e in [terms.begin(i),
// terms.end(l, k)) when A is zero outside it for those rows (a mask's zeros): the
// skipped terms would add exact zeros, so C is the same, bit for bit.
template <bool kTransposedA, typename T, typename Terms = AllTerms>
inline void small_gemm_tiled(int m, int k, int n_padded, const T* a, int lda, const T* b, int ldb,
                             T* c, int ldc, const Terms& terms = {}) {
  constexpr int kL = kLanes<T>;
  int j0 = 0;
  for (; j0 + 2 * kL <= n_padded; j0 += 2 * kL) {
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      const int e_end = terms.end(i + 3, k);
      Vector<T> acc00 = {}, acc01 = {}, acc10 = {}, acc11 = {}, acc20 = {}, acc21 = {}, acc30 = {},
                acc31 = {};
      for (int e = terms.begin(i); e < e_end; ++e) {
        const Vector<T> b0 = load_vector(b + e * ldb + j0);
        const Vector<T> b1 = load_vector(b + e * ldb + j0 + kL);
        const T a0 = a_entry<kTransposedA>(a, lda, i, e),
                a1 = a_entry<kTransposedA>(a, lda, i + 1, e),
                a2 = a_entry<kTransposedA>(a, lda, i + 2, e),
                a3 = a_entry<kTransposedA>(a, lda, i + 3, e);
        acc00 += a0 * b0;
        acc01 += a0 * b1;
        acc10 += a1 * b0;
        acc11 += a1 * b1;
        acc20 += a2 * b0;
        acc21 += a2 * b1;
        acc30 += a3 * b0;
        acc31 += a3 * b1;
      }
      store_vector(c + i * ldc + j0, acc00);
      store_vector(c + i * ldc + j0 + kL, acc01);
      store_vector(c + (i + 1) * ldc + j0, acc10);
      store_vector(c + (i + 1) * ldc + j0 + kL, acc11);
      store_vector(c + (i + 2) * ldc + j0, acc20);
      store_vector(c + (i + 2) * ldc + j0 + kL, acc21);
      store_vector(c + (i + 3) * ldc + j0, acc30);
      store_vector(c + (i + 3) * ldc + j0 + kL, acc31);
    }
    for (; i < m; ++i) {
      Vector<T> acc0 = {}, acc1 = {};
      for (int e = terms.begin(i), e_end = terms.end(i, k); e < e_end; ++e) {
        const T a0 = a_entry<kTransposedA>(a, lda, i, e);
        acc0 += a0 * load_vector(b + e * ldb + j0);
        acc1 += a0 * load_vector(b + e * ldb + j0 + kL);
      }
      store_vector(c + i * ldc + j0, acc0);
      store_vector(c + i * ldc + j0 + kL, acc1);
    }
  }
  for (; j0 < n_padded; j0 += kL) {
    int i = 0;
    for (; i + 8 <= m; i += 8) {
      Vector<T> acc[8] = {};
      for (int e = terms.begin(i), e_end = terms.end(i + 7, k); e < e_end; ++e) {
        const Vector<T> b_vec = load_vector(b + e * ldb + j0);
#pragma GCC unroll 8
        for (int r = 0; r < 8; ++r) acc[r] += a_entry<kTransposedA>(a, lda, i + r, e) * b_vec;
      }
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) store_vector(c + (i + r) * ldc + j0, acc[r]);
    }
    for (; i + 4 <= m; i += 4) {
      Vector<T> acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
      for (int e = terms.begin(i), e_end = terms.end(i + 3, k); e < e_end; ++e) {
        const Vector<T> b_vec = load_vector(b + e * ldb + j0);
        acc0 += a_entry<kTransposedA>(a, lda, i, e) * b_vec;
        acc1 += a_entry<kTransposedA>(a, lda, i + 1, e) * b_vec;
        acc2 += a_entry<kTransposedA>(a, lda, i + 2, e) * b_vec;
        acc3 += a_entry<kTransposedA>(a, lda, i + 3, e) * b_vec;
      }
      store_vector(c + i * ldc + j0, acc0);
      store_vector(c + (i + 1) * ldc + j0, acc1);
      store_vector(c + (i + 2) * ldc + j0, acc2);
      store_vector(c + (i + 3) * ldc + j0, acc3);
    }
    for (; i < m; ++i) {
      Vector<T> acc = {};
      for (int e = terms.begin(i), e_end = terms.end(i, k); e < e_end; ++e)
        acc += a_entry<kTransposedA>(a, lda, i, e) * load_vector(b + e * ldb + j0);
      store_vector(c + i * ldc + j0, acc);
    }
  }
}

// C = A B, A (m, k) with row stride lda.
template <typename T, typename Terms = AllTerms>
inline void small_gemm(int m, int k, int n_padded, const T* a, int lda, const T* b, int ldb, T* c,
                       int ldc, const Terms& terms = {}) {
  small_gemm_tiled<false>(m, k, n_padded, a, lda, b, ldb, c, ldc, terms);
}

// C = A^T B, A given as (k, m) with row stride lda: no transposed copy of A needed.
template <typename T, typename Terms = AllTerms>
inline void small_gemm_at(int m, int k, int n_padded, const T* a, int lda, const T* b, int ldb,
                          T* c, int ldc, const Terms& terms = {}) {
  small_gemm_tiled<true>(m, k, n_padded, a, lda, b, ldb, c, ldc, terms);
}

// Transposes kL rows of kL values in registers: log2(kL) rounds of two-register
// shuffles, in round kHalf each pair of rows (i, i + kHalf) swapping their
// off-diagonal kHalf x kHalf blocks.
template <typename T, int kHalf = kLanes<T> / 2>
inline void transpose_registers(Vector<T> (&rows)[kLanes<T>]) {
  constexpr int kL = kLanes<T>;
  // Indices into the pair (rows[i], rows[i + kHalf]).
  constexpr LaneIndices<T> low = lane_indices<T>([](int lane) {
    const int chunk = lane & ~(2 * kHalf - 1), offset = lane & (2 * kHalf - 1);
    return offset < kHalf ? chunk + offset : kL + chunk + offset - kHalf;
  });
  constexpr LaneIndices<T> high = lane_indices<T>([](int lane) {
    const int chunk = lane & ~(2 * kHalf - 1), offset = lane & (2 * kHalf - 1);
    return offset < kHalf ? chunk + offset + kHalf : kL + chunk + offset;
  });
  for (int i = 0; i < kL; ++i) {
    if (i & kHalf) continue;
    const Vector<T> first = rows[i], second = rows[i + kHalf];
    rows[i] = __builtin_shuffle(first, second, low);
    rows[i + kHalf] = __builtin_shuffle(first, second, high);
  }
  if constexpr (kHalf > 1) transpose_registers<T, kHalf / 2>(rows);
}

// to[e * ld_to + j] = from[j * ld_from + e] * scale for j < rows, e < cols, and
// to[e * ld_to + j] = 0 for j in [rows, round_up(rows, kL)): kL x kL blocks through
// registers, edge blocks padded with zeros (a head of fewer tokens than lanes would
// otherwise be transposed one value at a time). ld_to >= round_up(rows, kL).
template <typename T>
inline void transpose_scaled(const T* from, size_t ld_from, int rows, int cols, T scale, T* to,
                             int ld_to) {
  constexpr int kL = kLanes<T>;
  for (int j0 = 0; j0 < rows; j0 += kL) {
    const int block_rows = min_of(kL, rows - j0);
    for (int e0 = 0; e0 < cols; e0 += kL) {
      const int block_cols = min_of(kL, cols - e0);
      Vector<T> block[kL];
      for (int j = 0; j < kL; ++j) {
        const T* row = from + (j0 + j) * ld_from + e0;
        if (j >= block_rows) {
          block[j] = Vector<T>{};
        } else if (block_cols == kL) {
          block[j] = load_vector(row);
        } else {
          block[j] = Vector<T>{};
          std::memcpy(&block[j], row, sizeof(T) * block_cols);
        }
      }
      transpose_registers<T>(block);
      for (int e = 0; e < block_cols; ++e)
        store_vector(to + (e0 + e) * ld_to + j0, block[e] * scale);
    }
  }
}

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
