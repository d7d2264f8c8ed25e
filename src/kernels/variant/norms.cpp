// The row norms: x / ||x|| scaled (sphere) and layer norm, forward and backward.
// Built at -O2 in every build type (CMakeLists.txt): at -O3 the same code ran 3x
// slower (1024 x 32 layer norm forward, one core: 33-35 us against 12-13 us).
#include "attnrank/core/parallel.h"
#include "fast_math.h"
#include "variant_kernels.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

namespace {

// Whether a row-normalisation pass is worth threads: about 8 scalar operations per
// element (sums, squares, scale, shift, and their gradients), so the norms of a
// 1024 x 32 batch (33 us on one core) are split, while a fork/join costs about a
// microsecond. Rows are independent, so the result does not depend on the split.
bool norm_threaded(int rows, int width) {
  constexpr size_t kNormCost = 8;
  return static_cast<size_t>(rows) * width * kNormCost >= kParallelWork;
}

// The norms take rows in chunks, each step over the whole chunk before the next: the
// rows' reductions are independent chains that the core overlaps, where one row at a
// time waits for each shuffle tree and square root in turn (4x faster on 1024 x 32).
// Each row's values are computed as before, so the results are the same.
constexpr int kNormChunk = 16;

}  // namespace

template <typename T>
void sphere_norm_forward(const T* x, T scale, T* y, T* inv_norm, int rows, int width) {
#pragma omp parallel for schedule(static) if (norm_threaded(rows, width))
  for (int first = 0; first < rows; first += kNormChunk) {
    const int last = min_of(rows, first + kNormChunk);
    for (int row = first; row < last; ++row) {
      const T* in = x + static_cast<size_t>(row) * width;
      const T squares = sum_terms<T>(
          width,
          [in](int i) {
            const Vector<T> v = load_vector(in + i);
            return v * v;
          },
          [in](int i) { return in[i] * in[i]; });
      inv_norm[row] = T(1) / square_root(squares);
    }
    for (int row = first; row < last; ++row) {
      const T* in = x + static_cast<size_t>(row) * width;
      T* out = y + static_cast<size_t>(row) * width;
      const T factor = scale * inv_norm[row];
      write_terms(
          out, width, [in, factor](int i) { return load_vector(in + i) * factor; },
          [in, factor](int i) { return in[i] * factor; });
    }
  }
}

template <typename T>
void sphere_norm_backward(const T* dy, const T* x, T scale, const T* inv_norm, T* dx, T* row_dots,
                          int rows, int width) {
#pragma omp parallel for schedule(static) if (norm_threaded(rows, width))
  for (int first = 0; first < rows; first += kNormChunk) {
    const int last = min_of(rows, first + kNormChunk);
    for (int row = first; row < last; ++row) {
      const T* g = dy + static_cast<size_t>(row) * width;
      const T* in = x + static_cast<size_t>(row) * width;
      const T dot = sum_terms<T>(
          width, [g, in](int i) { return load_vector(g + i) * load_vector(in + i); },
          [g, in](int i) { return g[i] * in[i]; });
      row_dots[row] = dot * inv_norm[row];  // u.dy
    }
    for (int row = first; row < last; ++row) {
      const T* g = dy + static_cast<size_t>(row) * width;
      const T* in = x + static_cast<size_t>(row) * width;
      T* out = dx + static_cast<size_t>(row) * width;
      const T inv = inv_norm[row];
      const T factor = scale * inv;
      const T u_factor = row_dots[row] * inv;
      write_terms(
          out, width,
          [g, in, factor, u_factor](int i) {
            return factor * (load_vector(g + i) - load_vector(in + i) * u_factor);
          },
          [g, in, factor, u_factor](int i) { return factor * (g[i] - in[i] * u_factor); });
    }
  }
}

