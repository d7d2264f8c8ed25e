// Row-wise and elementwise kernels: exp, layer-norm parameter gradients, ReLU, column
// sums, AdamW (the row norms are in norms.cpp). Plain loops that the compiler
// vectorises at the variant's width; every sum runs in a fixed order, so results do
// not depend on the thread count.
#include <omp.h>

#include <cmath>

#include "attnrank/core/parallel.h"
#include "fast_math.h"
#include "variant_kernels.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

namespace {

bool parallel_for(size_t work) {
  return work >= kParallelWork;
}

}  // namespace

template <typename T>
void exp_shifted(const T* in, T shift, T* out, int count) {
  exp_shifted_array(in, shift, out, count);
}

template <typename T>
void layer_norm_parameter_gradients(const T* dy, const T* x, const T* mean, const T* rstd,
                                    T* dweight, T* dbias, int rows, int width) {
  // Column sums of dy*xhat and dy, rows in order (deterministic); each iteration owns
  // a block of columns and walks the rows, so the columns run side by side in registers.
  constexpr int kBlock = 4 * kLanes<T>;
  const int blocks = (width + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (parallel_for(static_cast <size_t>(rows) * width))
  for (int block = 0; block < blocks; ++block) {
    const int begin = block * kBlock;
    const int end = min_of(begin + kBlock, width);
    T gw[kBlock] = {}, gb[kBlock] = {};
    for (int row = 0; row < rows; ++row) {
      const T* g = dy + static_cast<size_t>(row) * width;
      const T* in = x + static_cast<size_t>(row) * width;
      const T mu = mean[row], rs = rstd[row];
      for (int i = begin; i < end; ++i) {
        gw[i - begin] += g[i] * ((in[i] - mu) * rs);
        gb[i - begin] += g[i];
      }
    }
    for (int i = begin; i < end; ++i) {
      dweight[i] = gw[i - begin];
      dbias[i] = gb[i - begin];
    }
  }
}

// out[col] += the rows, for col in [begin, end), end - begin <= kWidth: the rows
// added in order after what out held.
template <typename T, int kWidth>
void add_column_block(const T* matrix, int rows, size_t ld, int begin, int end, T* out) {
  T sums[kWidth];
  for (int col = begin; col < end; ++col) sums[col - begin] = out[col];
  for (int row = 0; row < rows; ++row) {
    const T* line = matrix + row * ld;
    for (int col = begin; col < end; ++col) sums[col - begin] += line[col];
  }
  for (int col = begin; col < end; ++col) out[col] = sums[col - begin];
}

// Each iteration owns a block of columns and walks the rows in order, so the result
// depends on neither the thread count nor the block width. A 64-column block keeps
// its sums in registers. On a matrix past the last-level cache it reads 256 bytes of
// each row from memory, which the prefetchers follow poorly: there blocks as wide as
// the threads allow (up to 1024 columns, the sums in L1) ran about 1.4x faster
// (bench/bench_kernels; docs/performance.md).
// Adding to out (rather than overwriting it) lets a caller sum a matrix block by
// block while each block is still in cache, with the same result as one call.
template <typename T>
void add_column_sums(const T* matrix, int rows, int cols, int ld, T* out) {
  constexpr int kNarrowBlock = 64;
  constexpr int kWideBlock = 1024;
  constexpr size_t kPastCacheBytes = size_t(24) << 20;
  const size_t count = static_cast<size_t>(rows) * cols;
  const bool parallel = parallel_for(count) && !omp_in_parallel();
  int width = kNarrowBlock;
  if (count * sizeof(T) >= kPastCacheBytes) {
    const int threads = parallel ? omp_get_max_threads() : 1;
    width = min_of(kWideBlock,
                   max_of(kNarrowBlock, round_up((cols + threads - 1) / threads, kLanes<T>)));
  }
  const int blocks = (cols + width - 1) / width;
  auto add_block = [&](int block) {
    const int begin = block * width;
    const int end = min_of(begin + width, cols);
    if (width == kNarrowBlock)
      add_column_block<T, kNarrowBlock>(matrix, rows, ld, begin, end, out);
    else
      add_column_block<T, kWideBlock>(matrix, rows, ld, begin, end, out);
  };
  // Not `omp parallel for if (parallel)`: a serialized parallel region still costs
  // libgomp a team set-up, and attention calls this once per sample (small presets:
  // 33% of the step before).
  if (!parallel) {
    for (int block = 0; block < blocks; ++block) add_block(block);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int block = 0; block < blocks; ++block) add_block(block);
}

template <typename T>
void bias_relu(T* h, const T* bias, int rows, int cols) {
  for (int row = 0; row < rows; ++row) {
    T* line = h + static_cast<size_t>(row) * cols;
    for (int i = 0; i < cols; ++i) {
      const T value = bias != nullptr ? line[i] + bias[i] : line[i];
      line[i] = value > T(0) ? value : T(0);  // NaN -> 0, as before
    }
  }
}

template <typename T>
void relu_backward(T* g, const T* h, T* bias_gradient, int rows, int cols) {
  for (int row = 0; row < rows; ++row) {
    T* line = g + static_cast<size_t>(row) * cols;
    const T* hv = h + static_cast<size_t>(row) * cols;
    for (int i = 0; i < cols; ++i) {
      line[i] = hv[i] > T(0) ? line[i] : T(0);
      bias_gradient[i] += line[i];
    }
  }
}

template <typename T>
void adamw_update(size_t count, T* p, const T* g, T* m, T* v, const unsigned char* decay,
                  const AdamWStep<T>& c) {
  // Locals and restrict pointers so that the loop vectorises: no store can change
  // the step's constants or another array. The decayed value is rounded on its own
  // (a select, not a multiply by one that the compiler could fuse into the update),
  // as in the scalar form and in PyTorch's separate p.mul_.
  const T decay_factor = c.decay_factor, beta1 = c.beta1, beta2 = c.beta2,
          inv_bias2_sqrt = c.inv_bias2_sqrt, eps = c.eps, step_size = c.step_size;
  T* __restrict parameters = p;
  T* __restrict first = m;
  T* __restrict second = v;
  const T* __restrict gradients = g;
  const unsigned char* __restrict decays = decay;
#pragma omp parallel for simd schedule(static) if (parallel : parallel_for(count * 8))
  for (size_t i = 0; i < count; ++i) {
    const T gradient = gradients[i];
    const T decayed = parameters[i] * decay_factor;
    const T parameter = decays[i] ? decayed : parameters[i];
    const T first_moment = beta1 * first[i] + (T(1) - beta1) * gradient;
    const T second_moment = beta2 * second[i] + (T(1) - beta2) * gradient * gradient;
    first[i] = first_moment;
    second[i] = second_moment;
    const T denom = square_root(second_moment) * inv_bias2_sqrt + eps;
    parameters[i] = parameter - step_size * first_moment / denom;
  }
}

#define ATTNRANK_INSTANTIATE_ELEMENTWISE(T)                                                       \
  template void exp_shifted<T>(const T*, T, T*, int);                                             \
  template void layer_norm_parameter_gradients<T>(const T*, const T*, const T*, const T*, T*, T*, \
                                                  int, int);                                      \
  template void add_column_sums<T>(const T*, int, int, int, T*);                                  \
  template void bias_relu<T>(T*, const T*, int, int);                                             \
  template void relu_backward<T>(T*, const T*, T*, int, int);                                     \
  template void adamw_update<T>(size_t, T*, const T*, T*, T*, const unsigned char*,               \
                                const AdamWStep<T>&);
ATTNRANK_INSTANTIATE_ELEMENTWISE(float)
ATTNRANK_INSTANTIATE_ELEMENTWISE(double)

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
