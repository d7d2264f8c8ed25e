#include "attnrank/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "attnrank/blas.h"
#include "attnrank/layers.h"
#include "core/parallel.h"
#include "nn/fast_math.h"
#include "nn/small_gemm.h"

namespace attnrank {

int AttentionShape::visible_keys(int query) const {
  switch (mask) {
    case AttentionMask::kFull:
      return tokens;
    case AttentionMask::kPrefix:
      return key_limit;
    case AttentionMask::kCausal:
      return query + 1;
  }
  return tokens;
}

namespace {

// Where the head (module, head) of one token row starts inside a qkv row.
struct HeadOffsets {
  int query, key, value, context;
};

HeadOffsets head_offsets(const AttentionShape& s, int module, int head) {
  const int module_base = module * s.heads * s.head_block();
  return {module_base + head * s.rank, module_base + s.heads * s.rank + head * s.rank,
          module_base + 2 * s.heads * s.rank + head * s.value_rank,
          (module * s.heads + head) * s.value_rank};
}

void check_shape(const AttentionShape& s) {
  if (s.batch < 1 || s.tokens < 1 || s.width < 1 || s.heads < 1 || s.rank < 1 || s.value_rank < 1 ||
      s.modules < 1)
    throw std::invalid_argument("attention: every dimension must be >= 1");
  if (s.mask == AttentionMask::kPrefix && (s.key_limit < 1 || s.key_limit > s.tokens))
    throw std::invalid_argument("attention: key_limit must be in [1, tokens]");
}

// Per-thread buffers for one head, padded to whole vector registers (columns
// beyond the real width are zero), so every product is a small_gemm.
template <typename T>
struct HeadScratch {
  explicit HeadScratch(const AttentionShape& s)
      : n_p(round_up(s.tokens, kLanes<T>)),
        r_p(round_up(s.rank, kLanes<T>)),
        rv_p(round_up(s.value_rank, kLanes<T>)),
        q(static_cast<size_t>(s.tokens) * r_p, T(0)),
        k(q.size(), T(0)),
        k_t(static_cast<size_t>(s.rank) * n_p, T(0)),
        v(static_cast<size_t>(s.tokens) * rv_p, T(0)),
        v_t(static_cast<size_t>(s.value_rank) * n_p, T(0)),
        d_context(v.size(), T(0)),
        p(static_cast<size_t>(s.tokens) * n_p, T(0)),
        p_t(p.size(), T(0)),
        d_s(p.size(), T(0)),
        d_s_t(p.size(), T(0)),
        out_q(q.size()),
        out_k(q.size()),
        out_v(v.size()) {}
  int n_p, r_p, rv_p;
  std::vector<T> q, k, k_t, v, v_t, d_context, p, p_t, d_s, d_s_t, out_q, out_k, out_v;
};

// One head of one sample. rows_qkv: (N, qkv_width) of this sample; probs: (N, N);
// rows_context: (N, context_width) of this sample.
template <typename T>
void head_forward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                  T* probs, T* rows_context, HeadScratch<T>& w) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank;
  const size_t stride = s.qkv_width();
  for (int j = 0; j < n; ++j) {
    const T* row = rows_qkv + j * stride;
    for (int e = 0; e < r; ++e) {
      w.q[j * r + e] = row[at.query + e] * scale;  // unpadded: only an A operand
      w.k_t[e * w.n_p + j] = row[at.key + e];
    }
    for (int e = 0; e < rv; ++e) w.v[j * w.rv_p + e] = row[at.value + e];
  }
  // Scores S = (Q/sqrt(r)) K^T, then row softmax over the visible keys.
  small_gemm(n, r, w.n_p, w.q.data(), r, w.k_t.data(), w.n_p, w.p.data(), w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    T* row = w.p.data() + i * w.n_p;
    T max_score = row[0];
    int argmax = 0;
    for (int j = 1; j < keys; ++j)
      if (row[j] > max_score) {
        max_score = row[j];
        argmax = j;
      }
    if (s.kind == AttentionKind::kHardmax) {
      for (int j = 0; j < keys; ++j) row[j] = j == argmax ? T(1) : T(0);
    } else {
      T sum = 0;
      for (int j = 0; j < keys; ++j) {
        row[j] = exp_fast(row[j] - max_score);
        sum += row[j];
      }
      const T inv = T(1) / sum;
      for (int j = 0; j < keys; ++j) row[j] *= inv;
    }
    for (int j = keys; j < w.n_p; ++j) row[j] = T(0);
    std::copy(row, row + n, probs + static_cast<size_t>(i) * n);
  }
  // Context C = P V.
  small_gemm(n, n, w.rv_p, w.p.data(), w.n_p, w.v.data(), w.rv_p, w.out_v.data(), w.rv_p);
  const size_t context_stride = s.context_width();
  for (int i = 0; i < n; ++i)
    std::copy(w.out_v.data() + i * w.rv_p, w.out_v.data() + i * w.rv_p + rv,
              rows_context + i * context_stride + at.context);
}

