#include "attnrank/nn/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "attnrank/core/blas.h"
#include "attnrank/core/parallel.h"
#include "attnrank/kernels/head_layout.h"
#include "attnrank/kernels/kernels.h"
#include "attnrank/nn/layers.h"

namespace attnrank {

namespace {

void check_shape(const AttentionShape& s) {
  if (s.batch < 1 || s.tokens < 1 || s.width < 1 || s.heads < 1 || s.rank < 1 || s.value_rank < 1 ||
      s.modules < 1)
    throw std::invalid_argument("attention: every dimension must be >= 1");
  if (s.mask == AttentionMask::kPrefix && (s.key_limit < 1 || s.key_limit > s.tokens))
    throw std::invalid_argument("attention: key_limit must be in [1, tokens]");
}

// Samples per block: about 1 MB of qkv rows, so a block's projections are still in
// cache when its heads are computed (and the head gradients when they are used).
// At least 16 rows, down to one sample: since the projections multiply against
// weights packed once (packed_gemm), a short block costs no re-packing, and the
// 64-row minimum this had before kept reference configuration 5's blocks (qkv rows
// of 48 KB) at 3 MB, out of L2 (one-sample blocks: 6-10% faster steps on Zen 4).
int block_samples(const AttentionShape& s) {
  const int target_rows = (1 << 20) / (static_cast<int>(sizeof(float)) * s.qkv_width());
  const int rows = std::clamp(target_rows, 16, 1024);
  return std::max(1, rows / s.tokens);
}

// dW_in = dqkv^T x runs on packed_gemm_at (x packed, dqkv read in place) up to this
// qkv width (columns of dqkv): 3-5% faster backward passes than OpenBLAS for heads-lm
// and the small presets, the same for the reference configurations of qkv width
// 192-1536; OpenBLAS stays faster for reference configuration 5's 12288 columns (4-7%).
// Measured at d = 16, 32 and 64 on Zen 5. Each thread keeps its packed copy of x
// (its rows, d rounded up to two vectors) between calls, as the weights' buffers.
constexpr int kWidestPackedInGradient = 4096;

// Whether one thread's qkv rows (its share of the batch) are more than its cache
// holds (about 1 MB: the L2 of the machines measured), so that the passes find them
// in memory: then the heads fetch the next sample's rows while they run
// (NextSample), and dW_in goes block by block (below). Where everything stays in
// cache (the small presets), both only cost time.
template <typename T>
bool thread_rows_exceed_cache(const AttentionShape& s, int threads) {
  const size_t samples = static_cast<size_t>((s.batch + threads - 1) / threads);
  return samples * s.tokens * s.qkv_stride() * sizeof(T) > (size_t(1) << 20);
}

// dW_in block by block, while the block's dqkv rows are in cache, where a thread's
// rows exceed its cache and the partial dW_in (qkv_width x d) is small enough to stay
// there beside a block's rows (at most kBlockwiseInGradientBytes): dqkv then needs
// one block's rows per thread, the same rows for every block, instead of the whole
// range written out to memory and read back for one dW_in at the end (heads-lm H =
// 16, r = 32: 6.4 MB of dqkv per layer, written and read back at about 20 GB/s on
// one core). Elsewhere one dW_in over the whole range is cheaper than one per block.
constexpr size_t kBlockwiseInGradientBytes = 256 << 10;

// The backward pass's samples per block when dW_in goes block by block: dqkv rows of
// about kBlockwiseRowsBytes (at least one sample, at most the forward's block).
constexpr size_t kBlockwiseRowsBytes = 256 << 10;

template <typename T>
int blockwise_backward_samples(const AttentionShape& s) {
  const int rows = static_cast<int>(kBlockwiseRowsBytes / (sizeof(T) * s.qkv_stride()));
  return std::clamp(rows / s.tokens, 1, block_samples(s));
}

// Threads for the sample-parallel passes: one per sample at most, and one in all
// for work too small to be worth a parallel region.
int attention_threads(const AttentionShape& s) {
  const size_t work = static_cast<size_t>(s.batch) * s.tokens * s.qkv_width() * s.width;
  return worth_parallel(work) ? std::max(1, std::min(omp_get_max_threads(), s.batch)) : 1;
}

// Samples [begin, end) of thread `thread` out of `threads`.
std::pair<int, int> thread_samples(int batch, int thread, int threads) {
  return {static_cast<int>(static_cast<int64_t>(batch) * thread / threads),
          static_cast<int>(static_cast<int64_t>(batch) * (thread + 1) / threads)};
}

// The kernels' head order (head_layout.h) as weights: W_in's rows and b_in in
// qkv order, W_out's columns in context order, so that the projections write and
// read the rows in the order the kernels want. Empty in the model's order.
template <typename T>
struct KernelOrder {
  std::vector<int> qkv, context;
  std::vector<T> in_weight, in_bias, out_weight;

