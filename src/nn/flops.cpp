#include <cstdint>

#include "attnrank/nn/layers.h"
#include "attnrank/nn/model.h"

namespace attnrank {

double training_step_flops(const ModelConfig& config, const SequenceSpec& sequence, int batch) {
  const double rows = static_cast<double>(batch) * sequence.tokens;
  const double width = config.width();
  const double heads = static_cast<double>(config.width_multiplier) * config.heads;
  const double qkv_width = heads * (2.0 * config.rank + config.value_rank);
  const double context_width = heads * config.value_rank;
  // Visible (query, key) pairs per sample.
  double pairs = 0;
  for (int i = 0; i < sequence.tokens; ++i) {
    switch (sequence.mask) {
      case AttentionMask::kFull:
        pairs += sequence.tokens;
        break;
      case AttentionMask::kPrefix:
        pairs += sequence.key_limit;
        break;
      case AttentionMask::kCausal:
        pairs += i + 1;
        break;
    }
  }
  double forward = 0;
  forward += 2 * rows * width * qkv_width;                                   // in-projection
  forward += 2 * batch * heads * pairs * (config.rank + config.value_rank);  // scores, context
  forward += 2 * rows * context_width * width;                               // out-projection
  forward += 2 * 2 * rows * width * config.ffn;                              // MLP
  // Backward: one product for the input gradient and one for the weight gradient
  // of each forward product (the attention core likewise has two per product).
  double total = 3 * forward * config.layers;
  // A post-norm first layer reading the data itself computes no input gradient for
  // its in-projection (Transformer::backward; autograd skips it likewise).
  if (!config.norm_first && sequence.input == InputKind::kVectors &&
      config.positional == Positional::kNone)
    total -= 2 * rows * width * qkv_width;
  // Input and output stages: a linear read-in has no input gradient to compute
  // (forward + weight gradient); the read-out has all three. A token lookup is free.
  if (sequence.input == InputKind::kLinear)
    total += 2 * 2 * rows * sequence.input_width * config.dim;
  if (sequence.output == OutputKind::kLinear)
    total += 3 * 2 * rows * config.dim * sequence.output_width;
  return total;
}

double training_memory_bytes(const ModelConfig& config, const SequenceSpec& sequence, int batch,
                             int threads) {
  const double tokens = sequence.tokens;
  const double rows = static_cast<double>(batch) * tokens;
  const double dim = config.dim;
  const double width = static_cast<double>(config.dim) +
                       (config.positional == Positional::kConcat ? config.positional_dim : 0);
  const double heads = static_cast<double>(config.width_multiplier) * config.heads;
  const double qkv_width = heads * (2.0 * config.rank + config.value_rank);
  const double context_width = heads * config.value_rank;
  // The activation rows' distances (AttentionShape::qkv_stride, context_stride).
  const double qkv_stride = AttentionShape::padded_row(static_cast<int>(qkv_width));
  const double context_stride = AttentionShape::padded_row(static_cast<int>(context_width));
  const double ffn = config.ffn;
  const double input_width = sequence.input == InputKind::kVectors ? dim : sequence.input_width;
  const double output_width = sequence.output == OutputKind::kLinear ? sequence.output_width : dim;
  // Parameters (biases and norms included, whether or not the config has them).
  double parameters = 0;
  if (sequence.input != InputKind::kVectors) parameters += (input_width + 1) * dim;
  if (config.positional == Positional::kAdditive) parameters += tokens * dim;
  if (config.positional == Positional::kConcat) parameters += tokens * config.positional_dim;
  // Attention: W_in and b_in (qkv_width each row), W_out and one b_out per module;
  // two norms of a scale and a bias each; the MLP's two layers.
  const double per_layer = qkv_width * (width + 1) + width * context_width +
                           config.width_multiplier * width + 4 * width +
                           (ffn > 0 ? 2 * ffn * width + ffn + width : 0.0);
  parameters += config.layers * per_layer + 2 * width;
  if (sequence.output == OutputKind::kLinear) parameters += (dim + 1) * output_width;
  // Activations and scratch (Transformer::allocate_activations).
  const double per_layer_activations = 6 * rows * width + 4 * rows + rows * qkv_stride +
                                       rows * heads * tokens + rows * context_stride + rows * ffn;
  const double activations = 2 * rows * width + 2 * rows + config.layers * per_layer_activations +
                             rows * input_width + rows * dim;
  const double scratch = rows * (3 * width + context_stride + qkv_stride + ffn) + 2 * width * ffn;
  const double batch_buffers = rows * (input_width + 3 * output_width);
  // A shard past the first: its own parameter gradients and MLP scratch (its rows'
  // share of the rest of the scratch is counted above).
  const int shards = training_shards(config, sequence, batch, threads);
  const int shard_rows =
      static_cast<int>((static_cast<int64_t>(batch) + shards - 1) / shards) * sequence.tokens;
  const double shard_copies =
      (shards - 1) * (parameters + static_cast<double>(mlp_scratch_size(
                                       shard_rows, static_cast<int>(width), config.ffn)));
  return sizeof(float) * (4 * parameters + activations + scratch + batch_buffers + shard_copies);
}

}  // namespace attnrank
