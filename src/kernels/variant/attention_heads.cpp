// The per-head products of attention for one sample: scores, softmax, context and
// their gradients, every product a small_gemm on whole vector registers: operands
// of whole-register width are read and written in place in their rows, narrower
// ones through buffers padded with zeros.
#include "fast_math.h"
#include "small_gemm.h"
#include "variant_kernels.h"

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

// One thread's buffers for one head, carved out of its scratch block.
template <typename T>
struct HeadBuffers {
  int n_p, r_p, rv_p;
  T *q, *k, *k_t, *v, *v_t, *d_context, *p, *d_s, *out_q, *out_k, *out_v;

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
    d_s = take(n * n_p);
    out_q = take(n * r_p);
    out_k = take(n * r_p);
    out_v = take(n * rv_p);
    used = static_cast<size_t>(next - scratch);
  }
  size_t used = 0;
};

// The terms a product over a masked score matrix needs (small_gemm's `terms`): with A
// = P or dS (rows: queries), query rows up to `last` see keys [0, visible_keys(last))
// only; with A = P^T or dS^T (rows: keys), key rows from `first` on are seen only
// by the queries from the first one that sees key `first`. Causal heads skip about
// half of each such product.
struct VisibleKeys {
  const AttentionShape& s;
  int begin(int /*first_query*/) const { return 0; }
  int end(int last_query, int k) const { return min_of(k, s.visible_keys(last_query)); }
};

struct QueriesSeeing {
  const AttentionShape& s;
  int begin(int first_key) const {
    switch (s.mask) {
      case AttentionMask::kCausal:
        return first_key;
      case AttentionMask::kPrefix:
        return first_key < s.key_limit ? 0 : s.tokens;
      case AttentionMask::kFull:
        break;
    }
    return 0;
  }
  int end(int /*last_key*/, int k) const { return k; }
};

// C = A B for a product shaped as the scores (rows: queries, columns: keys, n_p of
// them): for each block of 4 query rows only the columns of the keys one of them
// sees, rounded up to whole registers, so a causal head computes about 5/8 of them
// (AVX2, N = 32) instead of all. The other columns of C are left as they were: the
// softmax reads no column past round_up(visible keys, kLanes); its backward reads
// whole rows but keeps only the visible keys' columns by a select (a blend, not a
// multiply, so whatever the others hold never reaches a result); both write zeros
// past the visible keys.
template <typename T>
void visible_columns_gemm(const AttentionShape& s, int n_p, int k, const T* a, int lda, const T* b,
                          int ldb, T* c, int ldc) {
  const int n = s.tokens;
  if (s.mask == AttentionMask::kFull) {
    small_gemm(n, k, n_p, a, lda, b, ldb, c, ldc);
    return;
  }
  auto columns = [&](int first_row) {
    return round_up(s.visible_keys(min_of(first_row + 3, n - 1)), kLanes<T>);
  };
  // Runs of row blocks that need the same columns, one product each.
  for (int first = 0; first < n;) {
    const int width = columns(first);
    int end = first + 4;
    while (end < n && columns(end) == width) end += 4;
    end = min_of(end, n);
    small_gemm(end - first, k, width, a + first * lda, lda, b, ldb, c + first * ldc, ldc);
    first = end;
  }
}

// A B operand of `width` columns for the per-head products: read in place from its
// row (stride `stride`) when the width is whole registers, else copied into `padded`
// (zero beyond the width: the products read whole registers).
template <typename T>
struct Operand {
  const T* data;
  int stride;
};

template <typename T>
Operand<T> operand(const T* rows, size_t stride, int offset, int n, int width, int width_p,
                   T* padded) {
  if (width == width_p) return {rows + offset, static_cast<int>(stride)};
  for (int j = 0; j < n; ++j)
    for (int e = 0; e < width; ++e) padded[j * width_p + e] = rows[j * stride + offset + e];
  return {padded, width_p};
}

// Where a product of `width` columns is written: straight into its rows when the
// width is whole registers, else into `padded` and copied out by `copy_out`.
template <typename T>
struct Target {
  T* data;
  int stride;
};

template <typename T>
Target<T> target(T* rows, size_t stride, int offset, int width, int width_p, T* padded) {
  if (width == width_p) return {rows + offset, static_cast<int>(stride)};
  return {padded, width_p};
}

template <typename T>
void copy_out(const Target<T>& written, T* rows, size_t stride, int offset, int n, int width) {
  if (written.data == rows + offset) return;
  for (int j = 0; j < n; ++j)
    std::memcpy(rows + j * stride + offset, written.data + j * written.stride, sizeof(T) * width);
}

