// The variant's kernels, declared for table.cpp (see kernels/kernels.h for what each
// one computes).
#pragma once
#include <cstddef>

#include "attnrank/kernels/attention_shape.h"
#include "attnrank/kernels/kernels.h"
#include "variant.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

template <typename T>
size_t head_scratch_size(const AttentionShape& shape);
template <typename T>
bool heads_in_lanes(const AttentionShape& shape);
template <typename T>
void heads_forward(const AttentionShape& shape, T scale, const T* qkv, T* probs, T* context,
                   T* scratch, const NextSample<T>& next);
template <typename T>
void heads_backward(const AttentionShape& shape, T scale, const T* qkv, const T* probs,
                    const T* d_context, T* d_qkv, T* scratch, const NextSample<T>& next);

template <typename T>
void exp_shifted(const T* in, T shift, T* out, int count);
template <typename T>
void sphere_norm_forward(const T* x, T scale, T* y, T* inv_norm, int rows, int width);
template <typename T>
void sphere_norm_backward(const T* dy, const T* x, T scale, const T* inv_norm, T* dx, T* row_dots,
                          int rows, int width);
template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int rows, int width);
template <typename T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd,
                         T* dx, int rows, int width);
template <typename T>
void layer_norm_parameter_gradients(const T* dy, const T* x, const T* mean, const T* rstd,
                                    T* dweight, T* dbias, int rows, int width);
template <typename T>
void add_column_sums(const T* matrix, int rows, int cols, int ld, T* out);
template <typename T>
size_t packed_size(int k, int n);
template <typename T>
void pack_panels(bool transposed, int k, int n, const T* b, int ldb, T* packed);
template <typename T>
void packed_gemm(int m, int n, int k, T alpha, const T* a, int lda, const T* packed, const T* bias,
                 T* c, int ldc);
template <typename T>
void packed_gemm_at(int m, int n, int k, T alpha, const T* a, int lda, const T* packed, T* c,
                    int ldc, bool accumulate);
template <typename T>
void bias_relu(T* h, const T* bias, int rows, int cols);
template <typename T>
void relu_backward(T* g, const T* h, T* bias_gradient, int rows, int cols);
template <typename T>
void adamw_update(size_t count, T* parameters, const T* gradients, T* first_moment,
                  T* second_moment, const unsigned char* decay, const AdamWStep<T>& step);

// This variant's table (table.cpp).
template <typename T>
const KernelTable<T>& table();

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
