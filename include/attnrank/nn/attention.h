// Multi-module, multi-head attention with free rank (docs/model.md).
//
// A layer holds `modules` (c, the width multiplier) standard multi-head attention
// modules; module m has `heads` (H) heads with query/key width `rank` (r) and
// value width `value_rank` (r_v), its own output projection and bias. The layer's
// output is the mean of the c module outputs, exactly the published width
// multiplier. All heads of all modules share one input-projection GEMM, one batched
// score/softmax/context kernel and one output-projection GEMM.
//
// Parameter layout (row-major; module m = PyTorch nn.MultiheadAttention number m):
//   in_weight  (c*H*(2r+r_v), D): rows of module m start at m*H*(2r+r_v) and hold
//              [W_Q (H*r rows, head h at h*r); W_K (H*r); W_V (H*r_v)], i.e.
//              PyTorch's in_proj_weight with the head width freed.
//   in_bias    (c*H*(2r+r_v)) or null
//   out_weight (D, c*H*r_v): columns m*H*r_v .. (m+1)*H*r_v are module m's
//              out_proj.weight (D, H*r_v).
//   out_bias   (c, D) or null
#pragma once
#include "attnrank/kernels/attention_shape.h"

namespace attnrank {

// x: (B, N, D) -> out: (B, N, D)
// Saved for backward: qkv (B, N, qkv_width), probs (B, c*H*N*N) (zero where
// masked), context (B, N, context_width), each in the kernels' head order
// (attnrank/kernels/head_layout.h); attention_probabilities() gives the probs in the
// model's order. The qkv and context rows are shape.qkv_stride() and
// shape.context_stride() apart: allocate B * N * stride; the padding is never touched.
template <typename T>
void attention_forward(const AttentionShape& shape, const T* x, const T* in_weight,
                       const T* in_bias, const T* out_weight, const T* out_bias, T* qkv, T* probs,
                       T* context, T* out);

// dout: (B, N, D) -> dx: (B, N, D); parameter gradients written (bias grads
// skipped when null). Scratch: d_context (B, N, context_width), d_qkv (B, N, qkv_width),
// rows context_stride() and qkv_stride() apart like the saved qkv and context; what
// they hold afterwards is unspecified (each thread may reuse its first block's rows).
template <typename T>
void attention_backward(const AttentionShape& shape, const T* dout, const T* x, const T* in_weight,
                        const T* out_weight, const T* qkv, const T* probs, const T* context,
                        T* d_context, T* d_qkv, T* dx, T* d_in_weight, T* d_in_bias,
                        T* d_out_weight, T* d_out_bias);

// probs as attention_forward saved them -> (B, c, H, N, N), head after head.
template <typename T>
void attention_probabilities(const AttentionShape& shape, const T* probs, T* out);

}  // namespace attnrank
