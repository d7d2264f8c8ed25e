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
// Input and output stages (set by the task through SequenceSpec):
//   embed.weight                 (V, d)   token input (V = input_width, the vocabulary)
//   read_in.weight (d, m), read_in.bias (d)          linear input of m features per token
//   read_out.weight (K, d), read_out.bias (K)        linear output of K values per token;
//                                with model.tie_embeddings and token input the weight is
//                                embed.weight's first K rows and only the bias is stored
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attnrank/config/run_config.h"
#include "attnrank/core/parameters.h"
#include "attnrank/nn/attention.h"

namespace attnrank {

// What the model reads at each position.
enum class InputKind {
  kVectors,  // x: (B, N, d), used as the tokens (the point tasks)
  kTokens,   // ids: (B, N) in [0, input_width) -> rows of embed.weight
  kLinear,   // x: (B, N, input_width) -> read_in(x), d wide
};
// What the model writes at each position.
enum class OutputKind {
  kVectors,  // y: (B, N, d), the first d dims of the last layer (the point tasks)
  kLinear,   // y: (B, N, output_width) = read_out(first d dims): logits or regression values
};

// The task's side of the model: sequence length, which keys each position may attend
// to, the attention function, and the input and output stages.
struct SequenceSpec {
  int tokens = 1;
  AttentionMask mask = AttentionMask::kFull;
  int key_limit = 0;
  AttentionKind kind = AttentionKind::kSoftmax;
  InputKind input = InputKind::kVectors;
  int input_width = 0;  // kTokens: vocabulary; kLinear: features per token
  OutputKind output = OutputKind::kVectors;
  int output_width = 0;  // kLinear: values per token (the number of classes for logits)
};

// Multiply-add FLOPs (2 per multiply-add) of one training step: forward plus
// backward (input and weight gradients) of every matrix product; elementwise work
// is not counted.
double training_step_flops(const ModelConfig& config, const SequenceSpec& sequence, int batch);

// Sample shards a training step of this model runs on `threads` threads: one per
// thread (at most one per sample) for a step under 2 GFLOP, where a parallel region
// per kernel costs a visible share of each kernel; else one, each kernel split
// across the threads.
int training_shards(const ModelConfig& config, const SequenceSpec& sequence, int batch,
                    int threads);

// Bytes a float32 training step of this model holds on `threads` threads, estimated
// from the config without allocating (in double: absurd configs give a large number,
// not an overflow): parameters, gradients and two AdamW moments, the activations and
// scratch of one batch, the batch's inputs and outputs, and each further sample
// shard's gradient copy and MLP scratch.
double training_memory_bytes(const ModelConfig& config, const SequenceSpec& sequence, int batch,
                             int threads = 1);

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

  // Vector or linear input. x: (B, N, input width) -> y: (B, N, output width), the
  // widths of input_width()/output_width(). Keeps the activations for backward.
  void forward(const T* x, int batch, T* y);
  // Token input. tokens: (B, N) ids in [0, vocabulary) -> y: (B, N, output width).
  void forward_tokens(const int32_t* tokens, int batch, T* y);
  // dy: (B, N, output width) for the batch of the last forward; writes every
  // parameter gradient, and dx: (B, N, input width) = dLoss/dx when non-null
  // (vector and linear input only).
  void backward(const T* dy, T* dx = nullptr);

  // Values per position read by forward() (d, or the linear input's features) and
  // written to y (d, or the linear output's width).
  int input_width() const;
  int output_width() const;
  // Whether the output layer shares the token embedding.
  bool tied() const { return tied_; }
  // Attention weights of `layer` in the last forward -> out: (B, c*H, N, N), zero
  // where masked.
  void attention_probabilities(int layer, T* out) const;

  int64_t parameter_count() const { return static_cast<int64_t>(layout_.total()); }
  int64_t attention_parameter_count() const {
    return static_cast<int64_t>(layout_.attention_total());
  }
  // Bytes of activation and activation-gradient memory held for the current batch.
  // With several shards, also each further shard's gradient copy.
  size_t activation_bytes() const;
  // Sample shards of the current batch (see Shard): one per thread for small steps,
  // else 1.
  int shard_count() const { return static_cast<int>(shards_.size()); }

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

  // A contiguous range of the batch's samples that one thread runs through the
  // whole layer stack, forward and backward, with no synchronisation between layers:
  // with many small kernels per step (short sequences, narrow layers) the fork/join
  // of a parallel region per kernel costs more than the kernels. Its activations are
  // slices of the full batch's arrays (so attention_probabilities() reads one array);
  // the scratch and, for all shards but the first, the parameter gradients are its
  // own, summed into gradients_ in shard order after backward (bit-identical for a
  // given thread count).
  struct Shard {
    int first = 0;             // first sample
    int batch = 0;             // samples
    T* embedded = nullptr;     // (b*N, D): input with positional encodings
    T* final_out = nullptr;    // (b*N, D): final norm output (pre-norm only)
    T* final_stats = nullptr;  // (2, b*N)
    T* input_copy = nullptr;   // (b*N, m): linear input, kept for the weight gradient
    T* head_input = nullptr;   // (b*N, d): first d dims of the last layer (linear output)
    std::vector<LayerBuffers> layers;
    std::vector<T> scratch;        // gradients of activations, reused across layers
    std::vector<T> own_gradients;  // all shards but the first
    T* gradients = nullptr;        // gradients_ or own_gradients
  };

  NormOffsets add_norm(const std::string& prefix);
  void copy_first_layer();  // model.identical_layers
  void allocate_activations(int batch);
  AttentionShape attention_shape(int batch) const;
  const T* param(size_t offset) const {
    return offset == kAbsent ? nullptr : parameters_.data() + offset;
  }
  static T* grad(T* gradients, size_t offset) {
    return offset == kAbsent ? nullptr : gradients + offset;
  }
  void norm_forward(const NormOffsets& norm, const T* x, T* y, T* stats, int rows);
  void norm_backward(const NormOffsets& norm, const T* dy, const T* x, const T* stats, T* dx,
                     T* gradients, int rows);
  const T* layer_input(const Shard& shard, int layer) const;
  const T* layer_output(const Shard& shard, int layer) const;
  // Runs work(shard) for every shard, each on a thread of its own whose kernels run
  // single-threaded; exceptions are rethrown on the calling thread.
  template <typename Work>
  void for_each_shard(Work&& work);
  void forward_shard(Shard& shard, const T* x, T* y);
  void add_positional(Shard& shard);
  void forward_layers(Shard& shard, T* y);
  void backward_shard(Shard& shard, const T* dy, T* dx);

  // Embedding table shared by the input and (tied) output stages.
  const T* output_weight() const;
  T* output_weight_gradient(T* gradients);

  ModelConfig config_;
  SequenceSpec sequence_;
  ParameterLayout layout_;
  std::vector<LayerOffsets> offsets_;
  NormOffsets final_norm_;
  size_t positional_ = kAbsent;
  size_t embed_ = kAbsent;  // embed.weight or read_in.weight
  size_t read_in_bias_ = kAbsent;
  size_t read_out_weight_ = kAbsent, read_out_bias_ = kAbsent;
  bool tied_ = false;
  std::vector<T> parameters_;
  std::vector<T> gradients_;
  std::vector<T> activations_;
  std::vector<LayerBuffers> buffers_;  // the full batch's
  std::vector<Shard> shards_;
  std::vector<int32_t> tokens_;  // (B*N): token input of the last forward
  int batch_ = 0;
  int threads_ = 0;  // OpenMP threads when the shards were laid out
};

}  // namespace attnrank