// row[j] = exp(row[j] - max) / sum over j < keys, zero for j in [keys, round_up(keys,
// kLanes)): whole registers, the lanes past `keys` masked to zero, no scalar tail and
// no loop whose length changes with the row (causal rows). The same values as
// exp_fast per entry and sum_terms' lanes and tree.
template <typename T>
void softmax_row(T* row, int keys) {
  constexpr int kL = kLanes<T>;
  const T top = largest(row, keys);
  constexpr LaneIndices<T> lane = lane_indices<T>([](int index) { return index; });
  Vector<T> partial = {};
  for (int j = 0; j < keys; j += kL) {
    const Vector<T> e = exp_fast(load_vector(row + j) - top);
    const Vector<T> kept = lane < keys - j ? e : Vector<T>{};
    store_vector(row + j, kept);
    partial += kept;
  }
  const T inv = T(1) / sum_lanes<T>(partial);
  for (int j = 0; j < keys; j += kL) store_vector(row + j, load_vector(row + j) * inv);
}

// ds[j] = p[j] (ds[j] - sum_k p[k] ds[k]) * scale for j < keys, zero up to n_p, on
// whole registers when the probability rows are whole registers long (p readable up
// to n_p; else a scalar tail). P's and dP's lanes past `keys` are masked to zero
// (whatever dP holds there, inf included, never reaches the sum), so those lanes add
// +0 x +0 to partial sums that start at +0 and so are never -0: the same values as
// sum_terms, whose scalar tail adds each term to the same lane (j % kL), multiplied
// and added as here (GCC contracts both into multiply-adds where the ISA has them),
// without that tail's chain of dependent scalar multiply-adds (a fifth of
// head_backward's own time at heads-lm H = 16, r = 32 under AVX2).
template <typename T>
void softmax_row_backward(const T* p, T* ds, int keys, int n_p, bool p_padded, T scale) {
  constexpr int kL = kLanes<T>;
  if (!p_padded) {
    const T weighted = sum_terms<T>(
        keys, [p, ds](int j) { return load_vector(p + j) * load_vector(ds + j); },
        [p, ds](int j) { return p[j] * ds[j]; });
    for (int j = 0; j < keys; ++j) ds[j] = p[j] * (ds[j] - weighted) * scale;
    for (int j = keys; j < n_p; ++j) ds[j] = T(0);
    return;
  }
  constexpr LaneIndices<T> lane = lane_indices<T>([](int index) { return index; });
  Vector<T> partial = {};
  for (int j = 0; j < keys; j += kL) {
    const LaneIndices<T> seen = lane < keys - j;
    const Vector<T> p_seen = seen ? load_vector(p + j) : Vector<T>{};
    const Vector<T> ds_seen = seen ? load_vector(ds + j) : Vector<T>{};
    partial += p_seen * ds_seen;
  }
  const T weighted = sum_lanes<T>(partial);
  for (int j = 0; j < n_p; j += kL) {
    const Vector<T> d_s = load_vector(p + j) * (load_vector(ds + j) - weighted) * scale;
    store_vector(ds + j, lane < keys - j ? d_s : Vector<T>{});
  }
}

template <typename T>
void head_forward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                  T* probs, T* rows_context, HeadBuffers<T>& w) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank;
  const size_t stride = s.qkv_stride();
  const size_t context_stride = s.context_stride();
  // K^T / sqrt(r), the one operand that needs a transposed copy.
  transpose_scaled(rows_qkv + at.key, stride, n, r, scale, w.k_t, w.n_p);
  // Scores S = Q (K^T / sqrt(r)), Q read in place, then row softmax over the visible keys:
  // straight into the probabilities when N is whole registers (their rows are then
  // padded rows), else in a padded buffer and copied.
  T* scores = n == w.n_p ? probs : w.p;
  visible_columns_gemm(s, w.n_p, r, rows_qkv + at.query, static_cast<int>(stride), w.k_t, w.n_p,
                       scores, w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    T* row = scores + i * w.n_p;
    if (s.kind == AttentionKind::kHardmax) {
      int argmax = 0;  // the first maximum
      for (int j = 1; j < keys; ++j)
        if (row[j] > row[argmax]) argmax = j;
      // Zero up to the register edge: the masked scores go too.
      for (int j = 0; j < round_up(keys, kLanes<T>); ++j) row[j] = j == argmax ? T(1) : T(0);
    } else {
      softmax_row(row, keys);
    }
    for (int j = round_up(keys, kLanes<T>); j < w.n_p; ++j) row[j] = T(0);  // padding stays zero
    if (scores != probs) std::memcpy(probs + static_cast<size_t>(i) * n, row, sizeof(T) * n);
  }
  // Context C = P V.
  const Operand<T> v = operand(rows_qkv, stride, at.value, n, rv, w.rv_p, w.v);
  const Target<T> c = target(rows_context, context_stride, at.context, rv, w.rv_p, w.out_v);
  small_gemm(n, n, w.rv_p, probs, n, v.data, v.stride, c.data, c.stride, VisibleKeys{s});
  copy_out(c, rows_context, context_stride, at.context, n, rv);
}

