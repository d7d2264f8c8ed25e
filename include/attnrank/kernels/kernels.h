// The hot loops of the engine, compiled once per instruction set and chosen at run
// time (like ggml's CPU variants): the per-head attention products, softmax and
// cross-entropy exponentials, norms, ReLU, the AdamW update, and the attention
// projections' GEMM against weights packed once (packed_gemm) and the attention's
// dW_in (packed_gemm_at). The other GEMMs are OpenBLAS's, which dispatches by itself.
//
// Each variant lives in its own namespace (attnrank::kernels::<isa>) in the object
// files built from src/kernels/variant/, with the vector width of its ISA (16
// floats with AVX-512, 8 with AVX2, 4 with SSE2 or NEON). A variant defines no
// symbol outside its namespace (the KernelSymbols test checks the object files), so
// code compiled for AVX-512 can never be linked into a path an AVX2 machine runs.
//
// Kernels know shapes and pointers only: nothing of models, configs or the CLI.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "attnrank/kernels/attention_shape.h"

namespace attnrank::kernels {

// AdamW's per-step constants (PyTorch's operation order, see optimizer.cpp).
template <typename T>
struct AdamWStep {
  T step_size, decay_factor, beta1, beta2, inv_bias2_sqrt, eps;
};

// The rows of the sample a caller passes next to heads_forward or heads_backward,
// fetched into cache a share with each head of this call, so that the next call
// finds them there: a sample's heads each read a short piece of every one of its
// rows, which the hardware prefetchers do not foresee. Null: not fetched (no next
// sample, or rows already in cache). Each points to that sample's whole block (N
// rows of qkv_stride() or context_stride(), or c*H*N*N probabilities).
template <typename T>
struct NextSample {
  const T* qkv = nullptr;      // both passes: read
  const T* probs = nullptr;    // forward: written; backward: read
  const T* context = nullptr;  // forward: written
  const T* d_qkv = nullptr;    // backward: written
};

template <typename T>
struct KernelTable {
  const char* isa;  // "avx512", "avx2", "sse2", "neon" or "portable"
  int lanes;        // values of T in one vector register of this ISA

  // Scratch (elements of T) one thread needs for heads_forward/heads_backward.
  size_t (*head_scratch_size)(const AttentionShape& shape);
  // Whether heads_forward/backward lay `lanes` heads side by side, one per vector
  // lane (small r or N), rather than one head at a time padded to whole registers.
  bool (*heads_in_lanes)(const AttentionShape& shape);
  // All c*H heads of one sample. qkv: (N, qkv_width) -> probs: (c*H, N, N),
  // context: (N, context_width). scale = 1/sqrt(rank). Rows, probabilities and
  // gradients are in the order head_layout() gives for this table (head_layout.h);
  // qkv and d_qkv rows are shape.qkv_stride() apart, context and d_context rows
  // shape.context_stride() apart. next: the next call's rows (NextSample).
  void (*heads_forward)(const AttentionShape& shape, T scale, const T* qkv, T* probs, T* context,
                        T* scratch, const NextSample<T>& next);
  // d_context: (N, context_width) -> d_qkv: (N, qkv_width), written.
  void (*heads_backward)(const AttentionShape& shape, T scale, const T* qkv, const T* probs,
                         const T* d_context, T* d_qkv, T* scratch, const NextSample<T>& next);

  // out[i] = exp(in[i] - shift), i < count (in may equal out).
  void (*exp_shifted)(const T* in, T shift, T* out, int count);

