// Row-wise and elementwise kernels: exp, norms, ReLU, column sums, AdamW. Plain
// loops that the compiler vectorises at the variant's width; every sum runs in a
// fixed order, so results do not depend on the thread count.
#include <cmath>

#include "attnrank/core/parallel.h"
#include "fast_math.h"
#include "variant_kernels.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

namespace {

bool parallel_for(size_t work) {
  return work >= kParallelWork;
}

// Whether a row-normalisation pass is worth threads: about 8 scalar operations per
// element (sums, squares, scale, shift, and their gradients), so the norms of a
// 1024 x 32 batch (33 us on one core) are split, while a fork/join costs about a
// microsecond. Rows are independent, so the result does not depend on the split.
bool norm_threaded(int rows, int width) {
  constexpr size_t kNormCost = 8;
  return parallel_for(static_cast<size_t>(rows) * width * kNormCost);
}

// The norms take rows in chunks, each step over the whole chunk before the next: the
// rows' reductions are independent chains that the core overlaps, where one row at a
// time waits for each shuffle tree and square root in turn (4x faster on 1024 x 32).
// Each row's values are computed as before, so the results are the same.
constexpr int kNormChunk = 16;

// The builtins, not std::sqrt: no inline function from a std header (see variant.h).
float square_root(float x) {
  return __builtin_sqrtf(x);
}
double square_root(double x) {
  return __builtin_sqrt(x);
}

}  // namespace

template <typename T>
void exp_shifted(const T* in, T shift, T* out, int count) {
  exp_shifted_array(in, shift, out, count);
}

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

template <typename T>
void layer_norm_parameter_gradients(const T* dy, const T* x, const T* mean, const T* rstd,
                                    T* dweight, T* dbias, int rows, int width) {
  // Column sums of dy*xhat and dy, rows in order (deterministic); each iteration owns
  // a block of columns and walks the rows, so the columns run side by side in registers.
  constexpr int kBlock = 4 * kLanes<T>;
  const int blocks = (width + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (parallel_for(static_cast <size_t>(rows) * width))
  for (int block = 0; block < blocks; ++block) {
    const int begin = block * kBlock;
    const int end = min_of(begin + kBlock, width);
    T gw[kBlock] = {}, gb[kBlock] = {};
    for (int row = 0; row < rows; ++row) {
      const T* g = dy + static_cast<size_t>(row) * width;
      const T* in = x + static_cast<size_t>(row) * width;
      const T mu = mean[row], rs = rstd[row];
      for (int i = begin; i < end; ++i) {
        gw[i - begin] += g[i] * ((in[i] - mu) * rs);
        gb[i - begin] += g[i];
      }
    }
    for (int i = begin; i < end; ++i) {
      dweight[i] = gw[i - begin];
      dbias[i] = gb[i - begin];
    }
  }
}

// Each iteration owns a block of columns and walks the rows in order, so the result
// does not depend on the thread count.
template <typename T>
void column_sums(const T* matrix, int rows, int cols, T* out) {
  constexpr int kBlock = 64;
  const int blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (parallel_for(static_cast <size_t>(rows) * cols))
  for (int block = 0; block < blocks; ++block) {
    const int begin = block * kBlock;
    const int end = min_of(begin + kBlock, cols);
    T sums[kBlock] = {};
    for (int row = 0; row < rows; ++row) {
      const T* line = matrix + static_cast<size_t>(row) * cols;
      for (int col = begin; col < end; ++col) sums[col - begin] += line[col];
    }
    for (int col = begin; col < end; ++col) out[col] = sums[col - begin];
  }
}

template <typename T>
void bias_relu(T* h, const T* bias, int rows, int cols) {
  for (int row = 0; row < rows; ++row) {
    T* line = h + static_cast<size_t>(row) * cols;
    for (int i = 0; i < cols; ++i) {
      const T value = bias != nullptr ? line[i] + bias[i] : line[i];
      line[i] = value > T(0) ? value : T(0);  // NaN -> 0, as before
    }
  }
}

template <typename T>
void relu_backward(T* g, const T* h, T* bias_gradient, int rows, int cols) {
  for (int row = 0; row < rows; ++row) {
    T* line = g + static_cast<size_t>(row) * cols;
    const T* hv = h + static_cast<size_t>(row) * cols;
    for (int i = 0; i < cols; ++i) {
      line[i] = hv[i] > T(0) ? line[i] : T(0);
      bias_gradient[i] += line[i];
    }
  }
}

template <typename T>
void adamw_update(size_t count, T* p, const T* g, T* m, T* v, const unsigned char* decay,
                  const AdamWStep<T>& c) {
  // Locals and restrict pointers so that the loop vectorises: no store can change
  // the step's constants or another array. The decayed value is rounded on its own
  // (a select, not a multiply by one that the compiler could fuse into the update),
  // as in the scalar form and in PyTorch's separate p.mul_.
  const T decay_factor = c.decay_factor, beta1 = c.beta1, beta2 = c.beta2,
          inv_bias2_sqrt = c.inv_bias2_sqrt, eps = c.eps, step_size = c.step_size;
  T* __restrict parameters = p;
  T* __restrict first = m;
  T* __restrict second = v;
  const T* __restrict gradients = g;
  const unsigned char* __restrict decays = decay;
#pragma omp parallel for simd schedule(static) if (parallel : parallel_for(count * 8))
  for (size_t i = 0; i < count; ++i) {
    const T gradient = gradients[i];
    const T decayed = parameters[i] * decay_factor;
    const T parameter = decays[i] ? decayed : parameters[i];
    const T first_moment = beta1 * first[i] + (T(1) - beta1) * gradient;
    const T second_moment = beta2 * second[i] + (T(1) - beta2) * gradient * gradient;
    first[i] = first_moment;
    second[i] = second_moment;
    const T denom = square_root(second_moment) * inv_bias2_sqrt + eps;
    parameters[i] = parameter - step_size * first_moment / denom;
  }
}

#define ATTNRANK_INSTANTIATE_ELEMENTWISE(T)                                                       \
  template void exp_shifted<T>(const T*, T, T*, int);                                             \
  template void sphere_norm_forward<T>(const T*, T, T*, T*, int, int);                            \
  template void sphere_norm_backward<T>(const T*, const T*, T, const T*, T*, T*, int, int);       \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int, int);        \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, int, \
                                       int);                                                      \
  template void layer_norm_parameter_gradients<T>(const T*, const T*, const T*, const T*, T*, T*, \
                                                  int, int);                                      \
  template void column_sums<T>(const T*, int, int, T*);                                           \
  template void bias_relu<T>(T*, const T*, int, int);                                             \
  template void relu_backward<T>(T*, const T*, T*, int, int);                                     \
  template void adamw_update<T>(size_t, T*, const T*, T*, T*, const unsigned char*,               \
                                const AdamWStep<T>&);
ATTNRANK_INSTANTIATE_ELEMENTWISE(float)
ATTNRANK_INSTANTIATE_ELEMENTWISE(double)

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
