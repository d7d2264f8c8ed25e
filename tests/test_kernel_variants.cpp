// Every kernel variant this CPU can run (avx512, avx2, sse2 on x86-64; neon on
// arm64) against plain scalar references written here, in float and double, on
// shapes whose widths are not multiples of any vector width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/kernels/head_layout.h"
#include "attnrank/kernels/kernels.h"

using namespace attnrank;
using attnrank::kernels::KernelTable;

namespace {

template <typename T>
std::vector<T> random_values(size_t count, unsigned seed, double low = -1.0, double high = 1.0) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> uniform(low, high);
  std::vector<T> values(count);
  for (T& value : values) value = static_cast<T>(uniform(engine));
  return values;
}

template <typename T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

// Largest |a - b| / max(1, |b|).
template <typename T>
double max_relative_error(const std::vector<T>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(b[i])));
  return worst;
}

int visible(const AttentionShape& s, int query) {
  if (s.mask == AttentionMask::kPrefix) return s.key_limit;
  if (s.mask == AttentionMask::kCausal) return query + 1;
  return s.tokens;
}

// Reference attention heads of one sample, in double, straight from the formulas.
struct ReferenceHeads {
  std::vector<double> probs, context, d_qkv;
};

template <typename T>
ReferenceHeads reference_heads(const AttentionShape& s, const std::vector<T>& qkv,
                               const std::vector<T>& d_context) {
  const int n = s.tokens, r = s.rank, rv = s.value_rank, width = s.qkv_width();
  const int context_width = s.context_width();
  const double scale = 1.0 / std::sqrt(double(r));
  ReferenceHeads out{std::vector<double>(size_t(s.modules) * s.heads * n * n, 0.0),
                     std::vector<double>(size_t(n) * context_width, 0.0),
                     std::vector<double>(size_t(n) * width, 0.0)};
  for (int m = 0; m < s.modules; ++m)
    for (int h = 0; h < s.heads; ++h) {
      const int base = m * s.heads * s.head_block();
      const int q0 = base + h * r, k0 = base + s.heads * r + h * r;
      const int v0 = base + 2 * s.heads * r + h * rv, c0 = (m * s.heads + h) * rv;
      double* p = out.probs.data() + size_t(m * s.heads + h) * n * n;
      auto at = [&](int token, int column) { return double(qkv[size_t(token) * width + column]); };
      for (int i = 0; i < n; ++i) {
        const int keys = visible(s, i);
        std::vector<double> scores(keys);
        for (int j = 0; j < keys; ++j) {
          double dot = 0;
          for (int e = 0; e < r; ++e) dot += at(i, q0 + e) * at(j, k0 + e);
          scores[j] = dot * scale;
        }
        if (s.kind == AttentionKind::kHardmax) {
          const int best = int(std::max_element(scores.begin(), scores.end()) - scores.begin());
          p[i * n + best] = 1.0;
        } else {
          const double top = *std::max_element(scores.begin(), scores.end());
          double sum = 0;
          for (int j = 0; j < keys; ++j) sum += std::exp(scores[j] - top);
          for (int j = 0; j < keys; ++j) p[i * n + j] = std::exp(scores[j] - top) / sum;
        }
        for (int e = 0; e < rv; ++e) {
          double value = 0;
          for (int j = 0; j < n; ++j) value += p[i * n + j] * at(j, v0 + e);
          out.context[size_t(i) * context_width + c0 + e] = value;
        }
      }
      if (s.kind == AttentionKind::kHardmax) continue;
      // dP = dC V^T; dS = P (dP - rowsum(P dP)); dQ = dS K s; dK = dS^T Q s; dV = P^T dC.
      for (int i = 0; i < n; ++i) {
        std::vector<double> d_p(n, 0.0);
        double weighted = 0;
        for (int j = 0; j < n; ++j) {
          for (int e = 0; e < rv; ++e)
            d_p[j] += double(d_context[size_t(i) * context_width + c0 + e]) * at(j, v0 + e);
          weighted += p[i * n + j] * d_p[j];
        }
        for (int j = 0; j < n; ++j) {
          const double d_s = p[i * n + j] * (d_p[j] - weighted) * scale;
          for (int e = 0; e < r; ++e) {
            out.d_qkv[size_t(i) * width + q0 + e] += d_s * at(j, k0 + e);
            out.d_qkv[size_t(j) * width + k0 + e] += d_s * at(i, q0 + e);
          }
          for (int e = 0; e < rv; ++e)
            out.d_qkv[size_t(j) * width + v0 + e] +=
                p[i * n + j] * double(d_context[size_t(i) * context_width + c0 + e]);
        }
      }
    }
  return out;
}

// Rows of width order.size() from the model's column order to the kernels' (order[k]
// is the model column of kernel column k), and back.
template <typename T>
std::vector<T> to_kernel_order(const std::vector<T>& rows, const std::vector<int>& order) {
  const size_t width = order.size();
  std::vector<T> out(rows.size());
  for (size_t row = 0; row < rows.size() / width; ++row)
    for (size_t k = 0; k < width; ++k) out[row * width + k] = rows[row * width + order[k]];
  return out;
}