template <typename T>
void head_backward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                   const T* probs, const T* rows_d_context, T* rows_d_qkv, HeadScratch<T>& w) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank;
  const size_t stride = s.qkv_width();
  const size_t context_stride = s.context_width();
  for (int j = 0; j < n; ++j) {
    const T* row = rows_qkv + j * stride;
    for (int e = 0; e < r; ++e) {
      w.q[j * w.r_p + e] = row[at.query + e];
      w.k[j * w.r_p + e] = row[at.key + e];
    }
    for (int e = 0; e < rv; ++e) w.v_t[e * w.n_p + j] = row[at.value + e];
    const T* dc = rows_d_context + j * context_stride + at.context;
    for (int e = 0; e < rv; ++e) w.d_context[j * w.rv_p + e] = dc[e];
    const T* p_row = probs + static_cast<size_t>(j) * n;
    for (int i = 0; i < n; ++i) {
      w.p[j * w.n_p + i] = p_row[i];
      w.p_t[i * w.n_p + j] = p_row[i];
    }
  }
  // dP = dC V^T, then dS = P (dP - rowsum(P dP)) / sqrt(r).
  small_gemm(n, rv, w.n_p, w.d_context.data(), w.rv_p, w.v_t.data(), w.n_p, w.d_s.data(), w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    const T* p_row = w.p.data() + i * w.n_p;
    T* ds = w.d_s.data() + i * w.n_p;
    T weighted = 0;
    for (int j = 0; j < keys; ++j) weighted += p_row[j] * ds[j];
    for (int j = 0; j < keys; ++j) ds[j] = p_row[j] * (ds[j] - weighted) * scale;
    for (int j = keys; j < w.n_p; ++j) ds[j] = T(0);
    for (int j = 0; j < n; ++j) w.d_s_t[j * w.n_p + i] = ds[j];
  }
  // dQ = dS K, dK = dS^T Q, dV = P^T dC.
  small_gemm(n, n, w.r_p, w.d_s.data(), w.n_p, w.k.data(), w.r_p, w.out_q.data(), w.r_p);
  small_gemm(n, n, w.r_p, w.d_s_t.data(), w.n_p, w.q.data(), w.r_p, w.out_k.data(), w.r_p);
  small_gemm(n, n, w.rv_p, w.p_t.data(), w.n_p, w.d_context.data(), w.rv_p, w.out_v.data(), w.rv_p);
  for (int j = 0; j < n; ++j) {
    T* row = rows_d_qkv + j * stride;
    std::copy(w.out_q.data() + j * w.r_p, w.out_q.data() + j * w.r_p + r, row + at.query);
    std::copy(w.out_k.data() + j * w.r_p, w.out_k.data() + j * w.r_p + r, row + at.key);
    std::copy(w.out_v.data() + j * w.rv_p, w.out_v.data() + j * w.rv_p + rv, row + at.value);
  }
}

}  // namespace

