#include "attnrank/layers.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "attnrank/blas.h"

namespace attnrank {

namespace {

// Column sums of a (rows, cols) matrix into out (cols). Each thread owns a column
// range and walks the rows in order, so the result does not depend on threads.
template <typename T>
void column_sums(const T* matrix, int rows, int cols, T* out) {
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int col = 0; col < cols; ++col) out[col] = T(0);
  }
  constexpr int kBlock = 64;
  const int blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int block = 0; block < blocks; ++block) {
    const int begin = block * kBlock;
    const int end = begin + kBlock < cols ? begin + kBlock : cols;
    T sums[kBlock] = {};
    for (int row = 0; row < rows; ++row) {
      const T* line = matrix + static_cast<size_t>(row) * cols;
      for (int col = begin; col < end; ++col) sums[col - begin] += line[col];
    }
    for (int col = begin; col < end; ++col) out[col] = sums[col - begin];
  }
}

}  // namespace

template <typename T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, int rows, int in, int out) {
  if (bias != nullptr) {
#pragma omp parallel for schedule(static)
    for (int row = 0; row < rows; ++row) {
      T* line = y + static_cast<size_t>(row) * out;
      for (int col = 0; col < out; ++col) line[col] = bias[col];
    }
  }
  gemm(false, true, rows, out, in, T(1), x, in, weight, in, bias != nullptr ? T(1) : T(0), y, out);
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* weight, T* dx, T* dweight, T* dbias,
                     int rows, int in, int out) {
  if (dx != nullptr) gemm(false, false, rows, in, out, T(1), dy, out, weight, in, T(0), dx, in);
  gemm(true, false, out, in, rows, T(1), dy, out, x, in, T(0), dweight, in);
  if (dbias != nullptr) column_sums(dy, rows, out, dbias);
}

template <typename T>
void relu_forward(const T* x, T* y, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void sphere_norm_forward(const T* x, T scale, T* y, T* inv_norm, int rows, int width) {
#pragma omp parallel for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const T* in = x + static_cast<size_t>(row) * width;
    T* outp = y + static_cast<size_t>(row) * width;
    T squares = 0;
    for (int i = 0; i < width; ++i) squares += in[i] * in[i];
    const T inv = T(1) / std::sqrt(squares);
    inv_norm[row] = inv;
    const T factor = scale * inv;
    for (int i = 0; i < width; ++i) outp[i] = in[i] * factor;
  }
}

template <typename T>
void sphere_norm_backward(const T* dy, const T* x, T scale, const T* inv_norm, T* dx, T* dscale,
                          int rows, int width) {
  // With u = x/||x||: dx = scale/||x|| (dy - u (u.dy)), dscale = sum dy.u
  std::vector<T> row_dots(rows);
#pragma omp parallel for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const T* g = dy + static_cast<size_t>(row) * width;
    const T* in = x + static_cast<size_t>(row) * width;
    T* out = dx + static_cast<size_t>(row) * width;
    const T inv = inv_norm[row];
    T dot = 0;
    for (int i = 0; i < width; ++i) dot += g[i] * in[i];
    dot *= inv;  // u.dy
    row_dots[row] = dot;
    const T factor = scale * inv;
    const T u_factor = dot * inv;
    for (int i = 0; i < width; ++i) out[i] = factor * (g[i] - in[i] * u_factor);
  }
  T total = 0;
  for (int row = 0; row < rows; ++row) total += row_dots[row];
  *dscale = total;
}

template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int rows, int width) {
  constexpr T kEps = T(1e-5);
#pragma omp parallel for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const T* in = x + static_cast<size_t>(row) * width;
    T* out = y + static_cast<size_t>(row) * width;
    T sum = 0;
    for (int i = 0; i < width; ++i) sum += in[i];
    const T mu = sum / width;
    T var = 0;
    for (int i = 0; i < width; ++i) var += (in[i] - mu) * (in[i] - mu);
    var /= width;
    const T rs = T(1) / std::sqrt(var + kEps);
    mean[row] = mu;
    rstd[row] = rs;
    for (int i = 0; i < width; ++i) out[i] = (in[i] - mu) * rs * weight[i] + bias[i];
  }
}

template <typename T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd,
                         T* dx, T* dweight, T* dbias, int rows, int width) {
#pragma omp parallel for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const T* g = dy + static_cast<size_t>(row) * width;
    const T* in = x + static_cast<size_t>(row) * width;
    T* out = dx + static_cast<size_t>(row) * width;
    const T mu = mean[row];
    const T rs = rstd[row];
    T mean_g = 0;       // mean of dy*weight
    T mean_g_xhat = 0;  // mean of dy*weight*xhat
    for (int i = 0; i < width; ++i) {
      const T gw = g[i] * weight[i];
      mean_g += gw;
      mean_g_xhat += gw * (in[i] - mu) * rs;
    }
    mean_g /= width;
    mean_g_xhat /= width;
    for (int i = 0; i < width; ++i) {
      const T xhat = (in[i] - mu) * rs;
      out[i] = rs * (g[i] * weight[i] - mean_g - xhat * mean_g_xhat);
    }
  }
  // Parameter gradients: column sums of dy*xhat and dy, by column blocks (deterministic).