template <typename T>
std::vector<T> to_model_order(const std::vector<T>& rows, const std::vector<int>& order) {
  const size_t width = order.size();
  std::vector<T> out(rows.size());
  for (size_t row = 0; row < rows.size() / width; ++row)
    for (size_t k = 0; k < width; ++k) out[row * width + order[k]] = rows[row * width + k];
  return out;
}

// Rows of `width` values laid `stride` apart, the padding set to `fill` (a value that
// would show in the results if a kernel read it), and back.
template <typename T>
std::vector<T> with_stride(const std::vector<T>& rows, size_t width, size_t stride, T fill) {
  std::vector<T> out(rows.size() / width * stride, fill);
  for (size_t row = 0; row < rows.size() / width; ++row)
    std::copy_n(rows.begin() + row * width, width, out.begin() + row * stride);
  return out;
}

template <typename T>
std::vector<T> without_stride(const std::vector<T>& rows, size_t width, size_t stride) {
  std::vector<T> out(rows.size() / stride * width);
  for (size_t row = 0; row < rows.size() / stride; ++row)
    std::copy_n(rows.begin() + row * stride, width, out.begin() + row * width);
  return out;
}

// Whether every padding entry (columns width.. of each stride-long row) still holds fill.
template <typename T>
bool padding_untouched(const std::vector<T>& rows, size_t width, size_t stride, T fill) {
  for (size_t row = 0; row < rows.size() / stride; ++row)
    for (size_t k = width; k < stride; ++k)
      if (rows[row * stride + k] != fill) return false;
  return true;
}

// tied: qkv entries in {-1, 0, 1}, so hardmax scores tie often (first maximum wins).
template <typename T>
void check_heads(const KernelTable<T>& kernel, const AttentionShape& s, unsigned seed,
                 bool tied = false) {
  SCOPED_TRACE(std::string(kernel.isa) + " N=" + std::to_string(s.tokens) +
               " H=" + std::to_string(s.heads) + " r=" + std::to_string(s.rank) +
               " rv=" + std::to_string(s.value_rank) + " c=" + std::to_string(s.modules) +
               " mask=" + std::to_string(int(s.mask)));
  const int n = s.tokens;
  auto qkv = random_values<T>(size_t(n) * s.qkv_width(), seed, -2.0, 2.0);
  if (tied)
    for (T& value : qkv) value = std::round(value / 2);
  const auto d_context = random_values<T>(size_t(n) * s.context_width(), seed + 1);
  const ReferenceHeads want = reference_heads(s, qkv, d_context);
  // The kernels read and write their own head order (head_layout.h).
  const kernels::HeadLayout layout = kernels::head_layout(kernel, s);
  const std::vector<int> qkv_order = kernels::qkv_order(s, layout);
  const std::vector<int> context_order = kernels::context_order(s, layout);
  const std::vector<int> probs_order = kernels::probs_order(s, layout);
  // The kernels read and write rows qkv_stride() and context_stride() apart; the
  // padding between them must be neither read (it holds 1e6) nor written.
  const size_t qkv_width = s.qkv_width(), qkv_stride = s.qkv_stride();
  const size_t context_width = s.context_width(), context_stride = s.context_stride();
  const T fill(1e6);
  const std::vector<T> kernel_qkv =
      with_stride(to_kernel_order(qkv, qkv_order), qkv_width, qkv_stride, fill);
  std::vector<T> probs(want.probs.size(), T(7)), context(size_t(n) * context_stride, fill);
  std::vector<T> scratch(kernel.head_scratch_size(s), T(0));
  kernel.heads_forward(s, T(1) / std::sqrt(T(s.rank)), kernel_qkv.data(), probs.data(),
                       context.data(), scratch.data(), {});
  EXPECT_LT(max_relative_error(to_model_order(probs, probs_order), want.probs), tolerance<T>());
  EXPECT_LT(
      max_relative_error(
          to_model_order(without_stride(context, context_width, context_stride), context_order),
          want.context),
      tolerance<T>());
  EXPECT_TRUE(padding_untouched(context, context_width, context_stride, fill));
  if (s.kind == AttentionKind::kHardmax) return;
  std::vector<T> d_qkv(size_t(n) * qkv_stride, fill);
  std::fill(scratch.begin(), scratch.end(), T(0));
  const std::vector<T> kernel_d_context =
      with_stride(to_kernel_order(d_context, context_order), context_width, context_stride, fill);
  kernel.heads_backward(s, T(1) / std::sqrt(T(s.rank)), kernel_qkv.data(), probs.data(),
                        kernel_d_context.data(), d_qkv.data(), scratch.data(), {});
  EXPECT_LT(
      max_relative_error(to_model_order(without_stride(d_qkv, qkv_width, qkv_stride), qkv_order),
                         want.d_qkv),
      tolerance<T>() * 4);
  EXPECT_TRUE(padding_untouched(d_qkv, qkv_width, qkv_stride, fill));
}

