#include "attnrank/layers.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "attnrank/blas.h"
#include "core/parallel.h"

namespace attnrank {

namespace {

// Column sums of a (rows, cols) matrix into out (cols). Each thread owns a column
// range and walks the rows in order, so the result does not depend on threads.
template <typename T>
void column_sums(const T* matrix, int rows, int cols, T* out) {
#pragma omp parallel if (worth_parallel(static_cast <size_t>(rows) * cols))
  {
#pragma omp for schedule(static)
    for (int col = 0; col < cols; ++col) out[col] = T(0);
  }
  constexpr int kBlock = 64;
  const int blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * cols))
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
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * out))
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
void sphere_norm_forward(const T* x, T scale, T* y, T* inv_norm, int rows, int width) {
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
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
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
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
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
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
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
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
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
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

#define ATTNRANK_INSTANTIATE_LAYERS(T)                                                           \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int, int, int);              \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int, int, int);     \
  template void sphere_norm_forward<T>(const T*, T, T*, T*, int, int);                           \
  template void sphere_norm_backward<T>(const T*, const T*, T, const T*, T*, T*, int, int);      \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int, int);       \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                       T*, int, int);
ATTNRANK_INSTANTIATE_LAYERS(float)
ATTNRANK_INSTANTIATE_LAYERS(double)

}  // namespace attnrank