namespace {

// Samples per block: about 1 MB of qkv rows, so a block's projections are still in
// cache when its heads are computed (and the head gradients when they are used).
int block_samples(const AttentionShape& s) {
  const int target_rows = (1 << 20) / (static_cast<int>(sizeof(float)) * s.qkv_width());
  const int rows = std::clamp(target_rows, 64, 1024);
  return std::max(1, rows / s.tokens);
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

// Rows of (rows, width) set to `values` (width entries) or to zero.
template <typename T>
void fill_rows(T* matrix, int rows, int width, const T* values) {
  for (int row = 0; row < rows; ++row)
    for (int i = 0; i < width; ++i)
      matrix[static_cast<size_t>(row) * width + i] = values != nullptr ? values[i] : T(0);
}

}  // namespace

// Each thread owns a contiguous range of samples and runs, block by block, the
// in-projection (single-threaded BLAS), the heads and the out-projection; no
// synchronisation until the end.
template <typename T>
void attention_forward(const AttentionShape& s, const T* x, const T* in_weight, const T* in_bias,
                       const T* out_weight, const T* out_bias, T* qkv, T* probs, T* context,
                       T* out) {
  check_shape(s);
  const int n = s.tokens;
  const int qkv_width = s.qkv_width();
  const int context_width = s.context_width();
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
  const int block = block_samples(s);
  const int threads = attention_threads(s);
#pragma omp parallel num_threads(threads)
  {
    HeadScratch<T> scratch(s);
    const auto [first, last] = thread_samples(s.batch, omp_get_thread_num(), omp_get_num_threads());
    for (int b0 = first; b0 < last; b0 += block) {
      const int samples = std::min(block, last - b0);
      const int rows = samples * n;
      const size_t row0 = static_cast<size_t>(b0) * n;
      T* block_qkv = qkv + row0 * qkv_width;
      // qkv = x W_in^T + b_in
      fill_rows(block_qkv, rows, qkv_width, in_bias);
      gemm(false, true, rows, qkv_width, s.width, T(1), x + row0 * s.width, s.width, in_weight,
           s.width, in_bias != nullptr ? T(1) : T(0), block_qkv, qkv_width);
      for (int b = b0; b < b0 + samples; ++b)
        for (int mh = 0; mh < heads_total; ++mh)
          head_forward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale,
                       qkv + static_cast<size_t>(b) * n * qkv_width,
                       probs + (static_cast<size_t>(b) * heads_total + mh) * n * n,
                       context + static_cast<size_t>(b) * n * context_width, scratch);
      // out = (1/c) sum_m (context_m W_O,m^T + b_O,m)
      T* block_out = out + row0 * s.width;
      fill_rows(block_out, rows, s.width, out_bias != nullptr ? mean_bias.data() : nullptr);
      gemm(false, true, rows, s.width, context_width, inv_modules, context + row0 * context_width,
           context_width, out_weight, context_width, T(1), block_out, s.width);
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
  const int qkv_width = s.qkv_width();
  const int context_width = s.context_width();
  const int heads_total = s.modules * s.heads;
  const T scale = T(1) / std::sqrt(T(s.rank));
  const T inv_modules = T(1) / T(s.modules);
  const size_t in_size = static_cast<size_t>(qkv_width) * s.width;
  const size_t out_size = static_cast<size_t>(s.width) * context_width;
  const int block = block_samples(s);
  const int threads = attention_threads(s);
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
    const int thread = omp_get_thread_num();
    partials[thread] = partial.data();
    HeadScratch<T> scratch(s);
    const auto [first, last] = thread_samples(s.batch, thread, omp_get_num_threads());
    if (first == last) {
      std::fill(part_in, part_in + in_size, T(0));
      std::fill(part_out, part_out + out_size, T(0));
    }
    for (int b0 = first; b0 < last; b0 += block) {
      const int samples = std::min(block, last - b0);
      const int rows = samples * n;
      const size_t row0 = static_cast<size_t>(b0) * n;
      const T beta = b0 == first ? T(0) : T(1);
      const T* block_dout = dout + row0 * s.width;
      T* block_d_context = d_context + row0 * context_width;
      T* block_d_qkv = d_qkv + row0 * qkv_width;
      // Out-projection: dC = dout W_O / c; dW_O += dout^T C / c.
      gemm(false, false, rows, context_width, s.width, inv_modules, block_dout, s.width, out_weight,
           context_width, T(0), block_d_context, context_width);
      gemm(true, false, s.width, context_width, rows, inv_modules, block_dout, s.width,
           context + row0 * context_width, context_width, beta, part_out, context_width);
      for (int b = b0; b < b0 + samples; ++b)
        for (int mh = 0; mh < heads_total; ++mh)
          head_backward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale,
                        qkv + static_cast<size_t>(b) * n * qkv_width,
                        probs + (static_cast<size_t>(b) * heads_total + mh) * n * n,
                        d_context + static_cast<size_t>(b) * n * context_width,
                        d_qkv + static_cast<size_t>(b) * n * qkv_width, scratch);
      // In-projection: dx = dqkv W_in; dW_in += dqkv^T x; db_in += colsum(dqkv).
      if (dx != nullptr)
        gemm(false, false, rows, s.width, qkv_width, T(1), block_d_qkv, qkv_width, in_weight,
             s.width, T(0), dx + row0 * s.width, s.width);
      gemm(true, false, qkv_width, s.width, rows, T(1), block_d_qkv, qkv_width, x + row0 * s.width,
           s.width, beta, part_in, s.width);
      for (int row = 0; row < rows; ++row)
        for (int i = 0; i < qkv_width; ++i)
          part_in_bias[i] += block_d_qkv[static_cast<size_t>(row) * qkv_width + i];
    }
#pragma omp barrier
    // Sum the partials in thread order; each thread owns a slice of the outputs.
    auto reduce = [&](size_t offset, size_t count, T* target) {
      const size_t begin = count * thread / threads, end = count * (thread + 1) / threads;
      for (size_t i = begin; i < end; ++i) {
        T sum = 0;
        for (int t = 0; t < threads; ++t) sum += partials[t][offset + i];
        target[i] = sum;
      }
    };
    reduce(0, in_size, d_in_weight);
    if (d_in_bias != nullptr) reduce(in_size, qkv_width, d_in_bias);
    reduce(in_size + qkv_width, out_size, d_out_weight);
  }
  if (d_out_bias != nullptr) {
    std::vector<T> sums(s.width, T(0));
    for (int row = 0; row < s.batch * n; ++row)
      for (int i = 0; i < s.width; ++i) sums[i] += dout[static_cast<size_t>(row) * s.width + i];
    for (int m = 0; m < s.modules; ++m)
      for (int i = 0; i < s.width; ++i) d_out_bias[m * s.width + i] = sums[i] * inv_modules;
  }
}

#define ATTNRANK_INSTANTIATE_ATTENTION(T)                                                         \
  template void attention_forward<T>(const AttentionShape&, const T*, const T*, const T*,         \
                                     const T*, const T*, T*, T*, T*, T*);                         \
  template void attention_backward<T>(const AttentionShape&, const T*, const T*, const T*,        \
                                      const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                      T*, T*);
ATTNRANK_INSTANTIATE_ATTENTION(float)
ATTNRANK_INSTANTIATE_ATTENTION(double)

}  // namespace attnrank