#pragma omp parallel for schedule(static)
  for (int i = 0; i < width; ++i) {
    T gw = 0;
    T gb = 0;
    for (int row = 0; row < rows; ++row) {
      const size_t at = static_cast<size_t>(row) * width + i;
      gw += dy[at] * (x[at] - mean[row]) * rstd[row];
      gb += dy[at];
    }
    dweight[i] = gw;
    dbias[i] = gb;
  }
}

int mlp_block_rows(int rows) {
  return rows < 512 ? rows : 512;
}

template <typename T>
void mlp_forward(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, T* hidden, T* y,
                 int rows, int width, int ffn) {
  const int block = mlp_block_rows(rows);
  for (int begin = 0; begin < rows; begin += block) {
    const int count = std::min(block, rows - begin);
    T* h = hidden + static_cast<size_t>(begin) * ffn;
    gemm(false, true, count, ffn, width, T(1), x + static_cast<size_t>(begin) * width, width, w1,
         width, T(0), h, ffn);
    // Bias and ReLU in one pass over the block while it is in cache.
#pragma omp parallel for schedule(static)
    for (int row = 0; row < count; ++row) {
      T* line = h + static_cast<size_t>(row) * ffn;
      if (b1 != nullptr) {
        for (int i = 0; i < ffn; ++i) {
          const T value = line[i] + b1[i];
          line[i] = value > T(0) ? value : T(0);
        }
      } else {
        for (int i = 0; i < ffn; ++i) line[i] = line[i] > T(0) ? line[i] : T(0);
      }
    }
    linear_forward(h, w2, b2, y + static_cast<size_t>(begin) * width, count, ffn, width);
  }
}

template <typename T>
void mlp_backward(const T* dy, const T* x, const T* hidden, const T* w1, const T* w2, T* d_hidden,
                  T* dx, T* dw1, T* db1, T* dw2, T* db2, int rows, int width, int ffn) {
  const int block = mlp_block_rows(rows);
  if (db1 != nullptr) std::fill(db1, db1 + ffn, T(0));
  for (int begin = 0; begin < rows; begin += block) {
    const int count = std::min(block, rows - begin);
    const T beta = begin == 0 ? T(0) : T(1);  // weight gradients accumulate over blocks
    const T* dy_block = dy + static_cast<size_t>(begin) * width;
    const T* h = hidden + static_cast<size_t>(begin) * ffn;
    const T* x_block = x + static_cast<size_t>(begin) * width;
    // fc2: dW2 += dy^T h; dh = dy W2
    gemm(true, false, width, ffn, count, T(1), dy_block, width, h, ffn, beta, dw2, ffn);
    gemm(false, false, count, ffn, width, T(1), dy_block, width, w2, ffn, T(0), d_hidden, ffn);
    // ReLU mask and the fc1 bias gradient in one pass; each thread owns a column range.
    constexpr int kColumns = 64;
    const int column_blocks = (ffn + kColumns - 1) / kColumns;
#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < column_blocks; ++cb) {
      const int c0 = cb * kColumns;
      const int c1 = std::min(ffn, c0 + kColumns);
      T sums[kColumns] = {};
      for (int row = 0; row < count; ++row) {
        T* g = d_hidden + static_cast<size_t>(row) * ffn;
        const T* hv = h + static_cast<size_t>(row) * ffn;
        for (int i = c0; i < c1; ++i) {
          g[i] = hv[i] > T(0) ? g[i] : T(0);
          sums[i - c0] += g[i];
        }
      }
      if (db1 != nullptr)
        for (int i = c0; i < c1; ++i) db1[i] += sums[i - c0];
    }
    // fc1: dW1 += dh^T x; dx = dh W1
    gemm(true, false, ffn, width, count, T(1), d_hidden, ffn, x_block, width, beta, dw1, width);
    gemm(false, false, count, width, ffn, T(1), d_hidden, ffn, w1, width, T(0),
         dx + static_cast<size_t>(begin) * width, width);
  }
  if (db2 != nullptr) column_sums(dy, rows, width, db2);
}

#define ATTNRANK_INSTANTIATE_LAYERS(T)                                                             \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int, int, int);                \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int, int, int);       \
  template void relu_forward<T>(const T*, T*, size_t);                                             \
  template void relu_backward<T>(const T*, const T*, T*, size_t);                                  \
  template void sphere_norm_forward<T>(const T*, T, T*, T*, int, int);                             \
  template void sphere_norm_backward<T>(const T*, const T*, T, const T*, T*, T*, int, int);        \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int, int);         \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*,   \
                                       T*, int, int);                                              \
  template void mlp_forward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, int, int, \
                               int);                                                               \
  template void mlp_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, T*,  \
                                T*, T*, int, int, int);
ATTNRANK_INSTANTIATE_LAYERS(float)
ATTNRANK_INSTANTIATE_LAYERS(double)

}  // namespace attnrank
