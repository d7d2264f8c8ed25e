// The per-head products of attention for one sample: scores, softmax, context and
// their gradients, with every buffer padded to whole vector registers (columns
// beyond the real width are zero), so every product is a small_gemm.
#include "kernels/variant/variant_kernels.h"

#include "kernels/variant/fast_math.h"
#include "kernels/variant/small_gemm.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

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

int visible_keys(const AttentionShape& s, int query) {
  switch (s.mask) {
    case AttentionMask::kFull:
      return s.tokens;
    case AttentionMask::kPrefix:
      return s.key_limit;
    case AttentionMask::kCausal:
      return query + 1;
  }
  return s.tokens;
}

// One thread's buffers for one head, carved out of its scratch block.
template <typename T>
struct HeadBuffers {
  int n_p, r_p, rv_p;
  T *q, *k, *k_t, *v, *v_t, *d_context, *p, *p_t, *d_s, *d_s_t, *out_q, *out_k, *out_v;

  HeadBuffers(const AttentionShape& s, T* scratch)
      : n_p(round_up(s.tokens, kLanes<T>)),
        r_p(round_up(s.rank, kLanes<T>)),
        rv_p(round_up(s.value_rank, kLanes<T>)) {
    const size_t n = s.tokens;
    T* next = scratch;
    auto take = [&next](size_t count) {
      T* start = next;
      next += count;
      return start;
    };
    q = take(n * r_p);
    k = take(n * r_p);
    k_t = take(static_cast<size_t>(s.rank) * n_p);
    v = take(n * rv_p);
    v_t = take(static_cast<size_t>(s.value_rank) * n_p);
    d_context = take(n * rv_p);
    p = take(n * n_p);
    p_t = take(n * n_p);
    d_s = take(n * n_p);
    d_s_t = take(n * n_p);
    out_q = take(n * r_p);
    out_k = take(n * r_p);
    out_v = take(n * rv_p);
    used = static_cast<size_t>(next - scratch);
  }
  size_t used = 0;
};

template <typename T>
void head_forward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                  T* probs, T* rows_context, HeadBuffers<T>& w) {
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
  small_gemm(n, r, w.n_p, w.q, r, w.k_t, w.n_p, w.p, w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = visible_keys(s, i);
    T* row = w.p + i * w.n_p;
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
    std::memcpy(probs + static_cast<size_t>(i) * n, row, sizeof(T) * n);
  }
  // Context C = P V.
  small_gemm(n, n, w.rv_p, w.p, w.n_p, w.v, w.rv_p, w.out_v, w.rv_p);
  const size_t context_stride = s.context_width();
  for (int i = 0; i < n; ++i)
    std::memcpy(rows_context + i * context_stride + at.context, w.out_v + i * w.rv_p,
                sizeof(T) * rv);
}

template <typename T>
void head_backward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                   const T* probs, const T* rows_d_context, T* rows_d_qkv, HeadBuffers<T>& w) {
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
  small_gemm(n, rv, w.n_p, w.d_context, w.rv_p, w.v_t, w.n_p, w.d_s, w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = visible_keys(s, i);
    const T* p_row = w.p + i * w.n_p;
    T* ds = w.d_s + i * w.n_p;
    T weighted = 0;
    for (int j = 0; j < keys; ++j) weighted += p_row[j] * ds[j];
    for (int j = 0; j < keys; ++j) ds[j] = p_row[j] * (ds[j] - weighted) * scale;
    for (int j = keys; j < w.n_p; ++j) ds[j] = T(0);
    for (int j = 0; j < n; ++j) w.d_s_t[j * w.n_p + i] = ds[j];
  }
  // dQ = dS K, dK = dS^T Q, dV = P^T dC.
  small_gemm(n, n, w.r_p, w.d_s, w.n_p, w.k, w.r_p, w.out_q, w.r_p);
  small_gemm(n, n, w.r_p, w.d_s_t, w.n_p, w.q, w.r_p, w.out_k, w.r_p);
  small_gemm(n, n, w.rv_p, w.p_t, w.n_p, w.d_context, w.rv_p, w.out_v, w.rv_p);
  for (int j = 0; j < n; ++j) {
    T* row = rows_d_qkv + j * stride;
    std::memcpy(row + at.query, w.out_q + j * w.r_p, sizeof(T) * r);
    std::memcpy(row + at.key, w.out_k + j * w.r_p, sizeof(T) * r);
    std::memcpy(row + at.value, w.out_v + j * w.rv_p, sizeof(T) * rv);
  }
}

}  // namespace

template <typename T>
size_t head_scratch_size(const AttentionShape& s) {
  HeadBuffers<T> layout(s, nullptr);
  return layout.used;
}

// The padding columns of the buffers must be zero before the first head (the
// products read them); every head rewrites the same cells, so they stay zero.
template <typename T>
void heads_forward(const AttentionShape& s, T scale, const T* qkv, T* probs, T* context,
                   T* scratch) {
  HeadBuffers<T> w(s, scratch);
  const int n = s.tokens;
  const int heads_total = s.modules * s.heads;
  for (int mh = 0; mh < heads_total; ++mh)
    head_forward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale, qkv,
                 probs + static_cast<size_t>(mh) * n * n, context, w);
}

template <typename T>
void heads_backward(const AttentionShape& s, T scale, const T* qkv, const T* probs,
                    const T* d_context, T* d_qkv, T* scratch) {
  HeadBuffers<T> w(s, scratch);
  const int n = s.tokens;
  const int heads_total = s.modules * s.heads;
  for (int mh = 0; mh < heads_total; ++mh)
    head_backward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale, qkv,
                  probs + static_cast<size_t>(mh) * n * n, d_context, d_qkv, w);
}

template size_t head_scratch_size<float>(const AttentionShape&);
template size_t head_scratch_size<double>(const AttentionShape&);
template void heads_forward<float>(const AttentionShape&, float, const float*, float*, float*,
                                   float*);
template void heads_forward<double>(const AttentionShape&, double, const double*, double*, double*,
                                    double*);
template void heads_backward<float>(const AttentionShape&, float, const float*, const float*,
                                    const float*, float*, float*);
template void heads_backward<double>(const AttentionShape&, double, const double*, const double*,
                                     const double*, double*, double*);

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
