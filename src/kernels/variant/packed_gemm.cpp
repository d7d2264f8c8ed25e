// GEMM against a matrix packed once: the attention and MLP projections multiply each
// block of 64-1024 rows by the same weights, and a BLAS call per block re-packed the
// weights every time (W_in of the reference configuration 5 is 3 MB, packed 32 times
// per thread per pass). Here the weights are packed once per pass into panels of two
// vectors' width, and a register tile of rows x panel columns runs over the depth.
#include <omp.h>

#include <utility>

#include "attnrank/core/parallel.h"
#include "variant_kernels.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

namespace {

// Columns per packed panel: two vectors. A panel holds all k rows of its columns,
// row e at panel + e * kPanelWidth.
template <typename T>
constexpr int kPanelWidth = 2 * kLanes<T>;
// With 32 vector registers (AVX-512) a tile spans two panels (6 rows x 4 vectors =
// 24 accumulators) or, for a last lone panel, 12 rows x 2 vectors (x 1 for a lone
// vector); with 16 registers one panel of 6 rows (12 accumulators).
constexpr bool kWideTiles = ATTNRANK_VECTOR_BYTES == 64;
constexpr int kNarrowTileRows = kWideTiles ? 12 : 6;
constexpr int kWideTileRows = 6;
// Depth per pass over C: a tile's B rows (256 x 2 panels, 64 KB of floats) stay in
// L2 while its row tiles go by.
constexpr int kDepthBlock = 256;

// The right-edge tile's epilogue, one value at a time: values (rows, columns) are its
// sums; C (rows, width) = values or C + values, then alpha * C + bias in the last block.
template <typename T>
[[gnu::noinline]] void finish_edge(int rows, int columns, const T* values, bool first, bool last,
                                   T alpha, const T* bias, T* c, int ldc, int width) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < width; ++j) {
      T value = values[r * columns + j];
      T* target = c + static_cast<size_t>(r) * ldc + j;
      if (!first) value = *target + value;
      if (last) value = value * alpha + (bias != nullptr ? bias[j] : T(0));
      *target = value;
    }
}

// The tile of kRows rows of C and kVectors vectors of columns (starting at panel):
// acc = sum over e in [e_begin, e_end) of A(row, e) * B(e, columns), in order of e;
// C = acc (first depth block) or C + acc, then alpha * C + bias in the last block.
// width: the tile's columns that C has (< kVectors * kLanes only at C's right edge).
// Inlined into its row loop: with k = 16 (the small presets) the call and the
// epilogue were as costly as the multiply-adds.
// kTransposedA: A given as A^T (k, m), its entry (row, e) at a[e * lda + row] (the
// weight gradients' dY^T X, dY read in place).
template <typename T, bool kTransposedA, int kRows, int kVectors>
[[gnu::always_inline]] inline void tile(int e_begin, int e_end, bool first, bool last, const T* a,
                                        int lda, const T* panel, size_t panel_stride, T alpha,
                                        const T* bias, T* c, int ldc, int width) {
  constexpr int kL = kLanes<T>, kColumns = kVectors * kL, kP = kPanelWidth<T>;
  Vector<T> acc[kRows][kVectors] = {};
  const T* b = panel + static_cast<size_t>(e_begin) * kP;
  // A's entries (r, e) at a_column[r * row_step], a_column stepping by e_step per e.
  const size_t e_step = kTransposedA ? static_cast<size_t>(lda) : 1;
  const size_t row_step = kTransposedA ? 1 : static_cast<size_t>(lda);
  const T* a_column = a + e_begin * e_step;
  for (int e = e_begin; e < e_end; ++e, b += kP, a_column += e_step) {
    Vector<T> b_vectors[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v)
      b_vectors[v] = load_vector(b + (v / 2) * panel_stride + (v % 2) * kL);
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const T a_entry = a_column[r * row_step];
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] += a_entry * b_vectors[v];
    }
  }
  if (width < kColumns) {
    // Right edge: the same sums through a buffer, so that C is never touched past n.
    T values[kRows * kColumns];
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kVectors; ++v) store_vector(values + r * kColumns + v * kL, acc[r][v]);
    finish_edge(kRows, kColumns, values, first, last, alpha, bias, c, ldc, width);
    return;
  }
  Vector<T> add[kVectors] = {};
  if (last && bias != nullptr)
    for (int v = 0; v < kVectors; ++v) add[v] = load_vector(bias + v * kL);
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    T* c_row = c + static_cast<size_t>(r) * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      Vector<T> value = first ? acc[r][v] : load_vector(c_row + v * kL) + acc[r][v];
      if (last) value = value * alpha + add[v];
      store_vector(c_row + v * kL, value);
    }
  }
}