template <typename T>
void check_all_heads(const KernelTable<T>& kernel) {
  unsigned seed = 10;
  int in_lanes = 0, one_by_one = 0;
  for (int tokens : {1, 3, 8, 17})
    for (int heads : {1, 3})
      for (int rank : {1, 5, 16})
        for (int value_rank : {2, 9}) {
          AttentionShape s;
          s.tokens = tokens;
          s.heads = heads;
          s.rank = rank;
          s.value_rank = value_rank;
          s.modules = heads == 3 ? 2 : 1;
          (kernel.heads_in_lanes(s) ? in_lanes : one_by_one) += 1;
          check_heads(kernel, s, ++seed);
          s.mask = AttentionMask::kCausal;
          check_heads(kernel, s, ++seed);
          s.mask = AttentionMask::kPrefix;
          s.key_limit = std::max(1, tokens / 2);
          check_heads(kernel, s, ++seed);
          s.mask = AttentionMask::kFull;
          s.kind = AttentionKind::kHardmax;
          check_heads(kernel, s, ++seed);
          s.mask = AttentionMask::kCausal;  // masked entries of a hardmax row stay zero
          check_heads(kernel, s, ++seed);
        }
  // Many small heads of one sample, across several lane groups: 64 heads (whole groups
  // at every lane count) and 21 (the last group partly filled at every lane count), at
  // the ranks the lanes kernels know at compile time (r = r_v = 1, 2, 4, 8); 9 tokens:
  // two blocks of four queries and a tail.
  for (const auto& [heads, modules] : {std::pair{16, 4}, std::pair{7, 3}})
    for (int rank : {1, 2, 4, 8}) {
      AttentionShape s;
      s.tokens = 9;
      s.heads = heads;
      s.rank = rank;
      s.value_rank = rank;
      s.modules = modules;
      if (heads * modules == 64 && rank <= 2) {
        EXPECT_TRUE(kernel.heads_in_lanes(s)) << kernel.isa;
      }
      check_heads(kernel, s, ++seed);
      s.mask = AttentionMask::kCausal;
      check_heads(kernel, s, ++seed);
      s.mask = AttentionMask::kPrefix;
      s.key_limit = 5;
      check_heads(kernel, s, ++seed);
      // Tied integer scores stay tied only where 1/sqrt(r) is a power of two: the
      // per-head kernels scale K before the product (r = 8 on SSE2 broke ties there).
      s.mask = AttentionMask::kFull;
      s.kind = AttentionKind::kHardmax;
      check_heads(kernel, s, ++seed, /*tied=*/rank == 1 || rank == 4);
    }
  // Rows whose width is a multiple of 256 are padded (AttentionShape::qkv_stride): qkv
  // rows 512 and context rows 256 wide, one head at a time where a vector holds 4 or
  // more values (in lanes for double on SSE2/NEON). The lanes shapes above with 64
  // heads of rank 4 or 8 have padded rows too.
  AttentionShape padded;
  padded.tokens = 5;
  padded.rank = 64;
  padded.value_rank = 128;
  padded.modules = 2;
  EXPECT_GT(padded.qkv_stride(), padded.qkv_width());
  EXPECT_GT(padded.context_stride(), padded.context_width());
  check_heads(kernel, padded, ++seed);
  padded.mask = AttentionMask::kCausal;
  check_heads(kernel, padded, ++seed);
  AttentionShape tied_heads;  // one head at a time, tied scores
  tied_heads.tokens = 9;
  tied_heads.rank = 4;  // scale 1/2: tied integer dot products stay exactly tied
  tied_heads.value_rank = 3;
  tied_heads.kind = AttentionKind::kHardmax;
  check_heads(kernel, tied_heads, ++seed, /*tied=*/true);
  // The per-head path, full and causal: ranks of whole registers at every ISA (read
  // and written in place inside the qkv and context rows; several heads and modules so
  // the heads start mid-row), and tokens and ranks past one register at every width and
  // not a multiple of it (several transposed register blocks plus row and column edges
  // for K^T and V^T).
  auto check_per_head = [&](int tokens, int heads, int modules, int rank, int value_rank) {
    AttentionShape s;
    s.tokens = tokens;
    s.heads = heads;
    s.modules = modules;
    s.rank = rank;
    s.value_rank = value_rank;
    EXPECT_FALSE(kernel.heads_in_lanes(s)) << kernel.isa;
    check_heads(kernel, s, ++seed);
    s.mask = AttentionMask::kCausal;
    check_heads(kernel, s, ++seed);
  };
  check_per_head(16, 2, 2, 32, 16);
  check_per_head(16, 2, 2, 32, 32);
  check_per_head(37, 3, 1, 20, 19);
  AttentionShape published;
  published.tokens = 16;
  published.rank = published.value_rank = 64;
  EXPECT_FALSE(kernel.heads_in_lanes(published)) << kernel.isa;
  check_heads(kernel, published, ++seed);
  // Both layouts were exercised.
  EXPECT_GT(in_lanes, 0) << kernel.isa;
  EXPECT_GT(one_by_one, 0) << kernel.isa;
}