template <typename T>
void head_backward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                   const T* probs, const T* rows_d_context, T* rows_d_qkv, HeadBuffers<T>& w) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank;
  const size_t stride = s.qkv_stride();
  const size_t context_stride = s.context_stride();
  transpose_scaled(rows_qkv + at.value, stride, n, rv, T(1), w.v_t, w.n_p);
  // dP = dC V^T, dC read in place, then dS = P (dP - rowsum(P dP)) / sqrt(r).
  visible_columns_gemm(s, w.n_p, rv, rows_d_context + at.context, static_cast<int>(context_stride),
                       w.v_t, w.n_p, w.d_s, w.n_p);
  for (int i = 0; i < n; ++i)
    softmax_row_backward(probs + static_cast<size_t>(i) * n, w.d_s + i * w.n_p, s.visible_keys(i),
                         w.n_p, n == w.n_p, scale);
  // dQ = dS K, dK = dS^T Q, dV = P^T dC (the transposes read in place).
  const Operand<T> k = operand(rows_qkv, stride, at.key, n, r, w.r_p, w.k);
  const Operand<T> q = operand(rows_qkv, stride, at.query, n, r, w.r_p, w.q);
  const Operand<T> dc =
      operand(rows_d_context, context_stride, at.context, n, rv, w.rv_p, w.d_context);
  const Target<T> d_q = target(rows_d_qkv, stride, at.query, r, w.r_p, w.out_q);
  const Target<T> d_k = target(rows_d_qkv, stride, at.key, r, w.r_p, w.out_k);
  const Target<T> d_v = target(rows_d_qkv, stride, at.value, rv, w.rv_p, w.out_v);
  small_gemm(n, n, w.r_p, w.d_s, w.n_p, k.data, k.stride, d_q.data, d_q.stride, VisibleKeys{s});
  small_gemm_at(n, n, w.r_p, w.d_s, w.n_p, q.data, q.stride, d_k.data, d_k.stride,
                QueriesSeeing{s});
  small_gemm_at(n, n, w.rv_p, probs, n, dc.data, dc.stride, d_v.data, d_v.stride, QueriesSeeing{s});
  copy_out(d_q, rows_d_qkv, stride, at.query, n, r);
  copy_out(d_k, rows_d_qkv, stride, at.key, n, r);
  copy_out(d_v, rows_d_qkv, stride, at.value, n, rv);
}

// ---- Heads across the lanes ---------------------------------------------------
// With small heads (r or N below the vector width), padding each head to whole
// registers wastes most of every product, and the per-row softmax loops are a few
// elements long. Instead, kLanes<T> heads are laid side by side, one per lane, so
// every score, exp, sum and product runs on all of them at once and costs what its
// FLOPs cost. The rows arrive in lane order (attnrank/kernels/head_layout.h): the
// group of heads [first, first + count) keeps element e of token i's queries at
// q + i * stride + e * count, one value per head, and likewise its keys, values,
// context, probabilities and gradients; every load and store is one register, or
// `count` values for the last, partly filled group (kWhole false). The sums run in
// the same order as in the per-head kernel (over e, then over j, then over i).

// count values from `from` into the first lanes, zero beyond.
template <typename T, bool kWhole>
Vector<T> load_lanes(const T* from, int count) {
  if constexpr (kWhole) {
    return load_vector(from);
  } else {
    Vector<T> v = {};
    for (int lane = 0; lane < count; ++lane) v[lane] = from[lane];
    return v;
  }
}

template <typename T, bool kWhole>
void store_lanes(T* to, const Vector<T>& v, int count) {
  if constexpr (kWhole) {
    store_vector(to, v);
  } else {
    for (int lane = 0; lane < count; ++lane) to[lane] = v[lane];
  }
}

// Queries whose sums over keys run side by side: each such sum (a context entry,
// a dQ entry, the weighted dP) is a chain of dependent multiply-adds, and with
// one query at a time the lanes kernels waited on each add's latency.
constexpr int kQueryBlock = 4;