template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int rows, int width) {
  constexpr T kEps = T(1e-5);
#pragma omp parallel for schedule(static) if (norm_threaded(rows, width))
  for (int first = 0; first < rows; first += kNormChunk) {
    const int last = min_of(rows, first + kNormChunk);
    for (int row = first; row < last; ++row) {
      const T* in = x + static_cast<size_t>(row) * width;
      mean[row] =
          sum_terms<T>(
              width, [in](int i) { return load_vector(in + i); }, [in](int i) { return in[i]; }) /
          width;
    }
    for (int row = first; row < last; ++row) {
      const T* in = x + static_cast<size_t>(row) * width;
      const T mu = mean[row];
      const T var = sum_terms<T>(
                        width,
                        [in, mu](int i) {
                          const Vector<T> centred = load_vector(in + i) - mu;
                          return centred * centred;
                        },
                        [in, mu](int i) { return (in[i] - mu) * (in[i] - mu); }) /
                    width;
      rstd[row] = T(1) / square_root(var + kEps);
    }
    for (int row = first; row < last; ++row) {
      const T* in = x + static_cast<size_t>(row) * width;
      T* out = y + static_cast<size_t>(row) * width;
      const T mu = mean[row], rs = rstd[row];
      write_terms(
          out, width,
          [in, mu, rs, weight, bias](int i) {
            return (load_vector(in + i) - mu) * rs * load_vector(weight + i) +
                   load_vector(bias + i);
          },
          [in, mu, rs, weight, bias](int i) { return (in[i] - mu) * rs * weight[i] + bias[i]; });
    }
  }
}

template <typename T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd,
                         T* dx, int rows, int width) {
#pragma omp parallel for schedule(static) if (norm_threaded(rows, width))
  for (int first = 0; first < rows; first += kNormChunk) {
    const int last = min_of(rows, first + kNormChunk);
    // Means of dy*weight and of dy*weight*xhat, per row of the chunk.
    T mean_g[kNormChunk], mean_g_xhat[kNormChunk];
    for (int row = first; row < last; ++row) {
      const T* g = dy + static_cast<size_t>(row) * width;
      const T* in = x + static_cast<size_t>(row) * width;
      const T mu = mean[row];
      const T rs = rstd[row];
      mean_g[row - first] =
          sum_terms<T>(
              width, [g, weight](int i) { return load_vector(g + i) * load_vector(weight + i); },
              [g, weight](int i) { return g[i] * weight[i]; }) /
          width;
      mean_g_xhat[row - first] =
          sum_terms<T>(
              width,
              [g, weight, in, mu, rs](int i) {
                return load_vector(g + i) * load_vector(weight + i) *
                       ((load_vector(in + i) - mu) * rs);
              },
              [g, weight, in, mu, rs](int i) { return g[i] * weight[i] * ((in[i] - mu) * rs); }) /
          width;
    }
    for (int row = first; row < last; ++row) {
      const T* g = dy + static_cast<size_t>(row) * width;
      const T* in = x + static_cast<size_t>(row) * width;
      T* out = dx + static_cast<size_t>(row) * width;
      const T mu = mean[row], rs = rstd[row];
      const T mg = mean_g[row - first], mgx = mean_g_xhat[row - first];
      write_terms(
          out, width,
          [g, in, weight, mu, rs, mg, mgx](int i) {
            const Vector<T> xhat = (load_vector(in + i) - mu) * rs;
            return rs * (load_vector(g + i) * load_vector(weight + i) - mg - xhat * mgx);
          },
          [g, in, weight, mu, rs, mg, mgx](int i) {
            const T xhat = (in[i] - mu) * rs;
            return rs * (g[i] * weight[i] - mg - xhat * mgx);
          });
    }
  }
}

#define ATTNRANK_INSTANTIATE_NORMS(T)                                                             \
  template void sphere_norm_forward<T>(const T*, T, T*, T*, int, int);                            \
  template void sphere_norm_backward<T>(const T*, const T*, T, const T*, T*, T*, int, int);       \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int, int);        \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, int, \
                                       int);
ATTNRANK_INSTANTIATE_NORMS(float)
ATTNRANK_INSTANTIATE_NORMS(double)

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