// A causal head's dS row i sums P[i][j] dP[i][j] over the keys j <= i only: an
// infinite value of the last key (its dP column inf or NaN in every row) must not
// reach the queries before it. Their dQ is the same, bit for bit, as with a finite
// value (dQ[i] = sum over j <= i of dS[i][j] K[j] does not involve V[last]). The
// per-head path, rows of whole registers at every lane count (N = 16, r = 32; three
// heads, so that even with two lanes the lanes layout fills only 3/4 of its lanes).
template <typename T>
void check_masked_value_stays_out(const KernelTable<T>& kernel) {
  SCOPED_TRACE(kernel.isa);
  AttentionShape s;
  s.tokens = 16;
  s.heads = 3;
  s.rank = s.value_rank = 32;
  s.mask = AttentionMask::kCausal;
  ASSERT_FALSE(kernel.heads_in_lanes(s));
  const int n = s.tokens;
  const size_t qkv_width = s.qkv_width(), qkv_stride = s.qkv_stride();
  const size_t context_width = s.context_width(), context_stride = s.context_stride();
  const kernels::HeadLayout layout = kernels::head_layout(kernel, s);
  const std::vector<int> qkv_order = kernels::qkv_order(s, layout);
  const std::vector<int> context_order = kernels::context_order(s, layout);
  std::vector<T> qkv = random_values<T>(size_t(n) * qkv_width, 41, -2.0, 2.0);
  const std::vector<T> d_context =
      with_stride(to_kernel_order(random_values<T>(size_t(n) * context_width, 42), context_order),
                  context_width, context_stride, T(0));
  std::vector<T> scratch(kernel.head_scratch_size(s), T(0));
  std::vector<T> probs(size_t(s.heads) * n * n), context(size_t(n) * context_stride);
  const T scale = T(1) / std::sqrt(T(s.rank));
  kernel.heads_forward(
      s, scale, with_stride(to_kernel_order(qkv, qkv_order), qkv_width, qkv_stride, T(0)).data(),
      probs.data(), context.data(), scratch.data(), {});
  auto d_qkv_of = [&](const std::vector<T>& model_qkv) {
    std::vector<T> d_qkv(size_t(n) * qkv_stride, T(0));
    std::fill(scratch.begin(), scratch.end(), T(0));
    kernel.heads_backward(
        s, scale,
        with_stride(to_kernel_order(model_qkv, qkv_order), qkv_width, qkv_stride, T(0)).data(),
        probs.data(), d_context.data(), d_qkv.data(), scratch.data(), {});
    return to_model_order(without_stride(d_qkv, qkv_width, qkv_stride), qkv_order);
  };
  const std::vector<T> finite = d_qkv_of(qkv);
  // The last token's value of head 0 (values after the H r queries and H r keys).
  for (int e = 0; e < s.value_rank; ++e)
    qkv[size_t(n - 1) * qkv_width + 2 * s.heads * s.rank + e] = std::numeric_limits<T>::infinity();
  const std::vector<T> with_inf = d_qkv_of(qkv);
  int differing = 0;
  for (int i = 0; i + 1 < n; ++i)
    for (int e = 0; e < s.rank; ++e) {  // head 0's queries
      const size_t at = size_t(i) * qkv_width + e;
      ASSERT_TRUE(std::isfinite(finite[at]));
      differing += with_inf[at] != finite[at];
    }
  EXPECT_EQ(differing, 0);
}