// sums[q] += term(q, j) over j < keys[q], for each q in the order j = 0, 1, ... (the
// order of one query's own loop, so the same values), the kQueries chains interleaved.
template <typename T, int kQueries, typename Term>
inline void sum_over_keys(const int (&keys)[kQueries], Term term, Vector<T> (&sums)[kQueries]) {
  int common = keys[0];
  for (int q = 1; q < kQueries; ++q) common = min_of(common, keys[q]);
  for (int j = 0; j < common; ++j) {
#pragma GCC unroll 8
    for (int q = 0; q < kQueries; ++q) sums[q] += term(q, j);
  }
#pragma GCC unroll 8
  for (int q = 0; q < kQueries; ++q)
    for (int j = common; j < keys[q]; ++j) sums[q] += term(q, j);
}

// One thread's accumulators for one lane group, carved out of its scratch block.
template <typename T>
struct LaneBuffers {
  T *d_p, *d_k, *d_v;
  size_t used = 0;

  LaneBuffers(const AttentionShape& s, T* scratch) {
    const size_t lanes = kLanes<T>, n = s.tokens, r = s.rank, rv = s.value_rank;
    T* next = scratch;
    auto take = [&next](size_t count) {
      T* start = next;
      next += count;
      return start;
    };
    d_p = take(kQueryBlock * n * lanes);
    d_k = take(n * r * lanes);
    d_v = take(n * rv * lanes);
    used = static_cast<size_t>(next - scratch);
  }
};

// Where the group of heads starting at `first` (count heads) sits in one sample's
// rows; the groups before it are whole, so it starts `first` heads in.
template <typename T>
struct LaneGroup {
  int count;
  size_t q, k, v, context, probs;  // offsets into a qkv row, a context row, the probs

  LaneGroup(const AttentionShape& s, int first, int heads)
      : count(heads),
        q(static_cast<size_t>(first) * s.head_block()),
        k(q + static_cast<size_t>(s.rank) * heads),
        v(k + static_cast<size_t>(s.rank) * heads),
        context(static_cast<size_t>(first) * s.value_rank),
        probs(static_cast<size_t>(first) * s.tokens * s.tokens) {}
};

// One lane group's view of a sample for the lanes kernels: its rows, strides and the
// loads and stores of `count` lanes. kRank > 0: every head's rank and value rank are
// kRank, known at compile time (the loops over them unrolled: with r = 1 the loop
// bookkeeping cost more than the products); 0: read from the shape.
template <typename T, bool kWhole, int kRank>
struct LaneRows {
  const AttentionShape& s;
  const LaneGroup<T>& g;
  const T *q, *k, *v;
  size_t stride, context_stride;

  LaneRows(const AttentionShape& shape, const LaneGroup<T>& group, const T* rows_qkv)
      : s(shape),
        g(group),
        q(rows_qkv + group.q),
        k(rows_qkv + group.k),
        v(rows_qkv + group.v),
        stride(shape.qkv_stride()),
        context_stride(shape.context_stride()) {}
  Vector<T> load(const T* from) const { return load_lanes<T, kWhole>(from, g.count); }
  void store(T* to, const Vector<T>& value) const { store_lanes<T, kWhole>(to, value, g.count); }
  int rank() const {
    if constexpr (kRank > 0) return kRank;
    return s.rank;
  }
  int value_rank() const {
    if constexpr (kRank > 0) return kRank;
    return s.value_rank;
  }
  // P[i][j] at j * count of query i's row.
  size_t probs_row(int i) const { return g.probs + static_cast<size_t>(i) * s.tokens * g.count; }
};

// Query i's score against key j, all lanes at once: Q[i] . K[j] * scale.
template <typename T, bool kWhole, int kRank>
inline Vector<T> lanes_score(const LaneRows<T, kWhole, kRank>& at, int i, int j, T scale) {
  const int r = at.rank(), count = at.g.count;
  const T* q_row = at.q + i * at.stride;
  const T* k_row = at.k + j * at.stride;
  Vector<T> dot = {};
  for (int e = 0; e < r; ++e) dot += at.load(q_row + e * count) * at.load(k_row + e * count);
  return dot * scale;
}

// Query i's probabilities over the keys, all lanes at once: scores, then softmax
// (or the hardmax's one-hot), zero for the keys it does not see.
template <typename T, bool kWhole, int kRank>
void lanes_probabilities(const LaneRows<T, kWhole, kRank>& at, int i, T scale, T* probs) {
  const AttentionShape& s = at.s;
  const int n = s.tokens, count = at.g.count;
  const int keys = s.visible_keys(i);
  T* p_row = probs + at.probs_row(i);
  Vector<T> top = {};
  for (int j = 0; j < keys; ++j) {
    const Vector<T> dot = lanes_score(at, i, j, scale);
    at.store(p_row + j * count, dot);
    top = j == 0 || dot > top ? dot : top;
  }
  if (s.kind == AttentionKind::kHardmax) {
    Vector<T> found = {};  // one-hot on the first maximum of each lane
    for (int j = 0; j < keys; ++j) {
      const Vector<T> hit = ((at.load(p_row + j * count) == top) & (found == T(0)))
                                ? Vector<T>{} + T(1)
                                : Vector<T>{};
      found += hit;
      at.store(p_row + j * count, hit);
    }
  } else {
    Vector<T> sum = {};
    for (int j = 0; j < keys; ++j) {
      const Vector<T> e = exp_fast(at.load(p_row + j * count) - top);
      at.store(p_row + j * count, e);
      sum += e;
    }
    const Vector<T> inv = T(1) / sum;
    for (int j = 0; j < keys; ++j) at.store(p_row + j * count, at.load(p_row + j * count) * inv);
  }
  for (int j = keys; j < n; ++j) at.store(p_row + j * count, Vector<T>{});
}