// Where entry (i, 0) of A is, A stored as is or given transposed.
template <bool kTransposedA, typename T>
const T* row_of_a(const T* a, int lda, int i) {
  return a + static_cast<size_t>(i) * (kTransposedA ? 1 : lda);
}

// The tiles of rows [0, rows) for one column tile: whole kRows tiles, then one of
// the rows left (1 .. kRows - 1), each with its accumulators in registers.
template <typename T, bool kTransposedA, int kRows, int kVectors>
void column_tile(int rows, int e_begin, int e_end, bool first, bool last, const T* a, int lda,
                 const T* panel, size_t panel_stride, T alpha, const T* bias, T* c, int ldc,
                 int width) {
  int i = 0;
  for (; i + kRows <= rows; i += kRows)
    tile<T, kTransposedA, kRows, kVectors>(
        e_begin, e_end, first, last, row_of_a<kTransposedA>(a, lda, i), lda, panel, panel_stride,
        alpha, bias, c + static_cast<size_t>(i) * ldc, ldc, width);
  if (i == rows) return;
  const int left = rows - i;
  [&]<int... kLeft>(std::integer_sequence<int, kLeft...>) {
    ((left == kLeft + 1
          ? tile<T, kTransposedA, kLeft + 1, kVectors>(
                e_begin, e_end, first, last, row_of_a<kTransposedA>(a, lda, i), lda, panel,
                panel_stride, alpha, bias, c + static_cast<size_t>(i) * ldc, ldc, width)
          : void()),
     ...);
  }
  (std::make_integer_sequence<int, kRows - 1>{});
}

// packed_product for rows [0, m) of C, over the whole depth.
template <typename T, bool kTransposedA>
void packed_rows(int m, int n, int k, T alpha, const T* a, int lda, const T* packed, const T* bias,
                 T* c, int ldc, bool accumulate) {
  constexpr int kP = kPanelWidth<T>;
  const size_t panel_stride = static_cast<size_t>(k) * kP;
  for (int e0 = 0; e0 < k; e0 += kDepthBlock) {
    const int e1 = min_of(k, e0 + kDepthBlock);
    const bool first = e0 == 0 && !accumulate, last = e1 == k;
    int j0 = 0;
    if constexpr (kWideTiles)
      for (; j0 + 2 * kP <= n; j0 += 2 * kP)
        column_tile<T, kTransposedA, kWideTileRows, 4>(
            m, e0, e1, first, last, a, lda, packed + static_cast<size_t>(j0) * k, panel_stride,
            alpha, bias != nullptr ? bias + j0 : nullptr, c + j0, ldc, 2 * kP);
    for (; j0 < n; j0 += kP) {
      const int width = min_of(kP, n - j0);
      const T* panel = packed + static_cast<size_t>(j0) * k;
      const T* panel_bias = bias != nullptr ? bias + j0 : nullptr;
      // A last vector alone (n = 16 with AVX-512) takes one-vector tiles: a two-vector
      // tile would spend half its multiply-adds on the panel's zero padding.
      if (width <= kLanes<T>)
        column_tile<T, kTransposedA, kNarrowTileRows, 1>(m, e0, e1, first, last, a, lda, panel,
                                                         panel_stride, alpha, panel_bias, c + j0,
                                                         ldc, width);
      else
        column_tile<T, kTransposedA, kNarrowTileRows, 2>(m, e0, e1, first, last, a, lda, panel,
                                                         panel_stride, alpha, panel_bias, c + j0,
                                                         ldc, width);
    }
  }
}