template <typename T>
void check_elementwise(const KernelTable<T>& kernel) {
  SCOPED_TRACE(kernel.isa);
  const int rows = 7, width = 37;
  const size_t count = size_t(rows) * width;
  const auto x = random_values<T>(count, 1), dy = random_values<T>(count, 2);
  const auto weight = random_values<T>(width, 3), bias = random_values<T>(width, 4);

  {  // exp_shifted, over the range softmax feeds it
    const auto in = random_values<T>(1000, 5, -80.0, 0.5);
    std::vector<T> out(in.size());
    kernel.exp_shifted(in.data(), T(0.25), out.data(), int(in.size()));
    for (size_t i = 0; i < in.size(); ++i)
      EXPECT_NEAR(double(out[i]) / std::exp(double(in[i]) - 0.25), 1.0, tolerance<T>()) << in[i];
  }
  {  // sphere norm forward and backward
    const T scale = T(1.3);
    std::vector<T> y(count), inv(rows), dx(count), dots(rows);
    kernel.sphere_norm_forward(x.data(), scale, y.data(), inv.data(), rows, width);
    kernel.sphere_norm_backward(dy.data(), x.data(), scale, inv.data(), dx.data(), dots.data(),
                                rows, width);
    std::vector<double> want_y(count), want_dx(count), want_dots(rows);
    for (int row = 0; row < rows; ++row) {
      double squares = 0, dot = 0;
      for (int i = 0; i < width; ++i) squares += double(x[row * width + i]) * x[row * width + i];
      const double norm = std::sqrt(squares);
      for (int i = 0; i < width; ++i)
        dot += double(dy[row * width + i]) * x[row * width + i] / norm;
      want_dots[row] = dot;
      for (int i = 0; i < width; ++i) {
        const double u = x[row * width + i] / norm;
        want_y[row * width + i] = scale * u;
        want_dx[row * width + i] = scale / norm * (dy[row * width + i] - u * dot);
      }
    }
    EXPECT_LT(max_relative_error(y, want_y), tolerance<T>());
    EXPECT_LT(max_relative_error(dx, want_dx), tolerance<T>());
    EXPECT_LT(max_relative_error(dots, want_dots), tolerance<T>());
  }
  {  // layer norm forward, backward and parameter gradients
    std::vector<T> y(count), mean(rows), rstd(rows), dx(count), dweight(width), dbias(width);
    kernel.layer_norm_forward(x.data(), weight.data(), bias.data(), y.data(), mean.data(),
                              rstd.data(), rows, width);
    kernel.layer_norm_backward(dy.data(), x.data(), weight.data(), mean.data(), rstd.data(),
                               dx.data(), rows, width);
    kernel.layer_norm_parameter_gradients(dy.data(), x.data(), mean.data(), rstd.data(),
                                          dweight.data(), dbias.data(), rows, width);
    std::vector<double> want_y(count), want_dx(count), want_dw(width, 0.0), want_db(width, 0.0);
    for (int row = 0; row < rows; ++row) {
      double mu = 0, var = 0;
      for (int i = 0; i < width; ++i) mu += x[row * width + i];
      mu /= width;
      for (int i = 0; i < width; ++i) var += std::pow(x[row * width + i] - mu, 2);
      const double rs = 1.0 / std::sqrt(var / width + 1e-5);
      double mean_g = 0, mean_gx = 0;
      for (int i = 0; i < width; ++i) {
        const double xhat = (x[row * width + i] - mu) * rs, g = dy[row * width + i];
        want_y[row * width + i] = xhat * weight[i] + bias[i];
        mean_g += g * weight[i] / width;
        mean_gx += g * weight[i] * xhat / width;
        want_dw[i] += g * xhat;
        want_db[i] += g;
      }
      for (int i = 0; i < width; ++i) {
        const double xhat = (x[row * width + i] - mu) * rs;
        want_dx[row * width + i] = rs * (dy[row * width + i] * weight[i] - mean_g - xhat * mean_gx);
      }
    }
    EXPECT_LT(max_relative_error(y, want_y), tolerance<T>());
    EXPECT_LT(max_relative_error(dx, want_dx), tolerance<T>() * 4);
    EXPECT_LT(max_relative_error(dweight, want_dw), tolerance<T>());
    EXPECT_LT(max_relative_error(dbias, want_db), tolerance<T>());
  }
  {                        // column sums, ReLU and its backward
    const int cols = 150;  // more than one block of 64 columns
    const auto matrix = random_values<T>(size_t(rows) * cols, 6);
    std::vector<T> sums(cols, T(0.25));  // added to, not overwritten
    kernel.add_column_sums(matrix.data(), rows, cols, cols, sums.data());
    std::vector<double> want_sums(cols, 0.25);
    for (int row = 0; row < rows; ++row)
      for (int col = 0; col < cols; ++col) want_sums[col] += matrix[row * cols + col];
    EXPECT_LT(max_relative_error(sums, want_sums), tolerance<T>());

    std::vector<T> h = x;
    kernel.bias_relu(h.data(), bias.data(), rows, width);
    std::vector<T> g = dy, bias_gradient(width, T(0.5));
    kernel.relu_backward(g.data(), h.data(), bias_gradient.data(), rows, width);
    std::vector<double> want_h(count), want_g(count), want_bg(width, 0.5);
    for (int row = 0; row < rows; ++row)
      for (int i = 0; i < width; ++i) {
        const double value = double(x[row * width + i]) + double(bias[i]);
        want_h[row * width + i] = value > 0 ? value : 0;
        want_g[row * width + i] = value > 0 ? double(dy[row * width + i]) : 0.0;
        want_bg[i] += want_g[row * width + i];
      }
    EXPECT_LT(max_relative_error(h, want_h), tolerance<T>());
    EXPECT_LT(max_relative_error(g, want_g), tolerance<T>());
    EXPECT_LT(max_relative_error(bias_gradient, want_bg), tolerance<T>());
  }
  // AdamW: below the size that forks threads, and above it (the vectorised loop
  // split between threads), neither a multiple of any register width.
  for (const size_t n : {size_t{1001}, size_t{20001}}) {
    auto p = random_values<T>(n, 7), m = random_values<T>(n, 8), v = random_values<T>(n, 9, 0, 1);
    const auto grad = random_values<T>(n, 10);
    std::vector<unsigned char> decay(n);
    for (size_t i = 0; i < n; ++i) decay[i] = i % 3 == 0;
    const kernels::AdamWStep<T> c{T(0.01), T(0.999), T(0.9), T(0.95), T(1.3), T(1e-8)};
    std::vector<double> want_p(n), want_m(n), want_v(n);
    for (size_t i = 0; i < n; ++i) {
      double param = decay[i] ? double(p[i]) * double(c.decay_factor) : double(p[i]);
      want_m[i] = double(c.beta1) * m[i] + (1 - double(c.beta1)) * grad[i];
      want_v[i] = double(c.beta2) * v[i] + (1 - double(c.beta2)) * double(grad[i]) * grad[i];
      param -= double(c.step_size) * want_m[i] /
               (std::sqrt(want_v[i]) * double(c.inv_bias2_sqrt) + double(c.eps));
      want_p[i] = param;
    }
    kernel.adamw_update(n, p.data(), grad.data(), m.data(), v.data(), decay.data(), c);
    EXPECT_LT(max_relative_error(p, want_p), tolerance<T>());
    EXPECT_LT(max_relative_error(m, want_m), tolerance<T>());
    EXPECT_LT(max_relative_error(v, want_v), tolerance<T>());
  }
}

}  // namespace

