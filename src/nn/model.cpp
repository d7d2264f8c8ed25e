#include "attnrank/nn/model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>

#include "attnrank/core/parallel.h"
#include "attnrank/core/rng.h"
#include "attnrank/nn/layers.h"

namespace attnrank {

namespace {

template <typename T>
void add_into(T* dst, const T* src, size_t n) {
#pragma omp parallel for schedule(static) if (worth_parallel(n))
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

template <typename T>
void sum_into(T* dst, const T* a, const T* b, size_t n) {
#pragma omp parallel for schedule(static) if (worth_parallel(n))
  for (size_t i = 0; i < n; ++i) dst[i] = a[i] + b[i];
}

template <typename T>
void copy_values(T* dst, const T* src, size_t n) {
  std::copy(src, src + n, dst);
}

// The one of three buffers that is neither a nor b.
template <typename T>
T* other_buffer(T* const (&buffers)[3], const void* a, const void* b) {
  for (T* buffer : buffers)
    if (buffer != a && buffer != b) return buffer;
  return buffers[0];
}

}  // namespace

template <typename T>
Transformer<T>::Transformer(const ModelConfig& config, const SequenceSpec& sequence)
    : config_(config), sequence_(sequence) {
  if (config.rank < 1 || config.value_rank < 1)
    throw std::invalid_argument("Transformer: rank and value_rank must be resolved (>= 1)");
  const int64_t width = config.width();
  const int64_t tokens = sequence.tokens;
  const int64_t dim = config.dim;
  if (sequence.input != InputKind::kVectors && sequence.input_width < 1)
    throw std::invalid_argument("Transformer: token or linear input needs input_width >= 1");
  if (sequence.output == OutputKind::kLinear && sequence.output_width < 1)
    throw std::invalid_argument("Transformer: linear output needs output_width >= 1");
  // Initialisation: PyTorch's defaults for the same modules. nn.MultiheadAttention:
  // Xavier-uniform in_proj per module block (H*(2r+r_v), D), zero in_proj and
  // out_proj biases, out_proj weight U(+-1/sqrt(fan_in)); nn.Linear for the MLP,
  // read-in and read-out (weight and bias U(+-1/sqrt(fan_in))); norms at identity.
  // Token embeddings N(0, embed_std^2) (nn.Embedding at 1: tied, the initial logits
  // then have a standard deviation of about embed_std * sqrt(d), 16 at d = 256,
  // which model.embed_std = 0.02, as in GPT-2 and BERT, avoids). Learned positional
  // encodings N(0, 1/width) so each has about unit norm, like the tokens.
  using Init = TensorInit;
  if (sequence.input == InputKind::kTokens) {
    embed_ = layout_.add("embed.weight", {sequence.input_width, dim}, false, true,
                         Init::normal(config.embed_std));
  } else if (sequence.input == InputKind::kLinear) {
    const Init read_in = Init::uniform(1.0 / std::sqrt(double(sequence.input_width)));
    embed_ = layout_.add("read_in.weight", {dim, sequence.input_width}, false, true, read_in);
    if (config.bias) read_in_bias_ = layout_.add("read_in.bias", {dim}, false, false, read_in);
  }
  // Positional tables: N(0, 1/columns), rows of about unit norm like the tokens; or
  // the authors' init_.uniform_(table, -1, 1) (model.positional_init, docs/fidelity.md).
  auto positional_init = [&](int64_t columns) {
    return config.positional_init == PositionalInit::kUniform
               ? Init::uniform(1.0)
               : Init::normal(1.0 / std::sqrt(double(columns)));
  };
  if (config.positional == Positional::kAdditive) {
    positional_ = layout_.add("pos.additive", {tokens, config.dim}, false, false,
                              positional_init(config.dim));
  } else if (config.positional == Positional::kConcat) {
    positional_ = layout_.add("pos.concat", {tokens, config.positional_dim}, false, false,
                              positional_init(config.positional_dim));
  }
  const int64_t modules = config.width_multiplier;
  const int64_t qkv_width = modules * config.heads * (2 * config.rank + config.value_rank);
  const int64_t context_width = modules * config.heads * config.value_rank;
  const double module_qkv_width = double(config.heads) * (2 * config.rank + config.value_rank);
  const Init in_proj = Init::uniform(std::sqrt(6.0 / (module_qkv_width + double(width))));
  const Init out_proj = Init::uniform(1.0 / std::sqrt(double(config.heads) * config.value_rank));
  const Init fc1 = Init::uniform(1.0 / std::sqrt(double(width)));
  const Init fc2 = Init::uniform(1.0 / std::sqrt(double(config.ffn)));
  for (int layer = 0; layer < config.layers; ++layer) {
    const std::string prefix = "layers." + std::to_string(layer) + ".";
    LayerOffsets offsets;
    offsets.in_weight =
        layout_.add(prefix + "attn.in_proj_weight", {qkv_width, width}, true, true, in_proj);
    if (config.bias)
      offsets.in_bias = layout_.add(prefix + "attn.in_proj_bias", {qkv_width}, true, false);
    offsets.out_weight =
        layout_.add(prefix + "attn.out_proj_weight", {width, context_width}, true, true, out_proj);
    if (config.bias)
      offsets.out_bias = layout_.add(prefix + "attn.out_proj_bias", {modules, width}, true, false);
    offsets.norm1 = add_norm(prefix + "norm1");
    if (config.ffn > 0) {
      offsets.fc1_weight =
          layout_.add(prefix + "mlp.fc1.weight", {config.ffn, width}, false, true, fc1);
      if (config.bias)
        offsets.fc1_bias = layout_.add(prefix + "mlp.fc1.bias", {config.ffn}, false, false, fc1);
      offsets.fc2_weight =
          layout_.add(prefix + "mlp.fc2.weight", {width, config.ffn}, false, true, fc2);
      if (config.bias)
        offsets.fc2_bias = layout_.add(prefix + "mlp.fc2.bias", {width}, false, false, fc2);
      offsets.norm2 = add_norm(prefix + "norm2");
    }
    offsets_.push_back(offsets);
  }
  if (config.norm_first) final_norm_ = add_norm("final_norm");
  if (sequence.output == OutputKind::kLinear) {
    tied_ = config.tie_embeddings && sequence.input == InputKind::kTokens &&
            sequence.output_width <= sequence.input_width;
    const Init read_out = Init::uniform(1.0 / std::sqrt(double(dim)));
    if (!tied_)
      read_out_weight_ =
          layout_.add("read_out.weight", {sequence.output_width, dim}, false, true, read_out);
    if (config.bias)
      read_out_bias_ =
          layout_.add("read_out.bias", {sequence.output_width}, false, false, read_out);
  }
  parameters_.assign(layout_.total(), T(0));
  gradients_.assign(layout_.total(), T(0));
}

template <typename T>
typename Transformer<T>::NormOffsets Transformer<T>::add_norm(const std::string& prefix) {
  NormOffsets norm;
  if (config_.norm == Norm::kSphere) {
    norm.a = layout_.add(prefix + ".scale", {1}, false, false, TensorInit::ones());
  } else if (config_.norm == Norm::kLayer) {
    norm.a = layout_.add(prefix + ".weight", {config_.width()}, false, false, TensorInit::ones());
    norm.b = layout_.add(prefix + ".bias", {config_.width()}, false, false);
  }
  return norm;
}

template <typename T>
void Transformer<T>::initialize(uint64_t seed) {
  // Each tensor as its layout entry says (see the constructor), from a stream of
  // its own, so adding a tensor leaves the others' values unchanged.
  const auto& tensors = layout_.tensors();
  for (size_t index = 0; index < tensors.size(); ++index) {
    const TensorInfo& tensor = tensors[index];
    Rng rng(seed, 0x1417, index);
    T* data = parameters_.data() + tensor.offset;
    const double scale = tensor.init.scale;
    switch (tensor.init.kind) {
      case TensorInit::Kind::kZeros:
        std::fill(data, data + tensor.size, T(0));
        break;
      case TensorInit::Kind::kOnes:
        std::fill(data, data + tensor.size, T(1));
        break;
      case TensorInit::Kind::kUniform:
        for (size_t i = 0; i < tensor.size; ++i) data[i] = T(rng.uniform(-scale, scale));
        break;
      case TensorInit::Kind::kNormal:
        for (size_t i = 0; i < tensor.size; ++i) data[i] = T(scale * rng.normal());
        break;
    }
  }
  if (config_.identical_layers) copy_first_layer();
}

// nn.TransformerEncoder(layer, L) deep-copies one layer: every layer starts as layer 0.
template <typename T>
void Transformer<T>::copy_first_layer() {
  const std::string first = "layers.0.";
  const auto& tensors = layout_.tensors();
  for (const TensorInfo& tensor : tensors) {
    const std::string& name = tensor.name;
    if (name.rfind("layers.", 0) != 0 || name.rfind(first, 0) == 0) continue;
    const std::string suffix = name.substr(name.find('.', 7) + 1);
    const auto source = std::find_if(tensors.begin(), tensors.end(), [&](const TensorInfo& other) {
      return other.name == first + suffix;
    });
    if (source == tensors.end() || source->size != tensor.size)
      throw std::logic_error("Transformer: no layer-0 tensor for " + name);
    std::copy_n(parameters_.data() + source->offset, tensor.size,
                parameters_.data() + tensor.offset);
  }
}

template <typename T>
AttentionShape Transformer<T>::attention_shape(int batch) const {
  AttentionShape shape;
  shape.batch = batch;
  shape.tokens = sequence_.tokens;
  shape.width = config_.width();
  shape.heads = config_.heads;
  shape.rank = config_.rank;
  shape.value_rank = config_.value_rank;
  shape.modules = config_.width_multiplier;
  shape.mask = sequence_.mask;
  shape.key_limit = sequence_.key_limit;
  shape.kind = sequence_.kind;
  return shape;
}

template <typename T>
void Transformer<T>::attention_probabilities(int layer, T* out) const {
  attnrank::attention_probabilities(attention_shape(batch_), buffers_.at(layer).probs, out);
}

template <typename T>
size_t Transformer<T>::activation_bytes() const {
  size_t values = activations_.size();
  for (const Shard& shard : shards_) values += shard.scratch.size() + shard.own_gradients.size();
  return values * sizeof(T);
}

// Below this many FLOPs per training step (about 10 ms on two cores) a step is cut
// into one sample shard per thread: there a parallel region per kernel, with its
// fork, join and waits, is a visible share of each kernel (two threads ran the
// heads-lm presets at 1.05-1.25x one). Larger steps keep one shard and split each
// kernel across the threads, as fast and without a gradient copy per thread.
constexpr double kShardedStepFlops = 2e9;

int training_shards(const ModelConfig& config, const SequenceSpec& sequence, int batch,
                    int threads) {
  if (training_step_flops(config, sequence, batch) >= kShardedStepFlops) return 1;
  return std::max(1, std::min(threads, batch));
}

template <typename T>
void Transformer<T>::allocate_activations(int batch) {
  if (batch < 1) throw std::invalid_argument("Transformer: batch must be >= 1");
  const int threads = std::max(1, omp_get_max_threads());
  if (batch == batch_ && threads == threads_) return;
  const AttentionShape shape = attention_shape(batch);
  const size_t tokens = sequence_.tokens;
  const size_t rows = static_cast<size_t>(batch) * tokens;
  const size_t width = config_.width();
  const size_t ffn = config_.ffn;
  const size_t probs_per_sample =
      static_cast<size_t>(shape.modules) * shape.heads * tokens * tokens;
  const size_t per_layer = 6 * rows * width + 4 * rows + rows * shape.qkv_stride() +
                           probs_per_sample * batch + rows * shape.context_stride() + rows * ffn;
  const size_t input_features = sequence_.input == InputKind::kLinear ? sequence_.input_width : 0;
  const size_t head_width = sequence_.output == OutputKind::kLinear ? config_.dim : 0;
  activations_.assign(rows * width * 2 + 2 * rows + per_layer * config_.layers +
                          rows * input_features + rows * head_width,
                      T(0));
  T* cursor = activations_.data();
  auto take = [&](size_t n) {
    T* at = cursor;
    cursor += n;
    return at;
  };
  // The full batch's arrays; a (2, rows) statistics array holds each shard's (2, its
  // rows) in turn.
  T* embedded = take(rows * width);
  T* final_out = take(rows * width);
  T* final_stats = take(2 * rows);
  T* input_copy = take(rows * input_features);
  T* head_input = take(rows * head_width);
  buffers_.clear();
  for (int layer = 0; layer < config_.layers; ++layer) {
    LayerBuffers b;
    b.norm1_out = take(rows * width);
    b.norm1_stats = take(2 * rows);
    b.qkv = take(rows * shape.qkv_stride());
    b.probs = take(probs_per_sample * batch);
    b.context = take(rows * shape.context_stride());
    b.attn_out = take(rows * width);
    b.sum1 = take(rows * width);
    b.norm2_out = take(rows * width);
    b.norm2_stats = take(2 * rows);
    b.hidden = take(rows * ffn);
    b.mlp_out = take(rows * width);
    b.sum2 = take(rows * width);
    buffers_.push_back(b);
  }
  const int count = training_shards(config_, sequence_, batch, threads);
  shards_.clear();
  shards_.resize(count);
  for (int index = 0; index < count; ++index) {
    Shard& shard = shards_[index];
    shard.first = static_cast<int>(static_cast<int64_t>(batch) * index / count);
    shard.batch = static_cast<int>(static_cast<int64_t>(batch) * (index + 1) / count) - shard.first;
    const size_t row0 = static_cast<size_t>(shard.first) * tokens;
    const size_t shard_rows = static_cast<size_t>(shard.batch) * tokens;
    shard.embedded = embedded + row0 * width;
    shard.final_out = final_out + row0 * width;
    shard.final_stats = final_stats + 2 * row0;
    shard.input_copy = input_copy + row0 * input_features;
    shard.head_input = head_input + row0 * head_width;
    for (const LayerBuffers& all : buffers_) {
      LayerBuffers b;
      b.norm1_out = all.norm1_out + row0 * width;
      b.norm1_stats = all.norm1_stats + 2 * row0;
      b.qkv = all.qkv + row0 * shape.qkv_stride();
      b.probs = all.probs + probs_per_sample * shard.first;
      b.context = all.context + row0 * shape.context_stride();
      b.attn_out = all.attn_out + row0 * width;
      b.sum1 = all.sum1 + row0 * width;
      b.norm2_out = all.norm2_out + row0 * width;
      b.norm2_stats = all.norm2_stats + 2 * row0;
      b.hidden = all.hidden + row0 * ffn;
      b.mlp_out = all.mlp_out + row0 * width;
      b.sum2 = all.sum2 + row0 * width;
      shard.layers.push_back(b);
    }
    // The output stage's input gradient goes into the first of the three (rows,
    // width) buffers; (rows, d) fits.
    shard.scratch.assign(shard_rows * (3 * width + shape.context_stride() + shape.qkv_stride()) +
                             mlp_scratch_size(static_cast<int>(shard_rows), static_cast<int>(width),
                                              static_cast<int>(ffn)),
                         T(0));
  }
  batch_ = batch;
  threads_ = threads;
}

template <typename T>
template <typename Work>
void Transformer<T>::for_each_shard(Work&& work) {
  const int count = shard_count();
  if (count == 1) {
    work(shards_[0]);
    return;
  }
  std::vector<std::exception_ptr> errors(count);
#pragma omp parallel num_threads(count)
  {
    // This thread's nested regions (the kernels') get one thread; OpenBLAS runs
    // single-threaded inside a parallel region by itself.
    omp_set_num_threads(1);
    for (int index = omp_get_thread_num(); index < count; index += omp_get_num_threads()) {
      try {
        work(shards_[index]);
      } catch (...) {
        errors[index] = std::current_exception();
      }
    }
  }
  for (const std::exception_ptr& error : errors)
    if (error) std::rethrow_exception(error);
}

template <typename T>
void Transformer<T>::norm_forward(const NormOffsets& norm, const T* x, T* y, T* stats, int rows) {
  const int width = config_.width();
  if (config_.norm == Norm::kSphere) {
    sphere_norm_forward(x, parameters_[norm.a], y, stats, rows, width);
  } else if (config_.norm == Norm::kLayer) {
    layer_norm_forward(x, param(norm.a), param(norm.b), y, stats, stats + rows, rows, width);
  } else {
    copy_values(y, x, static_cast<size_t>(rows) * width);
  }
}

template <typename T>
void Transformer<T>::norm_backward(const NormOffsets& norm, const T* dy, const T* x, const T* stats,
                                   T* dx, T* gradients, int rows) {
  const int width = config_.width();
  if (config_.norm == Norm::kSphere) {
    sphere_norm_backward(dy, x, parameters_[norm.a], stats, dx, grad(gradients, norm.a), rows,
                         width);
  } else if (config_.norm == Norm::kLayer) {
    layer_norm_backward(dy, x, param(norm.a), stats, stats + rows, dx, grad(gradients, norm.a),
                        grad(gradients, norm.b), rows, width);
  } else {
    copy_values(dx, dy, static_cast<size_t>(rows) * width);
  }
}

template <typename T>
const T* Transformer<T>::layer_input(const Shard& shard, int layer) const {
  return layer == 0 ? shard.embedded : layer_output(shard, layer - 1);
}

template <typename T>
const T* Transformer<T>::layer_output(const Shard& shard, int layer) const {
  const LayerBuffers& b = shard.layers[layer];
  if (config_.norm_first) return config_.ffn > 0 ? b.sum2 : b.sum1;
  return config_.ffn > 0 ? b.norm2_out : b.norm1_out;
}

template <typename T>
int Transformer<T>::input_width() const {
  return sequence_.input == InputKind::kVectors ? config_.dim : sequence_.input_width;
}

template <typename T>
int Transformer<T>::output_width() const {
  return sequence_.output == OutputKind::kVectors ? config_.dim : sequence_.output_width;
}

template <typename T>
const T* Transformer<T>::output_weight() const {
  return tied_ ? param(embed_) : param(read_out_weight_);
}

template <typename T>
T* Transformer<T>::output_weight_gradient(T* gradients) {
  return tied_ ? grad(gradients, embed_) : grad(gradients, read_out_weight_);
}

template <typename T>
void Transformer<T>::forward(const T* x, int batch, T* y) {
  if (sequence_.input == InputKind::kTokens)
    throw std::logic_error("Transformer::forward: this model reads token ids (forward_tokens)");
  allocate_activations(batch);
  const size_t in_width = input_width(), out_width = output_width();
  for_each_shard([&](Shard& shard) {
    const size_t row0 = static_cast<size_t>(shard.first) * sequence_.tokens;
    forward_shard(shard, x + row0 * in_width, y + row0 * out_width);
  });
}

template <typename T>
void Transformer<T>::forward_tokens(const int32_t* tokens, int batch, T* y) {
  if (sequence_.input != InputKind::kTokens)
    throw std::logic_error("Transformer::forward_tokens: this model reads vectors (forward)");
  allocate_activations(batch);
  tokens_.assign(tokens, tokens + static_cast<size_t>(batch) * sequence_.tokens);
  const size_t out_width = output_width();
  for_each_shard([&](Shard& shard) {
    const size_t row0 = static_cast<size_t>(shard.first) * sequence_.tokens;
    embedding_forward(tokens_.data() + row0, param(embed_), shard.embedded,
                      shard.batch * sequence_.tokens, sequence_.input_width, config_.dim,
                      config_.width());
    add_positional(shard);
    forward_layers(shard, y + row0 * out_width);
  });
}

// x: (b, N, input width): vector or linear input.
template <typename T>
void Transformer<T>::forward_shard(Shard& shard, const T* x, T* y) {
  const int rows = shard.batch * sequence_.tokens;
  const int dim = config_.dim;
  const int width = config_.width();
  const T* rows_in = x;  // (b*N, d)
  if (sequence_.input == InputKind::kLinear) {
    // read_in: x (b*N, m) -> (b*N, d); scratch is free until backward.
    const int features = sequence_.input_width;
    copy_values(shard.input_copy, x, static_cast<size_t>(rows) * features);
    linear_forward(x, param(embed_), param(read_in_bias_), shard.scratch.data(), rows, features,
                   dim);
    rows_in = shard.scratch.data();
  }
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
  for (int row = 0; row < rows; ++row)
    copy_values(shard.embedded + static_cast<size_t>(row) * width,
                rows_in + static_cast<size_t>(row) * dim, static_cast<size_t>(dim));
  add_positional(shard);
  forward_layers(shard, y);
}

template <typename T>
void Transformer<T>::add_positional(Shard& shard) {
  if (positional_ == kAbsent) return;
  const int tokens = sequence_.tokens;
  const int rows = shard.batch * tokens;
  const int dim = config_.dim;
  const int width = config_.width();
  const T* positional = param(positional_);
  const bool additive = config_.positional == Positional::kAdditive;
  const int p = config_.positional_dim;
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
  for (int row = 0; row < rows; ++row) {
    const int token = row % tokens;
    T* out = shard.embedded + static_cast<size_t>(row) * width;
    if (additive) {
      for (int i = 0; i < dim; ++i) out[i] += positional[token * dim + i];
    } else {
      for (int i = 0; i < p; ++i) out[dim + i] = positional[token * p + i];
    }
  }
}

template <typename T>
void Transformer<T>::forward_layers(Shard& shard, T* y) {
  const int tokens = sequence_.tokens;
  const int rows = shard.batch * tokens;
  const int dim = config_.dim;
  const int width = config_.width();
  const size_t values = static_cast<size_t>(rows) * width;

  const AttentionShape shape = attention_shape(shard.batch);
  for (int layer = 0; layer < config_.layers; ++layer) {
    const LayerOffsets& o = offsets_[layer];
    const LayerBuffers& b = shard.layers[layer];
    const T* in = layer_input(shard, layer);
    const T* attn_in = in;
    if (config_.norm_first) {
      norm_forward(o.norm1, in, b.norm1_out, b.norm1_stats, rows);
      attn_in = b.norm1_out;
    }
    attention_forward(shape, attn_in, param(o.in_weight), param(o.in_bias), param(o.out_weight),
                      param(o.out_bias), b.qkv, b.probs, b.context, b.attn_out);
    if (config_.residual) {
      sum_into(b.sum1, in, b.attn_out, values);
    } else {
      copy_values(b.sum1, b.attn_out, values);
    }
    const T* mlp_in;
    const T* mlp_residual;
    if (config_.norm_first) {
      if (config_.ffn == 0) continue;
      norm_forward(o.norm2, b.sum1, b.norm2_out, b.norm2_stats, rows);
      mlp_in = b.norm2_out;
      mlp_residual = b.sum1;
    } else {
      norm_forward(o.norm1, b.sum1, b.norm1_out, b.norm1_stats, rows);
      if (config_.ffn == 0) continue;
      mlp_in = b.norm1_out;
      mlp_residual = b.norm1_out;
    }
    mlp_forward(mlp_in, param(o.fc1_weight), param(o.fc1_bias), param(o.fc2_weight),
                param(o.fc2_bias), b.hidden, b.mlp_out, rows, width, config_.ffn);
    if (config_.residual) {
      sum_into(b.sum2, mlp_residual, b.mlp_out, values);
    } else {
      copy_values(b.sum2, b.mlp_out, values);
    }
    if (!config_.norm_first) norm_forward(o.norm2, b.sum2, b.norm2_out, b.norm2_stats, rows);
  }

  const T* last = layer_output(shard, config_.layers - 1);
  if (config_.norm_first) {
    norm_forward(final_norm_, last, shard.final_out, shard.final_stats, rows);
    last = shard.final_out;
  }
  // The output reads the first d dims of each position (concatenated positional
  // dims are dropped).
  T* kept = sequence_.output == OutputKind::kVectors ? y : shard.head_input;
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
  for (int row = 0; row < rows; ++row)
    copy_values(kept + static_cast<size_t>(row) * dim, last + static_cast<size_t>(row) * width,
                static_cast<size_t>(dim));
  if (sequence_.output == OutputKind::kLinear)
    linear_forward(shard.head_input, output_weight(), param(read_out_bias_), y, rows, dim,
                   sequence_.output_width);
}

// Every shard's gradients, then the further shards' summed into gradients_ in shard
// order.
template <typename T>
void Transformer<T>::backward(const T* dy, T* dx) {
  if (batch_ == 0) throw std::logic_error("Transformer::backward called before forward");
  if (sequence_.input == InputKind::kTokens && dx != nullptr)
    throw std::logic_error("Transformer::backward: token input has no dx");
  const size_t in_width = input_width(), out_width = output_width();
  // The further shards' gradient copies are made here, not with the activations: a
  // forward-only (evaluation) batch never needs them. Every entry is overwritten by
  // the backward pass, so they need no zeroing between steps.
  for (size_t index = 0; index < shards_.size(); ++index) {
    Shard& shard = shards_[index];
    if (index > 0 && shard.own_gradients.size() != gradients_.size())
      shard.own_gradients.assign(gradients_.size(), T(0));
    shard.gradients = index == 0 ? gradients_.data() : shard.own_gradients.data();
  }
  for_each_shard([&](Shard& shard) {
    const size_t row0 = static_cast<size_t>(shard.first) * sequence_.tokens;
    backward_shard(shard, dy + row0 * out_width, dx != nullptr ? dx + row0 * in_width : nullptr);
  });
  for (size_t index = 1; index < shards_.size(); ++index)
    add_into(gradients_.data(), shards_[index].own_gradients.data(), gradients_.size());
}

// dy: (b, N, output width), dx: (b, N, input width) or null; parameter gradients
// into shard.gradients.
template <typename T>
void Transformer<T>::backward_shard(Shard& shard, const T* dy, T* dx) {
  const int batch = shard.batch;
  const int tokens = sequence_.tokens;
  const int rows = batch * tokens;
  const int dim = config_.dim;
  const int width = config_.width();
  const int ffn = config_.ffn;
  const size_t values = static_cast<size_t>(rows) * width;
  const AttentionShape shape = attention_shape(batch);
  T* const gradients = shard.gradients;
  auto grad = [gradients](size_t offset) { return Transformer::grad(gradients, offset); };

  T* const buffers[3] = {shard.scratch.data(), shard.scratch.data() + values,
                         shard.scratch.data() + 2 * values};
  T* mlp_scratch = shard.scratch.data() + 3 * values;
  const size_t mlp_scratch_elements = mlp_scratch_size(rows, width, ffn);
  T* d_context = mlp_scratch + mlp_scratch_elements;
  T* d_qkv = d_context + static_cast<size_t>(rows) * shape.context_stride();

  // Whether anything before the first layer needs dLoss/d(embedded): the caller's dx,
  // positional encodings, or an embedding or read-in.
  const bool input_gradient_needed =
      dx != nullptr || positional_ != kAbsent || sequence_.input != InputKind::kVectors;
  // Gradient of the kept first d dims of the last layer's output (B*N, d).
  const T* g_kept = dy;
  if (sequence_.output == OutputKind::kLinear) {
    // read_out; a tied weight's gradient is written here and the token input's
    // gradient added at the end.
    T* g_head = buffers[1];
    const int classes = sequence_.output_width;
    linear_backward(dy, shard.head_input, output_weight(), g_head,
                    output_weight_gradient(gradients), grad(read_out_bias_), rows, dim, classes);
    if (tied_) {
      T* rest = grad(embed_) + static_cast<size_t>(classes) * dim;
      std::fill(rest, rest + static_cast<size_t>(sequence_.input_width - classes) * dim, T(0));
    }
    g_kept = g_head;
  }
  // Gradient of the last layer's output (B*N, D); positional dims get none.
  T* g_out = buffers[0];
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
  for (int row = 0; row < rows; ++row) {
    T* out = g_out + static_cast<size_t>(row) * width;
    const T* in = g_kept + static_cast<size_t>(row) * dim;
    for (int i = 0; i < dim; ++i) out[i] = in[i];
    for (int i = dim; i < width; ++i) out[i] = T(0);
  }
  if (config_.norm_first) {
    T* g = buffers[1];
    norm_backward(final_norm_, g_out, layer_output(shard, config_.layers - 1), shard.final_stats, g,
                  gradients, rows);
    g_out = g;
  }

  for (int layer = config_.layers - 1; layer >= 0; --layer) {
    const LayerOffsets& o = offsets_[layer];
    const LayerBuffers& b = shard.layers[layer];
    const T* in = layer_input(shard, layer);
    T* g_sum1;
    if (config_.norm_first) {
      if (ffn > 0) {
        const T* g_sum2 = g_out;
        T* g_norm2 = other_buffer(buffers, g_sum2, nullptr);
        mlp_backward(g_sum2, b.norm2_out, b.hidden, param(o.fc1_weight), param(o.fc2_weight),
                     mlp_scratch, mlp_scratch_elements, g_norm2, grad(o.fc1_weight),
                     grad(o.fc1_bias), grad(o.fc2_weight), grad(o.fc2_bias), rows, width, ffn);
        g_sum1 = other_buffer(buffers, g_sum2, g_norm2);
        norm_backward(o.norm2, g_norm2, b.sum1, b.norm2_stats, g_sum1, gradients, rows);
        if (config_.residual) add_into(g_sum1, g_sum2, values);
      } else {
        g_sum1 = g_out;
      }
      T* g_norm1 = other_buffer(buffers, g_sum1, nullptr);
      attention_backward(shape, g_sum1, b.norm1_out, param(o.in_weight), param(o.out_weight), b.qkv,
                         b.probs, b.context, d_context, d_qkv, g_norm1, grad(o.in_weight),
                         grad(o.in_bias), grad(o.out_weight), grad(o.out_bias));
      T* g_in = other_buffer(buffers, g_sum1, g_norm1);
      norm_backward(o.norm1, g_norm1, in, b.norm1_stats, g_in, gradients, rows);
      if (config_.residual) add_into(g_in, g_sum1, values);
      g_out = g_in;
    } else {
      T* g_norm1_out = g_out;
      if (ffn > 0) {
        T* g_sum2 = other_buffer(buffers, g_out, nullptr);
        norm_backward(o.norm2, g_out, b.sum2, b.norm2_stats, g_sum2, gradients, rows);
        g_norm1_out = other_buffer(buffers, g_sum2, nullptr);
        mlp_backward(g_sum2, b.norm1_out, b.hidden, param(o.fc1_weight), param(o.fc2_weight),
                     mlp_scratch, mlp_scratch_elements, g_norm1_out, grad(o.fc1_weight),
                     grad(o.fc1_bias), grad(o.fc2_weight), grad(o.fc2_bias), rows, width, ffn);
        if (config_.residual) add_into(g_norm1_out, g_sum2, values);
      }
      g_sum1 = other_buffer(buffers, g_norm1_out, nullptr);
      norm_backward(o.norm1, g_norm1_out, b.sum1, b.norm1_stats, g_sum1, gradients, rows);
      if (layer == 0 && !input_gradient_needed) {
        // Post-norm layer 0 reads the data itself: no gradient flows further, so the
        // in-projection's input gradient (as large as its weight gradient) is skipped.
        attention_backward(shape, g_sum1, in, param(o.in_weight), param(o.out_weight), b.qkv,
                           b.probs, b.context, d_context, d_qkv, static_cast<T*>(nullptr),
                           grad(o.in_weight), grad(o.in_bias), grad(o.out_weight),
                           grad(o.out_bias));
        return;
      }
      T* g_in = other_buffer(buffers, g_sum1, nullptr);
      attention_backward(shape, g_sum1, in, param(o.in_weight), param(o.out_weight), b.qkv, b.probs,
                         b.context, d_context, d_qkv, g_in, grad(o.in_weight), grad(o.in_bias),
                         grad(o.out_weight), grad(o.out_bias));
      if (config_.residual) add_into(g_in, g_sum1, values);
      g_out = g_in;
    }
  }

  // Embedding: g_out is dLoss/d(embedded) (B*N, D).
  if (positional_ != kAbsent) {
    const bool additive = config_.positional == Positional::kAdditive;
    const int columns = additive ? dim : config_.positional_dim;
    const int first = additive ? 0 : dim;
    T* g_pos = grad(positional_);
#pragma omp parallel for schedule( \
    static) if (worth_parallel(static_cast <size_t>(batch) * tokens * columns))
    for (int token = 0; token < tokens; ++token) {
      T* out = g_pos + static_cast<size_t>(token) * columns;
      for (int i = 0; i < columns; ++i) out[i] = T(0);
      for (int b = 0; b < batch; ++b) {
        const T* g = g_out + (static_cast<size_t>(b) * tokens + token) * width + first;
        for (int i = 0; i < columns; ++i) out[i] += g[i];
      }
    }
  }
  // Input stage: g_out's first d dims are dLoss/d(input rows).
  if (sequence_.input == InputKind::kTokens) {
    T* g_embed = grad(embed_);
    if (!tied_)
      std::fill(g_embed, g_embed + static_cast<size_t>(sequence_.input_width) * dim, T(0));
    embedding_backward(tokens_.data() + static_cast<size_t>(shard.first) * tokens, g_out, g_embed,
                       rows, dim, width);
    return;
  }
  const T* g_rows = g_out;  // (B*N, d) contiguous
  if (width != dim) {
    T* packed = other_buffer(buffers, g_out, nullptr);
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * dim))
    for (int row = 0; row < rows; ++row)
      copy_values(packed + static_cast<size_t>(row) * dim, g_out + static_cast<size_t>(row) * width,
                  static_cast<size_t>(dim));
    g_rows = packed;
  }
  if (sequence_.input == InputKind::kLinear) {
    linear_backward(g_rows, shard.input_copy, param(embed_), dx, grad(embed_), grad(read_in_bias_),
                    rows, sequence_.input_width, dim);
  } else if (dx != nullptr) {
    copy_values(dx, g_rows, static_cast<size_t>(rows) * dim);
  }
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace attnrank
