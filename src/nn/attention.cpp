#include "attnrank/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "attnrank/blas.h"
#include "attnrank/layers.h"
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

template <typename T>
void attention_forward(const AttentionShape& s, const T* x, const T* in_weight, const T* in_bias,
                       const T* out_weight, const T* out_bias, T* qkv, T* probs, T* context,
                       T* out) {
  check_shape(s);
  const int rows = s.batch * s.tokens;
  const int qkv_width = s.qkv_width();
  const int context_width = s.context_width();
  const int n = s.tokens;
  const T scale = T(1) / std::sqrt(T(s.rank));

  // qkv = x W_in^T + b_in: one GEMM for every head of every module.
  linear_forward(x, in_weight, in_bias, qkv, rows, s.width, qkv_width);

  // Scores, softmax and context for every (batch, module, head).
  const int heads_total = s.modules * s.heads;
#pragma omp parallel
  {
    HeadScratch<T> scratch(s);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < s.batch; ++b)
      for (int mh = 0; mh < heads_total; ++mh)
        head_forward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale,
                     qkv + static_cast<size_t>(b) * n * qkv_width,
                     probs + (static_cast<size_t>(b) * heads_total + mh) * n * n,
                     context + static_cast<size_t>(b) * n * context_width, scratch);
  }

  // out = (1/c) sum_m (context_m W_O,m^T + b_O,m): one GEMM over all modules.
  const T inv_modules = T(1) / T(s.modules);
  if (out_bias != nullptr) {
    std::vector<T> mean_bias(s.width, T(0));
    for (int m = 0; m < s.modules; ++m)
      for (int i = 0; i < s.width; ++i) mean_bias[i] += out_bias[m * s.width + i];
    for (int i = 0; i < s.width; ++i) mean_bias[i] *= inv_modules;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < rows; ++row)
      std::copy(mean_bias.begin(), mean_bias.end(), out + static_cast<size_t>(row) * s.width);
  }
  gemm(false, true, rows, s.width, context_width, inv_modules, context, context_width, out_weight,
       context_width, out_bias != nullptr ? T(1) : T(0), out, s.width);
}

template <typename T>
void attention_backward(const AttentionShape& s, const T* dout, const T* x, const T* in_weight,
                        const T* out_weight, const T* qkv, const T* probs, const T* context,
                        T* d_context, T* d_qkv, T* dx, T* d_in_weight, T* d_in_bias,
                        T* d_out_weight, T* d_out_bias) {
  check_shape(s);
  if (s.kind == AttentionKind::kHardmax)
    throw std::logic_error("attention: hard attention has no gradient");
  const int rows = s.batch * s.tokens;
  const int qkv_width = s.qkv_width();
  const int context_width = s.context_width();
  const int n = s.tokens;
  const T scale = T(1) / std::sqrt(T(s.rank));
  const T inv_modules = T(1) / T(s.modules);

  // Output projection.
  gemm(false, false, rows, context_width, s.width, inv_modules, dout, s.width, out_weight,
       context_width, T(0), d_context, context_width);
  gemm(true, false, s.width, context_width, rows, inv_modules, dout, s.width, context,
       context_width, T(0), d_out_weight, context_width);
  if (d_out_bias != nullptr) {
    std::vector<T> sums(s.width);
    // column sums via a ones-vector GEMV would do; a plain loop keeps the order fixed.
    for (int i = 0; i < s.width; ++i) sums[i] = T(0);
    for (int row = 0; row < rows; ++row)
      for (int i = 0; i < s.width; ++i) sums[i] += dout[static_cast<size_t>(row) * s.width + i];
    for (int m = 0; m < s.modules; ++m)
      for (int i = 0; i < s.width; ++i) d_out_bias[m * s.width + i] = sums[i] * inv_modules;
  }

  const int heads_total = s.modules * s.heads;
#pragma omp parallel
  {
    HeadScratch<T> scratch(s);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < s.batch; ++b)
      for (int mh = 0; mh < heads_total; ++mh)
        head_backward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale,
                      qkv + static_cast<size_t>(b) * n * qkv_width,
                      probs + (static_cast<size_t>(b) * heads_total + mh) * n * n,
                      d_context + static_cast<size_t>(b) * n * context_width,
                      d_qkv + static_cast<size_t>(b) * n * qkv_width, scratch);
  }

  // Input projection.
  linear_backward(d_qkv, x, in_weight, dx, d_in_weight, d_in_bias, rows, s.width, qkv_width);
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