// Softmax heads whose every query sees kFixedKeys keys (the small presets' N = 8
// without a causal mask, or a prefix of 8) run the lanes kernels with loops over the
// keys of that fixed length: the forward's scores in registers, the backward's loops
// unrolled without a per-query bound.
constexpr int kFixedKeys = 8;

inline bool sees_fixed_keys(const AttentionShape& s) {
  return s.kind == AttentionKind::kSoftmax && s.visible_keys(0) == kFixedKeys &&
         s.visible_keys(s.tokens - 1) == kFixedKeys;
}

// lanes_probabilities for softmax heads whose queries all see the same kKeys keys
// (no causal mask): the scores stay in registers from the dot products to the
// probabilities, instead of being stored and read back twice (a third of the
// fig1-small H = 16, r = 1 step was lanes_probabilities). The same operations in the
// same order, so the same values.
template <typename T, bool kWhole, int kRank, int kKeys>
void lanes_probabilities_of(const LaneRows<T, kWhole, kRank>& at, int i, T scale, T* probs) {
  const int n = at.s.tokens, count = at.g.count;
  T* p_row = probs + at.probs_row(i);
  Vector<T> scores[kKeys];
  Vector<T> top = {};
#pragma GCC unroll 16
  for (int j = 0; j < kKeys; ++j) {
    scores[j] = lanes_score(at, i, j, scale);
    top = j == 0 || scores[j] > top ? scores[j] : top;
  }
  Vector<T> sum = {};
#pragma GCC unroll 16
  for (int j = 0; j < kKeys; ++j) {
    scores[j] = exp_fast(scores[j] - top);
    sum += scores[j];
  }
  const Vector<T> inv = T(1) / sum;
#pragma GCC unroll 16
  for (int j = 0; j < kKeys; ++j) at.store(p_row + j * count, scores[j] * inv);
  for (int j = kKeys; j < n; ++j) at.store(p_row + j * count, Vector<T>{});
}

// Probabilities and context of the queries [first, first + kQueries); kKeys > 0: every
// query sees that many keys (lanes_probabilities_of), 0: any mask.
template <typename T, bool kWhole, int kRank, int kKeys, int kQueries>
void lanes_forward_queries(const LaneRows<T, kWhole, kRank>& at, int first, T scale, T* probs,
                           T* rows_context) {
  const int count = at.g.count;
  int keys[kQueries];
  const T* p_rows[kQueries];
  for (int q = 0; q < kQueries; ++q) {
    if constexpr (kKeys > 0)
      lanes_probabilities_of<T, kWhole, kRank, kKeys>(at, first + q, scale, probs);
    else
      lanes_probabilities(at, first + q, scale, probs);
    keys[q] = at.s.visible_keys(first + q);
    p_rows[q] = probs + at.probs_row(first + q);
  }
  // Context of query i: sum_j P[j] V[j][e].
  for (int e = 0; e < at.value_rank(); ++e) {
    Vector<T> value[kQueries] = {};
    sum_over_keys<T, kQueries>(
        keys,
        [&](int q, int j) {
          return at.load(p_rows[q] + j * count) * at.load(at.v + j * at.stride + e * count);
        },
        value);
    for (int q = 0; q < kQueries; ++q)
      at.store(rows_context + at.g.context + (first + q) * at.context_stride + e * count, value[q]);
  }
}

template <typename T, bool kWhole, int kRank, int kKeys>
void lanes_forward_rows(const LaneRows<T, kWhole, kRank>& at, T scale, T* probs, T* rows_context) {
  int i = 0;
  for (; i + kQueryBlock <= at.s.tokens; i += kQueryBlock)
    lanes_forward_queries<T, kWhole, kRank, kKeys, kQueryBlock>(at, i, scale, probs, rows_context);
  for (; i < at.s.tokens; ++i)
    lanes_forward_queries<T, kWhole, kRank, kKeys, 1>(at, i, scale, probs, rows_context);
}

