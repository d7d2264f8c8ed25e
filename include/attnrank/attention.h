// Multi-module, multi-head attention with free rank (science.md §1).
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

namespace attnrank {

enum class AttentionMask {
  kFull,    // every query sees every key
  kPrefix,  // every query sees keys [0, key_limit) only (the N points of `nearest`)
  kCausal,  // query i sees keys j <= i
};

enum class AttentionKind {
  kSoftmax,  // trainable
  kHardmax,  // argmax one-hot (first maximum on ties); forward only, for the theory tools
};

struct AttentionShape {
  int batch = 1;       // B
  int tokens = 1;      // N (query and key positions)
  int width = 1;       // D: input and output width
  int heads = 1;       // H per module
  int rank = 1;        // r
  int value_rank = 1;  // r_v
  int modules = 1;     // c
  AttentionMask mask = AttentionMask::kFull;
  int key_limit = 0;  // kPrefix only
  AttentionKind kind = AttentionKind::kSoftmax;

  int head_block() const { return 2 * rank + value_rank; }
  int qkv_width() const { return modules * heads * head_block(); }
  int context_width() const { return modules * heads * value_rank; }
  // Number of keys visible to query i.
  int visible_keys(int query) const;
};

// x: (B, N, D) -> out: (B, N, D)
// Saved for backward: qkv (B, N, qkv_width), probs (B, c, H, N, N) (zero where
// masked), context (B, N, context_width).
template <typename T>
void attention_forward(const AttentionShape& shape, const T* x, const T* in_weight,
                       const T* in_bias, const T* out_weight, const T* out_bias, T* qkv, T* probs,
                       T* context, T* out);

// dout: (B, N, D) -> dx: (B, N, D); parameter gradients written (bias grads
// skipped when null). Scratch: d_context (B, N, context_width), d_qkv (B, N, qkv_width).
template <typename T>
void attention_backward(const AttentionShape& shape, const T* dout, const T* x, const T* in_weight,
                        const T* out_weight, const T* qkv, const T* probs, const T* context,
                        T* d_context, T* d_qkv, T* dx, T* d_in_weight, T* d_in_bias,
                        T* d_out_weight, T* d_out_bias);

}  // namespace attnrank