  // Per row of (rows, width): y = scale * x / ||x||, inv_norm = 1/||x||.
  void (*sphere_norm_forward)(const T* x, T scale, T* y, T* inv_norm, int rows, int width);
  // dx = scale/||x|| (dy - u (u.dy)) with u = x/||x||; row_dots[row] = u.dy.
  void (*sphere_norm_backward)(const T* dy, const T* x, T scale, const T* inv_norm, T* dx,
                               T* row_dots, int rows, int width);
  void (*layer_norm_forward)(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                             int rows, int width);
  // dx only; the parameter gradients: layer_norm_parameter_gradients.
  void (*layer_norm_backward)(const T* dy, const T* x, const T* weight, const T* mean,
                              const T* rstd, T* dx, int rows, int width);
  // dweight[i] = sum_rows dy * (x - mean) * rstd, dbias[i] = sum_rows dy.
  void (*layer_norm_parameter_gradients)(const T* dy, const T* x, const T* mean, const T* rstd,
                                         T* dweight, T* dbias, int rows, int width);
  // out[col] += sum over rows of matrix[row * ld + col], col < cols, the rows added in
  // order to what out[col] held (so summing a matrix in consecutive row blocks gives
  // one call's result).
  void (*add_column_sums)(const T* matrix, int rows, int cols, int ld, T* out);

  // GEMM against a packed matrix: mostly one packed once and used for many products
  // (the attention projections' weights, for each block of rows). packed_size(k, n):
  // elements of the packed form of B (k, n). pack_panels: B (k, n) given as b[e * ldb +
  // j], or transposed (b[j * ldb + e], B^T stored (n, k)) -> packed (split over the
  // threads when large and called outside any parallel region). packed_gemm: C (m, n) =
  // alpha * A (m, k) B + bias (bias: n values per row, or null), A row-major with
  // stride lda; C is written, not added to. k >= 1. Each entry sums its k products in
  // blocks of 256 in order: the same for any m, row offset or thread.
  size_t (*packed_size)(int k, int n);
  void (*pack_panels)(bool transposed, int k, int n, const T* b, int ldb, T* packed);
  void (*packed_gemm)(int m, int n, int k, T alpha, const T* a, int lda, const T* packed,
                      const T* bias, T* c, int ldc);
  // packed_gemm_at: C (m, n) = alpha * A B, or alpha * (C + A B) when `accumulate`,
  // with A given transposed (k, m), its entry (i, e) at a[e * lda + i], no bias; k >=
  // 1. For a weight gradient dY^T X with X packed and dY read in place, over all rows
  // at once or block by block. The same sums, in the same order, as packed_gemm on A
  // stored as is (each depth block's sum added to C in turn, the first one to C's
  // old value when accumulating).
  void (*packed_gemm_at)(int m, int n, int k, T alpha, const T* a, int lda, const T* packed, T* c,
                         int ldc, bool accumulate);

  // h = max(h + bias, 0) per row of (rows, cols); bias may be null.
  void (*bias_relu)(T* h, const T* bias, int rows, int cols);
  // g = h > 0 ? g : 0 per row, and bias_gradient[col] += g (rows in order).
  void (*relu_backward)(T* g, const T* h, T* bias_gradient, int rows, int cols);

  // One AdamW update of count parameters; decay[i] != 0 where weight decay applies.
  void (*adamw_update)(size_t count, T* parameters, const T* gradients, T* first_moment,
                       T* second_moment, const unsigned char* decay, const AdamWStep<T>& step);
};

// B packed by kernel.pack_panels into `buffer`, resized to fit; returns its data. A
// caller keeps the buffer across calls (each training step reuses the memory).
template <typename T>
const T* pack_into(const KernelTable<T>& kernel, bool transposed, int k, int n, const T* b, int ldb,
                   std::vector<T>& buffer) {
  buffer.resize(kernel.packed_size(k, n));
  kernel.pack_panels(transposed, k, n, b, ldb, buffer.data());
  return buffer.data();
}

// The table in use: the best variant this CPU runs, or the one named by the
// environment variable ATTNRANK_ISA. Chosen once, on first use.
template <typename T>
const KernelTable<T>& active();

// Name of the active variant ("avx2", ...).
std::string active_isa();

// Every variant built into this binary that this CPU can run, best first.
template <typename T>
std::vector<const KernelTable<T>*> runnable_variants();

// Every variant built into this binary, best first, and whether this CPU runs it.
struct VariantInfo {
  std::string isa;
  bool runnable;
};
std::vector<VariantInfo> built_variants();

}  // namespace attnrank::kernels