TEST(KernelVariants, TheBaselineAndTheActiveOneRunHere) {
  const auto variants = kernels::runnable_variants<float>();
  ASSERT_FALSE(variants.empty());
  const std::string active = kernels::active_isa();
  EXPECT_TRUE(std::any_of(variants.begin(), variants.end(),
                          [&](const auto* table) { return table->isa == active; }));
  const auto doubles = kernels::runnable_variants<double>();
  ASSERT_EQ(doubles.size(), variants.size());
  for (size_t i = 0; i < variants.size(); ++i) {  // one register: twice as many floats
    EXPECT_EQ(std::string(variants[i]->isa), doubles[i]->isa);
    EXPECT_EQ(variants[i]->lanes, 2 * doubles[i]->lanes) << variants[i]->isa;
  }
}

TEST(KernelVariants, AttentionHeadsMatchTheScalarReferenceFloat) {
  for (const auto* table : kernels::runnable_variants<float>()) check_all_heads(*table);
}

TEST(KernelVariants, AttentionHeadsMatchTheScalarReferenceDouble) {
  for (const auto* table : kernels::runnable_variants<double>()) check_all_heads(*table);
}

TEST(KernelVariants, AMaskedKeysValueStaysOutOfTheQueriesBeforeItFloat) {
  for (const auto* table : kernels::runnable_variants<float>())
    check_masked_value_stays_out(*table);
}

TEST(KernelVariants, AMaskedKeysValueStaysOutOfTheQueriesBeforeItDouble) {
  for (const auto* table : kernels::runnable_variants<double>())
    check_masked_value_stays_out(*table);
}

TEST(KernelVariants, ElementwiseKernelsMatchTheScalarReferenceFloat) {
  for (const auto* table : kernels::runnable_variants<float>()) check_elementwise(*table);
}

TEST(KernelVariants, ElementwiseKernelsMatchTheScalarReferenceDouble) {
  for (const auto* table : kernels::runnable_variants<double>()) check_elementwise(*table);
}

// A matrix past the last-level cache takes add_column_sums' wide blocks (the cached
// ones the 64-column blocks above): each column must still add its rows in order to
// what it held, so the sums equal a plain float loop's exactly, called alone (the
// blocks split over the threads), from inside a parallel region (each thread its own
// matrix), and row block by row block as attention calls it (16 rows at a time).
TEST(KernelVariants, ColumnSumsOfALargeMatrixAddTheRowsInOrder) {
  const int rows = 2048, cols = 3100;  // 25 MB of floats, cols not a multiple of a block
  const auto matrix = random_values<float>(size_t(rows) * cols, 9);
  std::vector<float> want(cols, -1.0f);
  for (int row = 0; row < rows; ++row)
    for (int col = 0; col < cols; ++col) want[col] += matrix[size_t(row) * cols + col];
  for (const auto* table : kernels::runnable_variants<float>()) {
    std::vector<float> sums(cols, -1.0f);
    table->add_column_sums(matrix.data(), rows, cols, cols, sums.data());
    EXPECT_EQ(sums, want) << table->isa;
    std::vector<std::vector<float>> per_thread(2, std::vector<float>(cols, -1.0f));
#pragma omp parallel for num_threads(2)
    for (int thread = 0; thread < 2; ++thread)
      table->add_column_sums(matrix.data(), rows, cols, cols, per_thread[thread].data());
    EXPECT_EQ(per_thread[0], want) << table->isa;
    EXPECT_EQ(per_thread[1], want) << table->isa;
    std::vector<float> by_blocks(cols, -1.0f);
    for (int row = 0; row < rows; row += 16)
      table->add_column_sums(matrix.data() + size_t(row) * cols, 16, cols, cols, by_blocks.data());
    EXPECT_EQ(by_blocks, want) << table->isa;
    // The first cols - 20 columns of rows cols apart (ld > cols), the rest unread.
    std::vector<float> narrower(cols - 20, -1.0f);
    table->add_column_sums(matrix.data(), rows, cols - 20, cols, narrower.data());
    EXPECT_EQ(narrower, std::vector<float>(want.begin(), want.end() - 20)) << table->isa;
  }
}

