// The transformer of the published experiments, with free rank: a stack of encoder
// layers (attention, optional MLP, norms, residuals) with optional positional
// encodings. Parameters, gradients and activations each live in one arena.
//
// Tensor names (also the safetensors names of checkpoints; shapes with D = width):
//   pos.additive                 (N, d)   positional = additive
//   pos.concat                   (N, p)   positional = concat
//   layers.{l}.attn.in_proj_weight   (c*H*(2r+r_v), D)  see attention.h
//   layers.{l}.attn.in_proj_bias     (c*H*(2r+r_v))     bias
//   layers.{l}.attn.out_proj_weight  (D, c*H*r_v)
//   layers.{l}.attn.out_proj_bias    (c, D)             bias
//   layers.{l}.norm1.scale (1) | norm1.weight, norm1.bias (D)   sphere | layer
//   layers.{l}.mlp.fc1.weight (ffn, D), fc1.bias (ffn), fc2.weight (D, ffn), fc2.bias (D)
//   layers.{l}.norm2.*           as norm1 (absent when ffn = 0)
//   final_norm.*                 pre-norm only
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attnrank/attention.h"
#include "attnrank/config.h"
#include "attnrank/parameters.h"

namespace attnrank {

// Which keys each position may attend to, and which attention function.
struct SequenceSpec {
  int tokens = 1;
  AttentionMask mask = AttentionMask::kFull;
  int key_limit = 0;
  AttentionKind kind = AttentionKind::kSoftmax;
};

// Multiply-add FLOPs (2 per multiply-add) of one training step: forward plus
// backward (input and weight gradients) of every matrix product; elementwise work
// is not counted.
double training_step_flops(const ModelConfig& config, const SequenceSpec& sequence, int batch);

template <typename T>
class Transformer {
 public:
  Transformer(const ModelConfig& config, const SequenceSpec& sequence);

  const ModelConfig& config() const { return config_; }
  const SequenceSpec& sequence() const { return sequence_; }
  const ParameterLayout& layout() const { return layout_; }
  std::vector<T>& parameters() { return parameters_; }
  const std::vector<T>& parameters() const { return parameters_; }
  std::vector<T>& gradients() { return gradients_; }
  T* parameter(const std::string& name) { return parameters_.data() + layout_.find(name).offset; }
  T* gradient(const std::string& name) { return gradients_.data() + layout_.find(name).offset; }

  // PyTorch's default initialisation for the same modules (see docs).
  void initialize(uint64_t seed);

  // x: (B, N, d) -> y: (B, N, d). Keeps the activations for backward.
  void forward(const T* x, int batch, T* y);
  // dy: (B, N, d) for the batch of the last forward; writes every parameter
  // gradient, and dx: (B, N, d) = dLoss/dx when non-null.
  void backward(const T* dy, T* dx = nullptr);

  int64_t parameter_count() const { return static_cast<int64_t>(layout_.total()); }
  int64_t attention_parameter_count() const {
    return static_cast<int64_t>(layout_.attention_total());
  }
  // Bytes of activation and activation-gradient memory held for the current batch.
  size_t activation_bytes() const { return (activations_.size() + scratch_.size()) * sizeof(T); }

 private:
  static constexpr size_t kAbsent = static_cast<size_t>(-1);
  // Offsets of one norm's parameters: sphere uses `a` (scale), layer `a` (weight)
  // and `b` (bias); none uses neither.
  struct NormOffsets {
    size_t a = kAbsent, b = kAbsent;
  };
  // Offsets of one encoder layer's parameters in the arena.
  struct LayerOffsets {
    size_t in_weight = kAbsent, in_bias = kAbsent, out_weight = kAbsent, out_bias = kAbsent;
    size_t fc1_weight = kAbsent, fc1_bias = kAbsent, fc2_weight = kAbsent, fc2_bias = kAbsent;
    NormOffsets norm1, norm2;
  };
  // Activations of one encoder layer (see model.cpp for the graph).
  struct LayerBuffers {
    T* norm1_out;    // post: norm1(sum1); pre: norm1(input)
    T* norm1_stats;  // (2, B*N): sphere inv-norm or layer mean/rstd
    T* qkv;
    T* probs;
    T* context;
    T* attn_out;
    T* sum1;       // attn_out (+ residual)
    T* norm2_out;  // post: norm2(sum2); pre: norm2(sum1)
    T* norm2_stats;
    T* hidden;  // ReLU(fc1(.)): (B*N, ffn)
    T* mlp_out;
    T* sum2;  // mlp_out (+ residual)
  };

  NormOffsets add_norm(const std::string& prefix);
  void allocate_activations(int batch);
  AttentionShape attention_shape(int batch) const;
  const T* param(size_t offset) const {
    return offset == kAbsent ? nullptr : parameters_.data() + offset;
  }
  T* grad(size_t offset) { return offset == kAbsent ? nullptr : gradients_.data() + offset; }
  void norm_forward(const NormOffsets& norm, const T* x, T* y, T* stats, int rows);
  void norm_backward(const NormOffsets& norm, const T* dy, const T* x, const T* stats, T* dx,
                     int rows);
  const T* layer_input(int layer) const;
  const T* layer_output(int layer) const;

  ModelConfig config_;
  SequenceSpec sequence_;
  ParameterLayout layout_;
  std::vector<LayerOffsets> offsets_;
  NormOffsets final_norm_;
  size_t positional_ = kAbsent;
  std::vector<T> parameters_;
  std::vector<T> gradients_;
  std::vector<T> activations_;
  std::vector<T> scratch_;  // gradients of activations, reused across layers
  std::vector<LayerBuffers> buffers_;
  T* embedded_ = nullptr;   // (B*N, D): input with positional encodings
  T* final_out_ = nullptr;  // (B*N, D): final norm output (pre-norm only)
  T* final_stats_ = nullptr;
  int batch_ = 0;
};

}  // namespace attnrank