  KernelOrder(const AttentionShape& s, const T* model_in_weight, const T* model_in_bias,
              const T* model_out_weight) {
    const kernels::HeadLayout layout = kernels::head_layout<T>(s);
    if (layout.model_order()) return;
    qkv = kernels::qkv_order(s, layout);
    context = kernels::context_order(s, layout);
    const size_t width = s.width, qkv_width = qkv.size(), context_width = context.size();
    in_weight.resize(qkv_width * width);
    for (size_t k = 0; k < qkv_width; ++k)
      std::copy_n(model_in_weight + qkv[k] * width, width, in_weight.data() + k * width);
    if (model_in_bias != nullptr) {
      in_bias.resize(qkv_width);
      for (size_t k = 0; k < qkv_width; ++k) in_bias[k] = model_in_bias[qkv[k]];
    }
    out_weight.resize(width * context_width);
    for (size_t row = 0; row < width; ++row)
      for (size_t k = 0; k < context_width; ++k)
        out_weight[row * context_width + k] = model_out_weight[row * context_width + context[k]];
  }
  bool used() const { return !qkv.empty(); }
};

}  // namespace

// Each thread owns a contiguous range of samples and runs, block by block, the
// in-projection (packed_gemm against W_in packed once per call), the heads and the
// out-projection; no synchronisation until the end.
template <typename T>
void attention_forward(const AttentionShape& s, const T* x, const T* in_weight, const T* in_bias,
                       const T* out_weight, const T* out_bias, T* qkv, T* probs, T* context,
                       T* out) {
  check_shape(s);
  const int n = s.tokens;
  const int qkv_width = s.qkv_width(), qkv_stride = s.qkv_stride();
  const int context_width = s.context_width(), context_stride = s.context_stride();
  const int heads_total = s.modules * s.heads;
  const T scale = T(1) / std::sqrt(T(s.rank));
  const T inv_modules = T(1) / T(s.modules);
  std::vector<T> mean_bias;
  if (out_bias != nullptr) {
    mean_bias.assign(s.width, T(0));
    for (int m = 0; m < s.modules; ++m)
      for (int i = 0; i < s.width; ++i) mean_bias[i] += out_bias[m * s.width + i];
    for (T& value : mean_bias) value *= inv_modules;
  }
  const KernelOrder<T> order(s, in_weight, in_bias, out_weight);
  if (order.used()) {
    in_weight = order.in_weight.data();
    if (in_bias != nullptr) in_bias = order.in_bias.data();
    out_weight = order.out_weight.data();
  }
  const int block = block_samples(s);
  const int threads = attention_threads(s);
  const bool fetch_next = thread_rows_exceed_cache<T>(s, threads);
  const kernels::KernelTable<T>& kernel = kernels::active<T>();
  // B = W_in^T (d, qkv_width) and W_O^T (context_width, d), stored transposed.
  thread_local std::vector<T> in_buffer, out_buffer;
  const T* packed_in =
      kernels::pack_into(kernel, true, s.width, qkv_width, in_weight, s.width, in_buffer);
  const T* packed_out = kernels::pack_into(kernel, true, context_width, s.width, out_weight,
                                           context_width, out_buffer);
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> scratch(kernel.head_scratch_size(s), T(0));
    const auto [first, last] = thread_samples(s.batch, omp_get_thread_num(), omp_get_num_threads());
    for (int b0 = first; b0 < last; b0 += block) {
      const int samples = std::min(block, last - b0);
      const int rows = samples * n;
      const size_t row0 = static_cast<size_t>(b0) * n;
      T* block_qkv = qkv + row0 * qkv_stride;
      // qkv = x W_in^T + b_in
      kernel.packed_gemm(rows, qkv_width, s.width, T(1), x + row0 * s.width, s.width, packed_in,
                         in_bias, block_qkv, qkv_stride);
      for (int b = b0; b < b0 + samples; ++b) {
        // The next sample's rows are fetched while this one runs: the rows it writes,
        // and its qkv rows when this block's projection has written them.
        kernels::NextSample<T> next;
        if (fetch_next && b + 1 < last) {
          if (b + 1 < b0 + samples) next.qkv = qkv + static_cast<size_t>(b + 1) * n * qkv_stride;
          next.probs = probs + static_cast<size_t>(b + 1) * heads_total * n * n;
          next.context = context + static_cast<size_t>(b + 1) * n * context_stride;
        }
        kernel.heads_forward(s, scale, qkv + static_cast<size_t>(b) * n * qkv_stride,
                             probs + static_cast<size_t>(b) * heads_total * n * n,
                             context + static_cast<size_t>(b) * n * context_stride, scratch.data(),
                             next);
      }
      // out = (1/c) sum_m (context_m W_O,m^T + b_O,m)
      kernel.packed_gemm(rows, s.width, context_width, inv_modules, context + row0 * context_stride,
                         context_stride, packed_out,
                         out_bias != nullptr ? mean_bias.data() : nullptr, out + row0 * s.width,
                         s.width);
    }
  }
}