// packed_gemm against a long double loop: every tile shape (rows left over 1-11,
// the wide and narrow panels, a right edge of 1 to 2 vectors - 1 columns), depths
// below, at and past the 256-deep block, strides wider than the matrices (the
// padding must be neither read into C nor written), bias or none, alpha 1 or not,
// B stored either way. Rows computed alone must equal the same rows of a larger
// product bit for bit (each entry's sum does not depend on m or the row offset).
template <typename T>
void check_packed_gemm(const KernelTable<T>& kernel) {
  struct Case {
    int m, n, k;
  };
  const Case cases[] = {{1, 1, 1},     {7, 3, 5},     {13, 16, 64},   {6, 31, 17},  {12, 32, 256},
                        {23, 33, 257}, {64, 64, 64},  {19, 65, 300},  {5, 100, 2},  {64, 130, 513},
                        {11, 200, 31}, {30, 8, 1000}, {17, 129, 128}, {2, 64, 700}, {25, 96, 9}};
  unsigned seed = 40;
  for (const Case& c : cases)
    for (bool transposed : {false, true})
      for (bool with_bias : {false, true}) {
        const T alpha = with_bias ? T(0.25) : T(1);
        const int lda = c.k + 3, ldb = (transposed ? c.k : c.n) + 2, ldc = c.n + 5;
        const auto a = random_values<T>(size_t(c.m) * lda, ++seed);
        const auto b = random_values<T>(size_t(transposed ? c.n : c.k) * ldb, ++seed);
        const auto bias = random_values<T>(c.n, ++seed);
        std::vector<T> packed(kernel.packed_size(c.k, c.n), T(-7));
        kernel.pack_panels(transposed, c.k, c.n, b.data(), ldb, packed.data());
        const T guard = T(-3.5);
        std::vector<T> out(size_t(c.m) * ldc, guard);
        kernel.packed_gemm(c.m, c.n, c.k, alpha, a.data(), lda, packed.data(),
                           with_bias ? bias.data() : nullptr, out.data(), ldc);
        double worst = 0;
        for (int i = 0; i < c.m; ++i)
          for (int j = 0; j < ldc; ++j) {
            const T got = out[size_t(i) * ldc + j];
            if (j >= c.n) {
              ASSERT_EQ(got, guard) << kernel.isa << " wrote past n at " << i << "," << j;
              continue;
            }
            long double sum = 0;
            for (int e = 0; e < c.k; ++e)
              sum += (long double)a[size_t(i) * lda + e] *
                     (transposed ? b[size_t(j) * ldb + e] : b[size_t(e) * ldb + j]);
            const double want = double(alpha * sum + (with_bias ? bias[j] : 0));
            worst = std::max(worst, std::abs(double(got) - want) / std::max(1.0, std::abs(want)));
          }
        EXPECT_LT(worst, tolerance<T>() * std::sqrt(double(c.k)))
            << kernel.isa << " m " << c.m << " n " << c.n << " k " << c.k << " transposed "
            << transposed << " bias " << with_bias;
        if (c.m < 3) continue;
        std::vector<T> part(size_t(c.m - 3) * ldc, guard);
        kernel.packed_gemm(c.m - 3, c.n, c.k, alpha, a.data() + size_t(3) * lda, lda, packed.data(),
                           with_bias ? bias.data() : nullptr, part.data(), ldc);
        EXPECT_TRUE(std::equal(part.begin(), part.end(), out.begin() + size_t(3) * ldc))
            << kernel.isa << " rows 3.. alone differ, m " << c.m << " n " << c.n << " k " << c.k;
      }
}