template <typename T, bool kWhole, int kRank>
void lanes_forward(const AttentionShape& s, const LaneGroup<T>& g, T scale, const T* rows_qkv,
                   T* probs, T* rows_context) {
  const LaneRows<T, kWhole, kRank> at(s, g, rows_qkv);
  if (sees_fixed_keys(s))
    lanes_forward_rows<T, kWhole, kRank, kFixedKeys>(at, scale, probs, rows_context);
  else
    lanes_forward_rows<T, kWhole, kRank, 0>(at, scale, probs, rows_context);
}

// The gradients of the queries [first, first + kQueries): dQ of each, and their terms
// of dK and dV added to w's accumulators in query order. kKeys > 0: every query sees
// that many keys (the loops over them of fixed length), 0: any mask.
template <typename T, bool kWhole, int kRank, int kKeys, int kQueries>
void lanes_backward_queries(const LaneRows<T, kWhole, kRank>& at, int first, T scale,
                            const T* probs, const T* rows_d_context, T* rows_d_qkv,
                            LaneBuffers<T>& w) {
  constexpr int kL = kLanes<T>;
  const AttentionShape& s = at.s;
  const int n = s.tokens, r = at.rank(), rv = at.value_rank(), count = at.g.count;
  int keys[kQueries];
  const T* p_rows[kQueries];
  const T* dc_rows[kQueries];
  T* d_s_rows[kQueries];  // dP, then dS in place: entry j at j * kL
  for (int q = 0; q < kQueries; ++q) {
    keys[q] = kKeys > 0 ? kKeys : s.visible_keys(first + q);
    p_rows[q] = probs + at.probs_row(first + q);
    dc_rows[q] = rows_d_context + at.g.context + (first + q) * at.context_stride;
    d_s_rows[q] = w.d_p + static_cast<size_t>(q) * n * kL;
    // dP[j] = dC[i] . V[j].
    for (int j = 0; j < keys[q]; ++j) {
      Vector<T> d_p = {};
      for (int e = 0; e < rv; ++e)
        d_p += at.load(dc_rows[q] + e * count) * at.load(at.v + j * at.stride + e * count);
      store_vector(d_s_rows[q] + j * kL, d_p);
    }
  }
  // weighted = sum_j P[j] dP[j]; dS[j] = P[j] (dP[j] - weighted) / sqrt(r), in place.
  Vector<T> weighted[kQueries] = {};
  sum_over_keys<T, kQueries>(
      keys,
      [&](int q, int j) {
        return at.load(p_rows[q] + j * count) * load_vector(d_s_rows[q] + j * kL);
      },
      weighted);
  for (int q = 0; q < kQueries; ++q)
    for (int j = 0; j < keys[q]; ++j)
      store_vector(d_s_rows[q] + j * kL, at.load(p_rows[q] + j * count) *
                                             (load_vector(d_s_rows[q] + j * kL) - weighted[q]) *
                                             scale);
  // dQ[i] = sum_j dS[j] K[j], summed in registers.
  for (int e = 0; e < r; ++e) {
    Vector<T> d_q[kQueries] = {};
    sum_over_keys<T, kQueries>(
        keys,
        [&](int q, int j) {
          return load_vector(d_s_rows[q] + j * kL) * at.load(at.k + j * at.stride + e * count);
        },
        d_q);
    for (int q = 0; q < kQueries; ++q)
      at.store(rows_d_qkv + at.g.q + (first + q) * at.stride + e * count, d_q[q]);
  }
  // dK[j] += dS[j] Q[i]; dV[j] += P[j] dC[i]: independent updates, one per (j, e),
  // each summed over the queries in order. The block's queries are added in a
  // register and stored once per (j, e), not loaded and stored once per query: the
  // same additions in the same order.
  int most_keys = kKeys;
  const T* q_rows[kQueries];
  for (int q = 0; q < kQueries; ++q) {
    if constexpr (kKeys == 0) most_keys = max_of(most_keys, keys[q]);
    q_rows[q] = at.q + (first + q) * at.stride;
  }
  for (int j = 0; j < most_keys; ++j) {
    bool sees[kQueries];
    Vector<T> d_s[kQueries] = {}, p[kQueries] = {};
    for (int q = 0; q < kQueries; ++q) {
      sees[q] = j < keys[q];
      if (sees[q]) {
        d_s[q] = load_vector(d_s_rows[q] + j * kL);
        p[q] = at.load(p_rows[q] + j * count);
      }
    }
    for (int e = 0; e < r; ++e) {
      Vector<T> d_k = load_vector(w.d_k + (j * r + e) * kL);
      for (int q = 0; q < kQueries; ++q)
        if (sees[q]) d_k = d_k + d_s[q] * at.load(q_rows[q] + e * count);
      store_vector(w.d_k + (j * r + e) * kL, d_k);
    }
    for (int e = 0; e < rv; ++e) {
      Vector<T> d_v = load_vector(w.d_v + (j * rv + e) * kL);
      for (int q = 0; q < kQueries; ++q)
        if (sees[q]) d_v = d_v + p[q] * at.load(dc_rows[q] + e * count);
      store_vector(w.d_v + (j * rv + e) * kL, d_v);
    }
  }
}

