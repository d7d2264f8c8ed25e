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

// Asks for `width` entries at `offset` of n rows (stride `stride`) to be brought
// into cache. A head's entries are a short piece of each of n long rows (the qkv
// rows of many heads), which the hardware prefetchers do not foresee: fetched one
// head ahead, the next head's rows arrive while this one is computed.
template <typename T>
void prefetch_rows(const T* rows, size_t stride, int offset, int n, int width) {
  constexpr int kLine = 64 / sizeof(T);
  for (int j = 0; j < n; ++j) {
    const T* row = rows + j * stride + offset;
    for (int e = 0; e < width; e += kLine) __builtin_prefetch(row + e);
    __builtin_prefetch(row + width - 1);
  }
}

// The rows of head `mh` (modules times heads, in order): its queries, keys and
// values, and its context gradient when d_context is given.
template <typename T>
void prefetch_head(const AttentionShape& s, int mh, const T* qkv, const T* d_context) {
  const HeadOffsets at = head_offsets(s, mh / s.heads, mh % s.heads);
  const int n = s.tokens;
  prefetch_rows(qkv, s.qkv_width(), at.query, n, s.rank);
  prefetch_rows(qkv, s.qkv_width(), at.key, n, s.rank);
  prefetch_rows(qkv, s.qkv_width(), at.value, n, s.value_rank);
  if (d_context != nullptr)
    prefetch_rows(d_context, s.context_width(), at.context, n, s.value_rank);
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

template <typename T>
void head_forward(const AttentionShape& s, const HeadOffsets& at, T scale, const T* rows_qkv,
                  T* probs, T* rows_context, HeadBuffers<T>& w) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank;
  const size_t stride = s.qkv_width();
  const size_t context_stride = s.context_width();
  // K^T / sqrt(r), the one operand that needs a transposed copy.
  transpose_scaled(rows_qkv + at.key, stride, n, r, scale, w.k_t, w.n_p);
  // Scores S = Q (K^T / sqrt(r)), Q read in place, then row softmax over the visible keys.
  small_gemm(n, r, w.n_p, rows_qkv + at.query, static_cast<int>(stride), w.k_t, w.n_p, w.p, w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    T* row = w.p + i * w.n_p;
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
    std::memcpy(probs + static_cast<size_t>(i) * n, row, sizeof(T) * n);
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
  const size_t stride = s.qkv_width();
  const size_t context_stride = s.context_width();
  transpose_scaled(rows_qkv + at.value, stride, n, rv, T(1), w.v_t, w.n_p);
  // dP = dC V^T, dC read in place, then dS = P (dP - rowsum(P dP)) / sqrt(r).
  small_gemm(n, rv, w.n_p, rows_d_context + at.context, static_cast<int>(context_stride), w.v_t,
             w.n_p, w.d_s, w.n_p);
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    const T* p_row = probs + static_cast<size_t>(i) * n;
    T* ds = w.d_s + i * w.n_p;
    const T weighted = sum_terms<T>(
        keys, [p_row, ds](int j) { return load_vector(p_row + j) * load_vector(ds + j); },
        [p_row, ds](int j) { return p_row[j] * ds[j]; });
    for (int j = 0; j < keys; ++j) ds[j] = p_row[j] * (ds[j] - weighted) * scale;
    for (int j = keys; j < w.n_p; ++j) ds[j] = T(0);
  }
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

// One thread's accumulators for one lane group, carved out of its scratch block.
template <typename T>
struct LaneBuffers {
  T *d_p, *d_q, *d_k, *d_v;
  size_t used = 0;

  LaneBuffers(const AttentionShape& s, T* scratch) {
    const size_t lanes = kLanes<T>, n = s.tokens, r = s.rank, rv = s.value_rank;
    T* next = scratch;
    auto take = [&next](size_t count) {
      T* start = next;
      next += count;
      return start;
    };
    d_p = take(n * lanes);
    d_q = take(r * lanes);
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

template <typename T, bool kWhole>
void lanes_forward(const AttentionShape& s, const LaneGroup<T>& g, T scale, const T* rows_qkv,
                   T* probs, T* rows_context) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank, count = g.count;
  const size_t stride = s.qkv_width(), context_stride = s.context_width();
  auto load = [count](const T* from) { return load_lanes<T, kWhole>(from, count); };
  auto store = [count](T* to, const Vector<T>& v) { store_lanes<T, kWhole>(to, v, count); };
  const T* q = rows_qkv + g.q;
  const T* k = rows_qkv + g.k;
  const T* v = rows_qkv + g.v;
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    T* p_row = probs + g.probs + static_cast<size_t>(i) * n * count;  // P[i][j] at j * count
    const T* q_row = q + i * stride;
    // Scores of query i against every visible key, all lanes at once.
    Vector<T> top = {};
    for (int j = 0; j < keys; ++j) {
      const T* k_row = k + j * stride;
      Vector<T> dot = {};
      for (int e = 0; e < r; ++e) dot += load(q_row + e * count) * load(k_row + e * count);
      dot *= scale;
      store(p_row + j * count, dot);
      top = j == 0 || dot > top ? dot : top;
    }
    if (s.kind == AttentionKind::kHardmax) {
      Vector<T> found = {};  // one-hot on the first maximum of each lane
      for (int j = 0; j < keys; ++j) {
        const Vector<T> hit =
            ((load(p_row + j * count) == top) & (found == T(0))) ? Vector<T>{} + T(1) : Vector<T>{};
        found += hit;
        store(p_row + j * count, hit);
      }
    } else {
      Vector<T> sum = {};
      for (int j = 0; j < keys; ++j) {
        const Vector<T> e = exp_fast(load(p_row + j * count) - top);
        store(p_row + j * count, e);
        sum += e;
      }
      const Vector<T> inv = T(1) / sum;
      for (int j = 0; j < keys; ++j) store(p_row + j * count, load(p_row + j * count) * inv);
    }
    for (int j = keys; j < n; ++j) store(p_row + j * count, Vector<T>{});
    // Context of query i: sum_j P[j] V[j][e].
    T* context_row = rows_context + g.context + i * context_stride;
    for (int e = 0; e < rv; ++e) {
      Vector<T> value = {};
      for (int j = 0; j < keys; ++j)
        value += load(p_row + j * count) * load(v + j * stride + e * count);
      store(context_row + e * count, value);
    }
  }
}

template <typename T, bool kWhole>
void lanes_backward(const AttentionShape& s, const LaneGroup<T>& g, T scale, const T* rows_qkv,
                    const T* probs, const T* rows_d_context, T* rows_d_qkv, LaneBuffers<T>& w) {
  constexpr int kL = kLanes<T>;
  const int n = s.tokens, r = s.rank, rv = s.value_rank, count = g.count;
  const size_t stride = s.qkv_width(), context_stride = s.context_width();
  auto load = [count](const T* from) { return load_lanes<T, kWhole>(from, count); };
  auto store = [count](T* to, const Vector<T>& v) { store_lanes<T, kWhole>(to, v, count); };
  const T* q = rows_qkv + g.q;
  const T* k = rows_qkv + g.k;
  const T* v = rows_qkv + g.v;
  for (int index = 0; index < n * r * kL; ++index) w.d_k[index] = T(0);
  for (int index = 0; index < n * rv * kL; ++index) w.d_v[index] = T(0);
  for (int i = 0; i < n; ++i) {
    const int keys = s.visible_keys(i);
    const T* p_row = probs + g.probs + static_cast<size_t>(i) * n * count;
    const T* dc = rows_d_context + g.context + i * context_stride;
    const T* q_row = q + i * stride;
    // dP[j] = dC[i] . V[j]; weighted = sum_j P[j] dP[j].
    for (int j = 0; j < keys; ++j) {
      Vector<T> d_p = {};
      for (int e = 0; e < rv; ++e) d_p += load(dc + e * count) * load(v + j * stride + e * count);
      store_vector(w.d_p + j * kL, d_p);
    }
    Vector<T> weighted = {};
    for (int j = 0; j < keys; ++j)
      weighted += load(p_row + j * count) * load_vector(w.d_p + j * kL);
    // dS[j] = P[j] (dP[j] - weighted) / sqrt(r), over dP in place.
    for (int j = 0; j < keys; ++j)
      store_vector(w.d_p + j * kL,
                   load(p_row + j * count) * (load_vector(w.d_p + j * kL) - weighted) * scale);
    // dQ[i] = sum_j dS[j] K[j], summed in a register: accumulated in memory, each
    // key's term waited for the previous one's store.
    T* d_q_row = rows_d_qkv + g.q + i * stride;
    for (int e = 0; e < r; ++e) {
      Vector<T> d_q = {};
      for (int j = 0; j < keys; ++j)
        d_q += load_vector(w.d_p + j * kL) * load(k + j * stride + e * count);
      store(d_q_row + e * count, d_q);
    }
    // dK[j] += dS[j] Q[i]; dV[j] += P[j] dC[i]: independent updates, one per (j, e).
    for (int j = 0; j < keys; ++j) {
      const Vector<T> d_s = load_vector(w.d_p + j * kL);
      const Vector<T> p = load(p_row + j * count);
      for (int e = 0; e < r; ++e)
        store_vector(w.d_k + (j * r + e) * kL,
                     load_vector(w.d_k + (j * r + e) * kL) + d_s * load(q_row + e * count));
      for (int e = 0; e < rv; ++e)
        store_vector(w.d_v + (j * rv + e) * kL,
                     load_vector(w.d_v + (j * rv + e) * kL) + p * load(dc + e * count));
    }
  }
  for (int j = 0; j < n; ++j) {
    T* d_k_row = rows_d_qkv + g.k + j * stride;
    T* d_v_row = rows_d_qkv + g.v + j * stride;
    for (int e = 0; e < r; ++e) store(d_k_row + e * count, load_vector(w.d_k + (j * r + e) * kL));
    for (int e = 0; e < rv; ++e) store(d_v_row + e * count, load_vector(w.d_v + (j * rv + e) * kL));
  }
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
void heads_forward(const AttentionShape& s, T scale, const T* qkv, T* probs, T* context,
                   T* scratch) {
  const int n = s.tokens;
  const int heads_total = s.modules * s.heads;
  if (use_lanes<T>(s)) {
    for (int first = 0; first < heads_total; first += kLanes<T>) {
      const LaneGroup<T> group(s, first, min_of(kLanes<T>, heads_total - first));
      if (group.count == kLanes<T>)
        lanes_forward<T, true>(s, group, scale, qkv, probs, context);
      else
        lanes_forward<T, false>(s, group, scale, qkv, probs, context);
    }
    return;
  }
  HeadBuffers<T> w(s, scratch);
  for (int mh = 0; mh < heads_total; ++mh) {
    if (mh + 1 < heads_total) prefetch_head<T>(s, mh + 1, qkv, nullptr);
    head_forward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale, qkv,
                 probs + static_cast<size_t>(mh) * n * n, context, w);
  }
}

template <typename T>
void heads_backward(const AttentionShape& s, T scale, const T* qkv, const T* probs,
                    const T* d_context, T* d_qkv, T* scratch) {
  const int n = s.tokens;
  const int heads_total = s.modules * s.heads;
  if (use_lanes<T>(s)) {
    LaneBuffers<T> lanes(s, scratch);
    for (int first = 0; first < heads_total; first += kLanes<T>) {
      const LaneGroup<T> group(s, first, min_of(kLanes<T>, heads_total - first));
      if (group.count == kLanes<T>)
        lanes_backward<T, true>(s, group, scale, qkv, probs, d_context, d_qkv, lanes);
      else
        lanes_backward<T, false>(s, group, scale, qkv, probs, d_context, d_qkv, lanes);
    }
    return;
  }
  HeadBuffers<T> w(s, scratch);
  for (int mh = 0; mh < heads_total; ++mh) {
    if (mh + 1 < heads_total) prefetch_head(s, mh + 1, qkv, d_context);
    head_backward(s, head_offsets(s, mh / s.heads, mh % s.heads), scale, qkv,
                  probs + static_cast<size_t>(mh) * n * n, d_context, d_qkv, w);
  }
}

template size_t head_scratch_size<float>(const AttentionShape&);
template size_t head_scratch_size<double>(const AttentionShape&);
template bool heads_in_lanes<float>(const AttentionShape&);
template bool heads_in_lanes<double>(const AttentionShape&);
template void heads_forward<float>(const AttentionShape&, float, const float*, float*, float*,
                                   float*);
template void heads_forward<double>(const AttentionShape&, double, const double*, double*, double*,
                                    double*);
template void heads_backward<float>(const AttentionShape&, float, const float*, const float*,
                                    const float*, float*, float*);
template void heads_backward<double>(const AttentionShape&, double, const double*, const double*,
                                     const double*, double*, double*);

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
