#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "attnrank/core/blas.h"
#include "attnrank/kernels/kernels.h"
#include "attnrank/nn/layers.h"

namespace attnrank {

namespace {

constexpr int kBlockRows = 256;

// Rows [begin, end) of thread `thread` out of `threads`.
struct RowRange {
  int begin, end;
};
RowRange thread_rows(int rows, int thread, int threads) {
  return {static_cast<int>(static_cast<int64_t>(rows) * thread / threads),
          static_cast<int>(static_cast<int64_t>(rows) * (thread + 1) / threads)};
}

int mlp_threads(int rows) {
  // Small batches are not worth splitting.
  return std::max(1, std::min(omp_get_max_threads(), rows / kBlockRows));
}

}  // namespace

size_t mlp_scratch_size(int rows, int width, int ffn) {
  const size_t threads = mlp_threads(rows);
  const size_t block = std::min(rows, kBlockRows);
  // Per thread: one block of hidden gradients, partial dW1, dW2 and db1.
  return threads * (block * ffn + 2 * static_cast<size_t>(width) * ffn + ffn);
}

template <typename T>
void mlp_forward(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, T* hidden, T* y,
                 int rows, int width, int ffn) {
  const int threads = mlp_threads(rows);
  const kernels::KernelTable<T>& kernel = kernels::active<T>();
  // B = W1^T (width, ffn) and W2^T (ffn, width), stored transposed.
  thread_local std::vector<T> w1_buffer, w2_buffer;
  const T* packed_w1 = kernels::pack_into(kernel, true, width, ffn, w1, width, w1_buffer);
  const T* packed_w2 = kernels::pack_into(kernel, true, ffn, width, w2, ffn, w2_buffer);
#pragma omp parallel num_threads(threads)
  {
    const RowRange range = thread_rows(rows, omp_get_thread_num(), omp_get_num_threads());
    for (int begin = range.begin; begin < range.end; begin += kBlockRows) {
      const int count = std::min(kBlockRows, range.end - begin);
      T* h = hidden + static_cast<size_t>(begin) * ffn;
      T* out = y + static_cast<size_t>(begin) * width;
      kernel.packed_gemm(count, ffn, width, T(1), x + static_cast<size_t>(begin) * width, width,
                         packed_w1, nullptr, h, ffn);
      kernel.bias_relu(h, b1, count, ffn);  // while the block is in cache
      kernel.packed_gemm(count, width, ffn, T(1), h, ffn, packed_w2, b2, out, width);
    }
  }
}

template <typename T>
void mlp_backward(const T* dy, const T* x, const T* hidden, const T* w1, const T* w2, T* scratch,
                  size_t scratch_size, T* dx, T* dw1, T* db1, T* dw2, T* db2, int rows, int width,
                  int ffn) {
  if (scratch_size < mlp_scratch_size(rows, width, ffn))
    throw std::logic_error("mlp_backward: scratch too small for the thread count");
  const int threads = mlp_threads(rows);
  const size_t block = std::min(rows, kBlockRows);
  const size_t per_thread = block * ffn + 2 * static_cast<size_t>(width) * ffn + ffn;
  const size_t weights = static_cast<size_t>(width) * ffn;
  const kernels::KernelTable<T>& kernel = kernels::active<T>();
  // B = W2 (width, ffn) and W1 (ffn, width), as stored.
  thread_local std::vector<T> w1_buffer, w2_buffer;
  const T* packed_w2 = kernels::pack_into(kernel, false, width, ffn, w2, ffn, w2_buffer);
  const T* packed_w1 = kernels::pack_into(kernel, false, ffn, width, w1, width, w1_buffer);
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    T* d_hidden = scratch + thread * per_thread;
    T* part_dw1 = d_hidden + block * ffn;
    T* part_dw2 = part_dw1 + weights;
    T* part_db1 = part_dw2 + weights;
    std::fill(part_db1, part_db1 + ffn, T(0));
    const RowRange range = thread_rows(rows, thread, omp_get_num_threads());
    for (int begin = range.begin; begin < range.end; begin += kBlockRows) {
      const int count = std::min(kBlockRows, range.end - begin);
      const T beta = begin == range.begin ? T(0) : T(1);
      const T* dy_block = dy + static_cast<size_t>(begin) * width;
      const T* h = hidden + static_cast<size_t>(begin) * ffn;
      // fc2: dW2 += dy^T h; dh = dy W2
      gemm(true, false, width, ffn, count, T(1), dy_block, width, h, ffn, beta, part_dw2, ffn);
      kernel.packed_gemm(count, ffn, width, T(1), dy_block, width, packed_w2, nullptr, d_hidden,
                         ffn);
      // ReLU mask and the fc1 bias gradient in one pass.
      kernel.relu_backward(d_hidden, h, part_db1, count, ffn);
      // fc1: dW1 += dh^T x; dx = dh W1
      gemm(true, false, ffn, width, count, T(1), d_hidden, ffn,
           x + static_cast<size_t>(begin) * width, width, beta, part_dw1, width);
      kernel.packed_gemm(count, width, ffn, T(1), d_hidden, ffn, packed_w1, nullptr,
                         dx + static_cast<size_t>(begin) * width, width);
    }
#pragma omp barrier
    // Sum the partials in thread order; each thread owns a slice of the outputs.
    const RowRange slice = thread_rows(static_cast<int>(weights), thread, omp_get_num_threads());
    for (int i = slice.begin; i < slice.end; ++i) {
      T sum1 = 0, sum2 = 0;
      for (int t = 0; t < threads; ++t) {
        sum1 += scratch[t * per_thread + block * ffn + i];
        sum2 += scratch[t * per_thread + block * ffn + weights + i];
      }
      dw1[i] = sum1;
      dw2[i] = sum2;
    }
    if (db1 != nullptr) {
      const RowRange bias_slice = thread_rows(ffn, thread, omp_get_num_threads());
      for (int i = bias_slice.begin; i < bias_slice.end; ++i) {
        T sum = 0;
        for (int t = 0; t < threads; ++t)
          sum += scratch[t * per_thread + block * ffn + 2 * weights + i];
        db1[i] = sum;
      }
    }
  }
  if (db2 != nullptr) {
    for (int i = 0; i < width; ++i) db2[i] = T(0);
    for (int row = 0; row < rows; ++row)
      for (int i = 0; i < width; ++i) db2[i] += dy[static_cast<size_t>(row) * width + i];
  }
}

template void mlp_forward<float>(const float*, const float*, const float*, const float*,
                                 const float*, float*, float*, int, int, int);
template void mlp_forward<double>(const double*, const double*, const double*, const double*,
                                  const double*, double*, double*, int, int, int);
template void mlp_backward<float>(const float*, const float*, const float*, const float*,
                                  const float*, float*, size_t, float*, float*, float*, float*,
                                  float*, int, int, int);
template void mlp_backward<double>(const double*, const double*, const double*, const double*,
                                   const double*, double*, size_t, double*, double*, double*,
                                   double*, double*, int, int, int);

}  // namespace attnrank