// packed_gemm and packed_gemm_at: A (m, k) as stored or given transposed.
template <typename T, bool kTransposedA>
void packed_product(int m, int n, int k, T alpha, const T* a, int lda, const T* packed,
                    const T* bias, T* c, int ldc, bool accumulate) {
  // A given transposed is read a few columns per row of A^T: a chunk of rows of C at a
  // time goes through every panel while its columns of A^T are in cache, instead of
  // one pass over all of A^T per panel (with AVX2, n = 32 makes two passes over each
  // depth block of dqkv, 1.5 MB at heads-lm H = 16, r = 32). Eight tiles of rows: at a
  // depth block of 256, 256 rows of A^T by 48 (AVX2) or 96 (AVX-512) values.
  const int chunk = kTransposedA ? 8 * kNarrowTileRows : m;
  for (int i0 = 0; i0 < m; i0 += chunk)
    packed_rows<T, kTransposedA>(min_of(chunk, m - i0), n, k, alpha,
                                 row_of_a<kTransposedA>(a, lda, i0), lda, packed, bias,
                                 c + static_cast<size_t>(i0) * ldc, ldc, accumulate);
}

}  // namespace

template <typename T>
size_t packed_size(int k, int n) {
  return static_cast<size_t>(k) * round_up(n, kPanelWidth<T>);
}

template <typename T>
void pack_panels(bool transposed, int k, int n, const T* b, int ldb, T* packed) {
  constexpr int kP = kPanelWidth<T>;
  const int panels = (n + kP - 1) / kP;
  auto pack_panel = [&](int p) {
    const int j0 = p * kP;
    T* panel = packed + static_cast<size_t>(j0) * k;
    const int width = min_of(kP, n - j0);
    if (transposed) {
      // B^T stored: B's column j is b's row j, read contiguously.
      for (int j = 0; j < width; ++j) {
        const T* from = b + static_cast<size_t>(j0 + j) * ldb;
        for (int e = 0; e < k; ++e) panel[static_cast<size_t>(e) * kP + j] = from[e];
      }
    } else {
      for (int e = 0; e < k; ++e) {
        const T* from = b + static_cast<size_t>(e) * ldb + j0;
        T* to = panel + static_cast<size_t>(e) * kP;
        for (int j = 0; j < width; ++j) to[j] = from[j];
      }
    }
    if (width < kP)
      for (int e = 0; e < k; ++e)
        for (int j = width; j < kP; ++j) panel[static_cast<size_t>(e) * kP + j] = T(0);
  };
  // A copy: the panels split over the threads give the same bytes. Small matrices
  // stay out of any parallel region (an if(false) region on every call cost the
  // small presets a few percent of their step), and so do calls from inside one, even
  // a region of one thread (the attention backward packs each thread's own rows).
  if (worth_parallel(static_cast<size_t>(k) * n) && omp_get_level() == 0) {
#pragma omp parallel for schedule(static)
    for (int p = 0; p < panels; ++p) pack_panel(p);
  } else {
    for (int p = 0; p < panels; ++p) pack_panel(p);
  }
}

template <typename T>
void packed_gemm(int m, int n, int k, T alpha, const T* a, int lda, const T* packed, const T* bias,
                 T* c, int ldc) {
  packed_product<T, false>(m, n, k, alpha, a, lda, packed, bias, c, ldc, false);
}

template <typename T>
void packed_gemm_at(int m, int n, int k, T alpha, const T* a, int lda, const T* packed, T* c,
                    int ldc, bool accumulate) {
  packed_product<T, true>(m, n, k, alpha, a, lda, packed, nullptr, c, ldc, accumulate);
}

#define ATTNRANK_INSTANTIATE_PACKED_GEMM(T)                                                   \
  template size_t packed_size<T>(int, int);                                                   \
  template void pack_panels<T>(bool, int, int, const T*, int, T*);                            \
  template void packed_gemm<T>(int, int, int, T, const T*, int, const T*, const T*, T*, int); \
  template void packed_gemm_at<T>(int, int, int, T, const T*, int, const T*, T*, int, bool);
ATTNRANK_INSTANTIATE_PACKED_GEMM(float)
ATTNRANK_INSTANTIATE_PACKED_GEMM(double)

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
