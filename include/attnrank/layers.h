// Elementwise and dense layers: explicit forward/backward pairs (llm.c style).
// Every function is templated on the scalar type and instantiated for float
// (training) and double (finite-difference gradient checks). Backward functions
// *write* (never accumulate) their input and parameter gradients; callers add
// residual branches themselves. Shapes are row-major.
#pragma once
#include <cstddef>

namespace attnrank {

// x: (rows, in), weight: (out, in) [PyTorch Linear layout], bias: (out) or null
// -> y: (rows, out)
template <typename T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, int rows, int in, int out);

// dy: (rows, out) -> dx: (rows, in) (skipped if null), dweight: (out, in),
// dbias: (out) (skipped if null)
template <typename T>
void linear_backward(const T* dy, const T* x, const T* weight, T* dx, T* dweight, T* dbias,
                     int rows, int in, int out);

// y = max(x, 0), elementwise over n values; may run in place.
template <typename T>
void relu_forward(const T* x, T* y, size_t n);
// dx = dy * (y > 0); may run in place (dx == dy).
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, size_t n);

// Sphere norm (published): y = scale * x / ||x|| per row, no epsilon.
// x: (rows, width) -> y: (rows, width), inv_norm: (rows) saved for backward.
template <typename T>
void sphere_norm_forward(const T* x, T scale, T* y, T* inv_norm, int rows, int width);
// dy: (rows, width) -> dx: (rows, width), dscale: scalar (written).
template <typename T>
void sphere_norm_backward(const T* dy, const T* x, T scale, const T* inv_norm, T* dx, T* dscale,
                          int rows, int width);

// LayerNorm with eps = 1e-5 (PyTorch default). x: (rows, width), weight/bias: (width)
// -> y: (rows, width), mean/rstd: (rows) saved for backward.
template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int rows, int width);
// dy: (rows, width) -> dx: (rows, width), dweight, dbias: (width) (written).
template <typename T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd,
                         T* dx, T* dweight, T* dbias, int rows, int width);

}  // namespace attnrank
