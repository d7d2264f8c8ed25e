#include "attnrank/nn/layers.h"

#include <algorithm>
#include <vector>

#include "attnrank/core/blas.h"
#include "attnrank/core/parallel.h"
#include "attnrank/kernels/kernels.h"

namespace attnrank {

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
  if (dbias != nullptr) {
    std::fill(dbias, dbias + out, T(0));
    kernels::active<T>().add_column_sums(dy, rows, out, out, dbias);
  }
}

template <typename T>
void sphere_norm_forward(const T* x, T scale, T* y, T* inv_norm, int rows, int width) {
  kernels::active<T>().sphere_norm_forward(x, scale, y, inv_norm, rows, width);
}

template <typename T>
void sphere_norm_backward(const T* dy, const T* x, T scale, const T* inv_norm, T* dx, T* dscale,
                          int rows, int width) {
  std::vector<T> row_dots(rows);
  kernels::active<T>().sphere_norm_backward(dy, x, scale, inv_norm, dx, row_dots.data(), rows,
                                            width);
  T total = 0;  // dscale = sum over rows of dy.u, in row order
  for (int row = 0; row < rows; ++row) total += row_dots[row];
  *dscale = total;
}

template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int rows, int width) {
  kernels::active<T>().layer_norm_forward(x, weight, bias, y, mean, rstd, rows, width);
}

template <typename T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd,
                         T* dx, T* dweight, T* dbias, int rows, int width) {
  const kernels::KernelTable<T>& kernel = kernels::active<T>();
  kernel.layer_norm_backward(dy, x, weight, mean, rstd, dx, rows, width);
  kernel.layer_norm_parameter_gradients(dy, x, mean, rstd, dweight, dbias, rows, width);
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
