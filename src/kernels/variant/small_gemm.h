// Register-tiled GEMM for the tiny per-head products of attention (N x r times
// r x N and the like), where a BLAS call per head would cost more than the maths.
// Written with GCC vector extensions of the variant's width, so the accumulators
// stay in registers.
#pragma once
#include "variant.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

// C (m, n_padded) = A (m, k) * B (k, n_padded); n_padded is a multiple of
// kLanes<T>; row strides lda, ldb, ldc. Blocks of 4 rows x 1 vector of C are
// accumulated in registers.
template <typename T>
inline void small_gemm(int m, int k, int n_padded, const T* a, int lda, const T* b, int ldb, T* c,
                       int ldc) {
  constexpr int kL = kLanes<T>;
  for (int j0 = 0; j0 < n_padded; j0 += kL) {
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      Vector<T> acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
      const T* a0 = a + i * lda;
      for (int e = 0; e < k; ++e) {
        const Vector<T> b_vec = load_vector(b + e * ldb + j0);
        acc0 += a0[e] * b_vec;
        acc1 += a0[lda + e] * b_vec;
        acc2 += a0[2 * lda + e] * b_vec;
        acc3 += a0[3 * lda + e] * b_vec;
      }
      store_vector(c + i * ldc + j0, acc0);
      store_vector(c + (i + 1) * ldc + j0, acc1);
      store_vector(c + (i + 2) * ldc + j0, acc2);
      store_vector(c + (i + 3) * ldc + j0, acc3);
    }
    for (; i < m; ++i) {
      Vector<T> acc = {};
      for (int e = 0; e < k; ++e) acc += a[i * lda + e] * load_vector(b + e * ldb + j0);
      store_vector(c + i * ldc + j0, acc);
    }
  }
}

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
