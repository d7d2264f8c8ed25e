// Row-major GEMM wrappers over CBLAS, overloaded for float and double so that the
// same templated layer code runs in float32 (training) and float64 (gradient checks).
#pragma once

namespace attnrank {

// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, all row-major.
// op(A) = A^T when trans_a (A stored (K, M)); likewise for B.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);
void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc);

}  // namespace attnrank