template <typename T, bool kWhole, int kRank>
void lanes_backward(const AttentionShape& s, const LaneGroup<T>& g, T scale, const T* rows_qkv,
                    const T* probs, const T* rows_d_context, T* rows_d_qkv, LaneBuffers<T>& w) {
  constexpr int kL = kLanes<T>;
  const LaneRows<T, kWhole, kRank> at(s, g, rows_qkv);
  const int n = s.tokens, r = at.rank(), rv = at.value_rank();
  for (int index = 0; index < n * r * kL; ++index) w.d_k[index] = T(0);
  for (int index = 0; index < n * rv * kL; ++index) w.d_v[index] = T(0);
  auto each_query = [&]<int kKeys>() {
    int i = 0;
    for (; i + kQueryBlock <= n; i += kQueryBlock)
      lanes_backward_queries<T, kWhole, kRank, kKeys, kQueryBlock>(at, i, scale, probs,
                                                                   rows_d_context, rows_d_qkv, w);
    for (; i < n; ++i)
      lanes_backward_queries<T, kWhole, kRank, kKeys, 1>(at, i, scale, probs, rows_d_context,
                                                         rows_d_qkv, w);
  };
  if (sees_fixed_keys(s))
    each_query.template operator()<kFixedKeys>();
  else
    each_query.template operator()<0>();
  for (int j = 0; j < n; ++j) {
    T* d_k_row = rows_d_qkv + g.k + j * at.stride;
    T* d_v_row = rows_d_qkv + g.v + j * at.stride;
    for (int e = 0; e < r; ++e)
      at.store(d_k_row + e * g.count, load_vector(w.d_k + (j * r + e) * kL));
    for (int e = 0; e < rv; ++e)
      at.store(d_v_row + e * g.count, load_vector(w.d_v + (j * rv + e) * kL));
  }
}

// Calls kernel.template operator()<kWhole, kRank>() with the group's kWhole and, for
// heads of rank and value rank 1, 2, 4 or 8, that rank at compile time (else 0).
template <typename T, typename Kernel>
void for_lane_shape(const AttentionShape& s, const LaneGroup<T>& g, Kernel kernel) {
  auto with_rank = [&](auto whole) {
    constexpr bool kWhole = decltype(whole)::value;
    // float only: double runs are the gradient checks, not worth the code size.
    const int rank = std::is_same_v<T, float> && s.rank == s.value_rank ? s.rank : 0;
    switch (rank) {
      case 1:
        return kernel.template operator()<kWhole, 1>();
      case 2:
        return kernel.template operator()<kWhole, 2>();
      case 4:
        return kernel.template operator()<kWhole, 4>();
      case 8:
        return kernel.template operator()<kWhole, 8>();
      default:
        return kernel.template operator()<kWhole, 0>();
    }
  };
  if (g.count == kLanes<T>)
    with_rank(std::true_type{});
  else
    with_rank(std::false_type{});
}

// Share `part` of `parts` (whole 64-byte lines) of the `count` values at `block`,
// fetched into cache for reading or (kWrite) writing; nothing when block is null.
// Every line fetched holds one of the values. Always inlined: GCC deletes calls of a
// function that only prefetches (it counts it side-effect free), which once left an
// earlier version of this never executed.
template <bool kWrite, typename T>
[[gnu::always_inline]] inline void fetch_share(const T* block, size_t count, int part, int parts) {
  if (block == nullptr) return;
  constexpr size_t kLine = 64 / sizeof(T);
  const size_t lines = (count + kLine - 1) / kLine;
  const size_t end = lines * (part + 1) / parts;
  for (size_t line = lines * part / parts; line < end; ++line)
    __builtin_prefetch(block + line * kLine, kWrite ? 1 : 0, 3);
}

// Share `part` of `parts` of the next sample's rows (NextSample): qkv read, the
// probabilities written (forward) or read (backward), context and d_qkv written.
template <bool kBackward, typename T>
[[gnu::always_inline]] inline void fetch_next(const AttentionShape& s, const NextSample<T>& next,
                                              int part, int parts) {
  const size_t n = s.tokens, heads_total = static_cast<size_t>(s.modules) * s.heads;
  fetch_share<false>(next.qkv, n * s.qkv_stride(), part, parts);
  fetch_share<!kBackward>(next.probs, heads_total * n * n, part, parts);
  fetch_share<true>(next.context, n * s.context_stride(), part, parts);
  fetch_share<true>(next.d_qkv, n * s.qkv_stride(), part, parts);
}