// Same partition as the forward pass; weight gradients are accumulated per thread
// and summed in thread order (bit-identical for a given thread count).
template <typename T>
void attention_backward(const AttentionShape& s, const T* dout, const T* x, const T* in_weight,
                        const T* out_weight, const T* qkv, const T* probs, const T* context,
                        T* d_context, T* d_qkv, T* dx, T* d_in_weight, T* d_in_bias,
                        T* d_out_weight, T* d_out_bias) {
  check_shape(s);
  if (s.kind == AttentionKind::kHardmax)
    throw std::logic_error("attention: hard attention has no gradient");
  const int n = s.tokens;
  const int qkv_width = s.qkv_width(), qkv_stride = s.qkv_stride();
  const int context_width = s.context_width(), context_stride = s.context_stride();
  const int heads_total = s.modules * s.heads;
  const T scale = T(1) / std::sqrt(T(s.rank));
  const T inv_modules = T(1) / T(s.modules);
  const size_t in_size = static_cast<size_t>(qkv_width) * s.width;
  const size_t out_size = static_cast<size_t>(s.width) * context_width;
  const KernelOrder<T> order(s, in_weight, nullptr, out_weight);
  if (order.used()) {
    in_weight = order.in_weight.data();
    out_weight = order.out_weight.data();
  }
  const int threads = attention_threads(s);
  const bool fetch_next = thread_rows_exceed_cache<T>(s, threads);
  const bool blockwise_in_gradient = fetch_next && qkv_width <= kWidestPackedInGradient &&
                                     in_size * sizeof(T) <= kBlockwiseInGradientBytes;
  const int block = blockwise_in_gradient ? blockwise_backward_samples<T>(s) : block_samples(s);
  const kernels::KernelTable<T>& kernel = kernels::active<T>();
  // B = W_O (d, context_width) and W_in (qkv_width, d), as stored.
  thread_local std::vector<T> in_buffer, out_buffer;
  const T* packed_out = kernels::pack_into(kernel, false, s.width, context_width, out_weight,
                                           context_width, out_buffer);
  const T* packed_in =
      kernels::pack_into(kernel, false, qkv_width, s.width, in_weight, s.width, in_buffer);
  std::vector<T*> partials(threads);
#pragma omp parallel num_threads(threads)
  {
    // Per-thread weight-gradient partials, kept across calls (OpenMP threads persist).
    thread_local std::vector<T> partial;
    partial.resize(in_size + qkv_width + out_size);
    T* part_in = partial.data();
    T* part_in_bias = part_in + in_size;
    T* part_out = part_in_bias + qkv_width;
    std::fill(part_in_bias, part_in_bias + qkv_width, T(0));
    if (blockwise_in_gradient) std::fill(part_in, part_in + in_size, T(0));
    const int thread = omp_get_thread_num();
    partials[thread] = partial.data();
    std::vector<T> scratch(kernel.head_scratch_size(s), T(0));
    thread_local std::vector<T> x_buffer;
    const auto [first, last] = thread_samples(s.batch, thread, omp_get_num_threads());
    for (int b0 = first; b0 < last; b0 += block) {
      const int samples = std::min(block, last - b0);
      const int rows = samples * n;
      const size_t row0 = static_cast<size_t>(b0) * n;
      const T* block_dout = dout + row0 * s.width;
      // The context gradient is used within its block only: every block of the thread
      // writes the rows of its first, still in cache when the next block comes. So
      // does dqkv where dW_in goes block by block.
      const size_t slot_row0 = static_cast<size_t>(first) * n;
      T* block_d_context = d_context + slot_row0 * context_stride;
      T* block_d_qkv = d_qkv + (blockwise_in_gradient ? slot_row0 : row0) * qkv_stride;
      // Out-projection: dC = dout W_O / c.
      kernel.packed_gemm(rows, context_width, s.width, inv_modules, block_dout, s.width, packed_out,
                         nullptr, block_d_context, context_stride);
      for (int b = b0; b < b0 + samples; ++b) {
        const size_t in_block = static_cast<size_t>(b - b0) * n;
        T* sample_d_qkv = block_d_qkv + in_block * qkv_stride;
        // The next sample's saved rows are fetched while this one runs; its gradient
        // rows are this block's next rows (in cache) or, for the last sample of a
        // block without blockwise dW_in, the next block's (not yet in cache).
        kernels::NextSample<T> next;
        if (fetch_next && b + 1 < last) {
          next.qkv = qkv + static_cast<size_t>(b + 1) * n * qkv_stride;
          next.probs = probs + static_cast<size_t>(b + 1) * heads_total * n * n;
          if (!blockwise_in_gradient) next.d_qkv = sample_d_qkv + n * qkv_stride;
        }
        kernel.heads_backward(s, scale, qkv + static_cast<size_t>(b) * n * qkv_stride,
                              probs + static_cast<size_t>(b) * heads_total * n * n,
                              block_d_context + in_block * context_stride, sample_d_qkv,
                              scratch.data(), next);
        // db_in: the column sums of dqkv, the rows added in order, while the sample's
        // rows are still in cache (one pass over the thread's range cost another read
        // of all of dqkv from memory).
        if (d_in_bias != nullptr)
          kernel.add_column_sums(sample_d_qkv, n, qkv_width, qkv_stride, part_in_bias);
      }
      // In-projection: dx = dqkv W_in.
      if (dx != nullptr)
        kernel.packed_gemm(rows, s.width, qkv_width, T(1), block_d_qkv, qkv_stride, packed_in,
                           nullptr, dx + row0 * s.width, s.width);
      // dW_in += dqkv^T x for this block.
      if (blockwise_in_gradient) {
        const T* packed_x =
            kernels::pack_into(kernel, false, rows, s.width, x + row0 * s.width, s.width, x_buffer);
        kernel.packed_gemm_at(qkv_width, s.width, rows, T(1), block_d_qkv, qkv_stride, packed_x,
                              part_in, s.width, true);
      }
    }
    // The other weight gradients once over the thread's whole row range: one GEMM with
    // a long inner dimension instead of one per block re-reading and re-writing the
    // partial. dW_O = dout^T C / c; dW_in = dqkv^T x (unless done block by block).
    if (first < last) {
      const int rows = (last - first) * n;
      const size_t row0 = static_cast<size_t>(first) * n;
      const T* range_d_qkv = d_qkv + row0 * qkv_stride;
      gemm(true, false, s.width, context_width, rows, inv_modules, dout + row0 * s.width, s.width,
           context + row0 * context_stride, context_stride, T(0), part_out, context_width);
      if (blockwise_in_gradient) {
        // Summed block by block above.
      } else if (qkv_width <= kWidestPackedInGradient) {
        const T* packed_x =
            kernels::pack_into(kernel, false, rows, s.width, x + row0 * s.width, s.width, x_buffer);
        kernel.packed_gemm_at(qkv_width, s.width, rows, T(1), range_d_qkv, qkv_stride, packed_x,
                              part_in, s.width, false);
      } else {
        gemm(true, false, qkv_width, s.width, rows, T(1), range_d_qkv, qkv_stride,
             x + row0 * s.width, s.width, T(0), part_in, s.width);
      }
    } else {
      std::fill(part_in, part_in + in_size, T(0));
      std::fill(part_out, part_out + out_size, T(0));
    }
#pragma omp barrier
    // Sum the partials in thread order; each thread owns a slice of the outputs.
    // Element i of a partial (in the kernels' order) goes to target[place(i)].
    auto reduce = [&](size_t offset, size_t count, T* target, auto place) {
      const size_t begin = count * thread / threads, end = count * (thread + 1) / threads;
      for (size_t i = begin; i < end; ++i) {
        T sum = 0;
        for (int t = 0; t < threads; ++t) sum += partials[t][offset + i];
        target[place(i)] = sum;
      }
    };
    const size_t width = s.width;
    if (order.used()) {
      reduce(0, in_size, d_in_weight,
             [&](size_t i) { return order.qkv[i / width] * width + i % width; });
      if (d_in_bias != nullptr)
        reduce(in_size, qkv_width, d_in_bias, [&](size_t i) { return size_t(order.qkv[i]); });
      reduce(in_size + qkv_width, out_size, d_out_weight,
             [&](size_t i) { return i - i % context_width + order.context[i % context_width]; });
    } else {
      auto same = [](size_t i) { return i; };
      reduce(0, in_size, d_in_weight, same);
      if (d_in_bias != nullptr) reduce(in_size, qkv_width, d_in_bias, same);
      reduce(in_size + qkv_width, out_size, d_out_weight, same);
    }
  }
  if (d_out_bias != nullptr) {
    std::vector<T> sums(s.width, T(0));
    for (int row = 0; row < s.batch * n; ++row)
      for (int i = 0; i < s.width; ++i) sums[i] += dout[static_cast<size_t>(row) * s.width + i];
    for (int m = 0; m < s.modules; ++m)
      for (int i = 0; i < s.width; ++i) d_out_bias[m * s.width + i] = sums[i] * inv_modules;
  }
}

template <typename T>
void attention_probabilities(const AttentionShape& s, const T* probs, T* out) {
  const std::vector<int> order = kernels::probs_order(s, kernels::head_layout<T>(s));
  const size_t block = order.size();
  for (int b = 0; b < s.batch; ++b) {
    const T* from = probs + b * block;
    T* to = out + b * block;
    for (size_t k = 0; k < block; ++k) to[order[k]] = from[k];
  }
}

#define ATTNRANK_INSTANTIATE_ATTENTION(T)                                                         \
  template void attention_forward<T>(const AttentionShape&, const T*, const T*, const T*,         \
                                     const T*, const T*, T*, T*, T*, T*);                         \
  template void attention_backward<T>(const AttentionShape&, const T*, const T*, const T*,        \
                                      const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                      T*, T*);                                                    \
  template void attention_probabilities<T>(const AttentionShape&, const T*, T*);
ATTNRANK_INSTANTIATE_ATTENTION(float)
ATTNRANK_INSTANTIATE_ATTENTION(double)

}  // namespace attnrank
