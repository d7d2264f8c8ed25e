#include "attnrank/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "attnrank/blas.h"
#include "attnrank/layers.h"

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
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.batch; ++b) {
    for (int mh = 0; mh < heads_total; ++mh) {
      const HeadOffsets at = head_offsets(s, mh / s.heads, mh % s.heads);
      const T* rows_qkv = qkv + static_cast<size_t>(b) * n * qkv_width;
      T* p = probs + (static_cast<size_t>(b) * heads_total + mh) * n * n;
      for (int i = 0; i < n; ++i) {
        const T* q = rows_qkv + static_cast<size_t>(i) * qkv_width + at.query;
        const int keys = s.visible_keys(i);
        T* p_row = p + static_cast<size_t>(i) * n;
        T max_score = -std::numeric_limits<T>::infinity();
        int argmax = 0;
        for (int j = 0; j < keys; ++j) {
          const T* k = rows_qkv + static_cast<size_t>(j) * qkv_width + at.key;
          T dot = 0;
          for (int e = 0; e < s.rank; ++e) dot += q[e] * k[e];
          p_row[j] = dot * scale;
          if (p_row[j] > max_score) {
            max_score = p_row[j];
            argmax = j;
          }
        }
        if (s.kind == AttentionKind::kHardmax) {
          for (int j = 0; j < keys; ++j) p_row[j] = j == argmax ? T(1) : T(0);
        } else {
          T sum = 0;
          for (int j = 0; j < keys; ++j) {
            p_row[j] = std::exp(p_row[j] - max_score);
            sum += p_row[j];
          }
          const T inv = T(1) / sum;
          for (int j = 0; j < keys; ++j) p_row[j] *= inv;
        }
        for (int j = keys; j < n; ++j) p_row[j] = T(0);

        T* c = context + (static_cast<size_t>(b) * n + i) * context_width + at.context;
        for (int e = 0; e < s.value_rank; ++e) c[e] = T(0);
        for (int j = 0; j < keys; ++j) {
          const T weight = p_row[j];
          const T* v = rows_qkv + static_cast<size_t>(j) * qkv_width + at.value;
          for (int e = 0; e < s.value_rank; ++e) c[e] += weight * v[e];
        }
      }
    }
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
    std::vector<T> d_scores(static_cast<size_t>(n) * n);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < s.batch; ++b) {
      for (int mh = 0; mh < heads_total; ++mh) {
        const HeadOffsets at = head_offsets(s, mh / s.heads, mh % s.heads);
        const T* rows_qkv = qkv + static_cast<size_t>(b) * n * qkv_width;
        T* rows_dqkv = d_qkv + static_cast<size_t>(b) * n * qkv_width;
        const T* p = probs + (static_cast<size_t>(b) * heads_total + mh) * n * n;
        const T* rows_dctx = d_context + static_cast<size_t>(b) * n * context_width + at.context;

        // dV[j] = sum_i P[i,j] dC[i]; zero first (keys may be unseen by every query).
        for (int j = 0; j < n; ++j) {
          T* dv = rows_dqkv + static_cast<size_t>(j) * qkv_width + at.value;
          for (int e = 0; e < s.value_rank; ++e) dv[e] = T(0);
          T* dq = rows_dqkv + static_cast<size_t>(j) * qkv_width + at.query;
          T* dk = rows_dqkv + static_cast<size_t>(j) * qkv_width + at.key;
          for (int e = 0; e < s.rank; ++e) dq[e] = dk[e] = T(0);
        }
        for (int i = 0; i < n; ++i) {
          const int keys = s.visible_keys(i);
          const T* dc = rows_dctx + static_cast<size_t>(i) * context_width;
          const T* p_row = p + static_cast<size_t>(i) * n;
          T* ds_row = d_scores.data() + static_cast<size_t>(i) * n;
          // dP[i,j] = dC[i].V[j]; dS = P (dP - sum_j P dP)
          T weighted = 0;
          for (int j = 0; j < keys; ++j) {
            const T* v = rows_qkv + static_cast<size_t>(j) * qkv_width + at.value;
            T* dv = rows_dqkv + static_cast<size_t>(j) * qkv_width + at.value;
            T dot = 0;
            for (int e = 0; e < s.value_rank; ++e) {
              dot += dc[e] * v[e];
              dv[e] += p_row[j] * dc[e];
            }
            ds_row[j] = dot;
            weighted += p_row[j] * dot;
          }
          for (int j = 0; j < keys; ++j) ds_row[j] = p_row[j] * (ds_row[j] - weighted) * scale;
        }
        // dQ[i] = sum_j dS[i,j] K[j]; dK[j] = sum_i dS[i,j] Q[i]
        for (int i = 0; i < n; ++i) {
          const int keys = s.visible_keys(i);
          const T* ds_row = d_scores.data() + static_cast<size_t>(i) * n;
          const T* q = rows_qkv + static_cast<size_t>(i) * qkv_width + at.query;
          T* dq = rows_dqkv + static_cast<size_t>(i) * qkv_width + at.query;
          for (int j = 0; j < keys; ++j) {
            const T* k = rows_qkv + static_cast<size_t>(j) * qkv_width + at.key;
            T* dk = rows_dqkv + static_cast<size_t>(j) * qkv_width + at.key;
            const T g = ds_row[j];
            for (int e = 0; e < s.rank; ++e) {
              dq[e] += g * k[e];
              dk[e] += g * q[e];
            }
          }
        }
      }
    }
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
