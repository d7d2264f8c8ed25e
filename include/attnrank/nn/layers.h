// Elementwise and dense layers: explicit forward/backward pairs (llm.c style).
// Every function is templated on the scalar type and instantiated for float
// (training) and double (finite-difference gradient checks). Backward functions
// *write* (never accumulate) their input and parameter gradients; callers add
// residual branches themselves. Shapes are row-major.
#pragma once
#include <cstddef>
#include <cstdint>

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

// Two-layer ReLU MLP, y = fc2(ReLU(fc1(x))). Rows are split into one contiguous
// range per thread and processed in blocks, each thread calling single-threaded
// BLAS, so a block's hidden activations are reused while in cache and the skinny
// GEMMs (one side is the model width) avoid cross-thread synchronisation.
// x: (rows, width), w1: (ffn, width), b1: (ffn) or null, w2: (width, ffn),
// b2: (width) or null -> y: (rows, width); hidden: (rows, ffn) post-ReLU, saved.
template <typename T>
void mlp_forward(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, T* hidden, T* y,
                 int rows, int width, int ffn);
// Scratch elements mlp_backward needs with the current thread count.
size_t mlp_scratch_size(int rows, int width, int ffn);
// dy: (rows, width) -> dx: (rows, width); dw1, db1, dw2, db2 written (bias grads
// skipped when null). Per-thread weight-gradient partials are summed in thread
// order, so results depend on the thread count only through rounding.
template <typename T>
void mlp_backward(const T* dy, const T* x, const T* hidden, const T* w1, const T* w2, T* scratch,
                  size_t scratch_size, T* dx, T* dw1, T* db1, T* dw2, T* db2, int rows, int width,
                  int ffn);

// Token embedding. tokens: (rows) ids in [0, vocabulary), table: (vocabulary, width)
// -> y: (rows, width) at row stride y_stride (>= width). Throws std::out_of_range for
// an id outside the vocabulary.
template <typename T>
void embedding_forward(const int32_t* tokens, const T* table, T* y, int rows, int vocabulary,
                       int width, int y_stride);
// dy: (rows, width) at row stride dy_stride -> dtable: (vocabulary, width), *added
// to* (the one exception to "backward writes": a tied output layer wrote it first).
// Rows are added in order, so the result does not depend on the thread count.
template <typename T>
void embedding_backward(const int32_t* tokens, const T* dy, T* dtable, int rows, int width,
                        int dy_stride);

// Softmax cross-entropy over `classes` logits per row, read at rows whose label is
// >= 0 (label -1: not scored, PyTorch's ignore_index).
struct CrossEntropy {
  double total = 0.0;  // summed negative log-likelihood in nats over scored rows
  int64_t scored = 0;  // rows with a label
  double mean() const { return scored > 0 ? total / static_cast<double>(scored) : 0.0; }
};
// logits: (rows, classes), labels: (rows) -> sums; d_logits (rows, classes), when
// non-null, receives the gradient of the mean, (softmax - onehot) / scored, and 0 at
// unscored rows. Throws std::out_of_range for a label >= classes.
template <typename T>
CrossEntropy cross_entropy(const T* logits, const int32_t* labels, int rows, int classes,
                           T* d_logits);

}  // namespace attnrank