// packed_gemm_at (A given transposed, (k, m) with stride lda): the same sums as
// packed_gemm on A stored as is, bit for bit, and within rounding of a long double
// loop; rows of C in several chunks (48 rows with 256-bit vectors, 96 with AVX-512;
// m up to 384), k past a depth block, n with a right edge. C's columns past n and
// its rows past m keep their guard value; A^T's columns past m hold NaN, which any
// read of them would spread into C.
template <typename T>
void check_packed_gemm_transposed_a(const KernelTable<T>& kernel) {
  struct Case {
    int m, n, k;
  };
  const Case cases[] = {{1, 1, 1},     {7, 3, 5},     {13, 16, 64},   {97, 32, 300},
                        {200, 33, 17}, {50, 64, 513}, {384, 32, 512}, {6, 129, 9}};
  unsigned seed = 90;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(kernel.isa) + " m " + std::to_string(c.m) + " n " +
                 std::to_string(c.n) + " k " + std::to_string(c.k));
    const int lda = c.m + 3, ldb = c.n + 2, ldc = c.n + 5, guard_rows = 100;
    auto a_transposed = random_values<T>(size_t(c.k) * lda, ++seed);
    for (int e = 0; e < c.k; ++e)
      for (int i = c.m; i < lda; ++i) a_transposed[size_t(e) * lda + i] = std::nan("");
    const auto b = random_values<T>(size_t(c.k) * ldb, ++seed);
    std::vector<T> a(size_t(c.m) * c.k);  // A as stored, for packed_gemm
    for (int i = 0; i < c.m; ++i)
      for (int e = 0; e < c.k; ++e) a[size_t(i) * c.k + e] = a_transposed[size_t(e) * lda + i];
    std::vector<T> packed(kernel.packed_size(c.k, c.n));
    kernel.pack_panels(false, c.k, c.n, b.data(), ldb, packed.data());
    const T guard = T(-3.5), alpha = T(0.5);
    std::vector<T> out(size_t(c.m + guard_rows) * ldc, guard), want(out.size(), guard);
    kernel.packed_gemm_at(c.m, c.n, c.k, alpha, a_transposed.data(), lda, packed.data(), out.data(),
                          ldc, false);
    kernel.packed_gemm(c.m, c.n, c.k, alpha, a.data(), c.k, packed.data(), nullptr, want.data(),
                       ldc);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), want.begin()))
        << "differs from packed_gemm on A as stored";
    // Accumulating on top: alpha (C + A B) = alpha (alpha + 1) A B.
    std::vector<T> accumulated = out;
    kernel.packed_gemm_at(c.m, c.n, c.k, alpha, a_transposed.data(), lda, packed.data(),
                          accumulated.data(), ldc, true);
    double worst = 0, worst_accumulated = 0;
    for (int i = 0; i < c.m + guard_rows; ++i)
      for (int j = 0; j < ldc; ++j) {
        const T got = out[size_t(i) * ldc + j];
        const T got_accumulated = accumulated[size_t(i) * ldc + j];
        if (i >= c.m || j >= c.n) {
          ASSERT_EQ(got, guard) << "wrote past m or n at " << i << "," << j;
          ASSERT_EQ(got_accumulated, guard)
              << "accumulating wrote past m or n at " << i << "," << j;
          continue;
        }
        long double sum = 0;
        for (int e = 0; e < c.k; ++e)
          sum += (long double)a_transposed[size_t(e) * lda + i] * b[size_t(e) * ldb + j];
        const double expected = double(alpha * sum);
        worst =
            std::max(worst, std::abs(double(got) - expected) / std::max(1.0, std::abs(expected)));
        const double expected_accumulated = double(alpha * (alpha + 1) * sum);
        worst_accumulated =
            std::max(worst_accumulated, std::abs(double(got_accumulated) - expected_accumulated) /
                                            std::max(1.0, std::abs(expected_accumulated)));
      }
    EXPECT_LT(worst, tolerance<T>() * std::sqrt(double(c.k)));
    EXPECT_LT(worst_accumulated, tolerance<T>() * std::sqrt(double(c.k)));
  }
}

TEST(KernelVariants, PackedGemmMatchesALongDoubleLoopFloat) {
  for (const auto* table : kernels::runnable_variants<float>()) {
    check_packed_gemm(*table);
    check_packed_gemm_transposed_a(*table);
  }
}

TEST(KernelVariants, PackedGemmMatchesALongDoubleLoopDouble) {
  for (const auto* table : kernels::runnable_variants<double>()) {
    check_packed_gemm(*table);
    check_packed_gemm_transposed_a(*table);
  }
}

// The lane order of head_layout.h, worked out by hand: c = 1, H = 3, r = 1, r_v = 2,
// groups of 2 heads. Model qkv columns: Q 0 1 2, K 3 4 5, V (0,1) (2,3)+6 per head.
TEST(HeadLayout, LaneOrderByHand) {
  AttentionShape s;
  s.tokens = 2;
  s.heads = 3;
  s.rank = 1;
  s.value_rank = 2;
  const kernels::HeadLayout lanes{2};
  EXPECT_EQ(kernels::qkv_order(s, lanes), (std::vector<int>{0, 1, 3, 4, 6, 8, 7, 9, 2, 5, 10, 11}));
  EXPECT_EQ(kernels::context_order(s, lanes), (std::vector<int>{0, 2, 1, 3, 4, 5}));
  // P[head][i][j]: group 0 interleaves heads 0 and 1 cell by cell; head 2 follows.
  EXPECT_EQ(kernels::probs_order(s, lanes),
            (std::vector<int>{0, 4, 1, 5, 2, 6, 3, 7, 8, 9, 10, 11}));
  const kernels::HeadLayout model{};
  EXPECT_EQ(kernels::qkv_order(s, model), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
}

// Every order is a permutation, for every variant's group size and a partial group.
TEST(HeadLayout, OrdersArePermutations) {
  for (int group : {2, 4, 8, 16})
    for (int heads : {1, 5, 16, 40}) {
      AttentionShape s;
      s.tokens = 3;
      s.heads = heads;
      s.modules = 3;
      s.rank = 2;
      s.value_rank = 3;
      for (auto order : {kernels::qkv_order(s, {group}), kernels::context_order(s, {group}),
                         kernels::probs_order(s, {group})}) {
        std::sort(order.begin(), order.end());
        for (size_t k = 0; k < order.size(); ++k)
          ASSERT_EQ(order[k], int(k)) << group << " " << heads;
      }
    }
}