// Share of the multiply-adds that do useful work in each layout: the per-head
// kernel pads N, r and r_v to whole registers; the lane layout pads the head count.
template <typename T>
bool use_lanes(const AttentionShape& s) {
  const int heads_total = s.modules * s.heads;
  const double n = s.tokens, r = s.rank, rv = s.value_rank;
  const double n_p = round_up(s.tokens, kLanes<T>), r_p = round_up(s.rank, kLanes<T>),
               rv_p = round_up(s.value_rank, kLanes<T>);
  // Forward S, C and backward dP, dQ, dK, dV, per head and query row.
  const double useful = n * (3 * r + 3 * rv);
  const double per_head = n_p * (r + rv) + n * (2 * r_p + 2 * rv_p);
  const double lanes = double(heads_total) / round_up(heads_total, kLanes<T>);
  return lanes > useful / per_head;
}

}  // namespace

template <typename T>
size_t head_scratch_size(const AttentionShape& s) {
  return max_of(HeadBuffers<T>(s, nullptr).used, LaneBuffers<T>(s, nullptr).used);
}

template <typename T>
bool heads_in_lanes(const AttentionShape& s) {
  return use_lanes<T>(s);
}

// The padding columns of the buffers must be zero before the first head (the
// products read them); every head rewrites the same cells, so they stay zero.
template <typename T>
void heads_forward(const AttentionShape& s, T scale, const T* qkv, T* probs, T* context, T* scratch,
                   const NextSample<T>& next) {
  const int n = s.tokens;
  const int heads_total = s.modules * s.heads;
  if (use_lanes<T>(s)) {
    const int groups = (heads_total + kLanes<T> - 1) / kLanes<T>;
    for (int first = 0; first < heads_total; first += kLanes<T>) {
      fetch_next<false>(s, next, first / kLanes<T>, groups);
      const LaneGroup<T> group(s, first, min_of(kLanes<T>, heads_total - first));
      for_lane_shape(s, group, [&]<bool kWhole, int kRank>() {
        lanes_forward<T, kWhole, kRank>(s, group, scale, qkv, probs, context);
      });
    }
    return;
  }
  HeadBuffers<T> w(s, scratch);
  for (int mh = 0; mh < heads_total; ++mh) {
    fetch_next<false>(s, next, mh, heads_total);
    head_forward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale, qkv,
                 probs + static_cast<size_t>(mh) * n * n, context, w);
  }
}

template <typename T>
void heads_backward(const AttentionShape& s, T scale, const T* qkv, const T* probs,
                    const T* d_context, T* d_qkv, T* scratch, const NextSample<T>& next) {
  const int n = s.tokens;
  const int heads_total = s.modules * s.heads;
  if (use_lanes<T>(s)) {
    LaneBuffers<T> lanes(s, scratch);
    const int groups = (heads_total + kLanes<T> - 1) / kLanes<T>;
    for (int first = 0; first < heads_total; first += kLanes<T>) {
      fetch_next<true>(s, next, first / kLanes<T>, groups);
      const LaneGroup<T> group(s, first, min_of(kLanes<T>, heads_total - first));
      for_lane_shape(s, group, [&]<bool kWhole, int kRank>() {
        lanes_backward<T, kWhole, kRank>(s, group, scale, qkv, probs, d_context, d_qkv, lanes);
      });
    }
    return;
  }
  HeadBuffers<T> w(s, scratch);
  for (int mh = 0; mh < heads_total; ++mh) {
    fetch_next<true>(s, next, mh, heads_total);
    head_backward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale, qkv,
                  probs + static_cast<size_t>(mh) * n * n, d_context, d_qkv, w);
  }
}

template size_t head_scratch_size<float>(const AttentionShape&);
template size_t head_scratch_size<double>(const AttentionShape&);
template bool heads_in_lanes<float>(const AttentionShape&);
template bool heads_in_lanes<double>(const AttentionShape&);
template void heads_forward<float>(const AttentionShape&, float, const float*, float*, float*,
                                   float*, const NextSample<float>&);
template void heads_forward<double>(const AttentionShape&, double, const double*, double*, double*,
                                    double*, const NextSample<double>&);
template void heads_backward<float>(const AttentionShape&, float, const float*, const float*,
                                    const float*, float*, float*, const NextSample<float>&);
template void heads_backward<double>(const AttentionShape&, double, const double*, const double*,
                                     const double*, double*, double*, const NextSample<double>&);

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
