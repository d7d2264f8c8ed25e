// Finite-difference gradient checks (float64) for whole models across
// (H, r, r_v, c, L, norm, positional, residual, mask) settings, including r != d/H.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attnrank/core/threading.h"
#include "attnrank/nn/model.h"
#include "gradcheck.h"

using namespace attnrank;
using attnrank::testing::expect_gradient_matches;
using attnrank::testing::random_vector;

struct ModelCase {
  const char* name;
  ModelConfig model;
  SequenceSpec sequence;
};

void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << c.name;
}

namespace {

ModelConfig make_model(int dim, int heads, int rank, int value_rank, int modules, int layers,
                       int ffn, const char* norm, bool norm_first, const char* positional,
                       bool residual = true, bool bias = true) {
  ModelConfig m;
  m.dim = dim;
  m.heads = heads;
  m.rank = rank;
  m.value_rank = value_rank;
  m.width_multiplier = modules;
  m.layers = layers;
  m.ffn = ffn;
  m.norm = *choice_from_name<Norm>(norm);
  m.norm_first = norm_first;
  m.positional = *choice_from_name<Positional>(positional);
  m.positional_dim = 3;
  m.residual = residual;
  m.bias = bias;
  return m;
}

SequenceSpec sequence(int tokens, AttentionMask mask = AttentionMask::kFull, int key_limit = 0) {
  SequenceSpec s;
  s.tokens = tokens;
  s.mask = mask;
  s.key_limit = key_limit;
  return s;
}

// Input and output stages on top of a sequence.
SequenceSpec with_io(SequenceSpec s, InputKind input, int input_width, OutputKind output,
                     int output_width) {
  s.input = input;
  s.input_width = input_width;
  s.output = output;
  s.output_width = output_width;
  return s;
}

ModelConfig untied(ModelConfig m) {
  m.tie_embeddings = false;
  return m;
}

}  // namespace

class ModelGradCheck : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelGradCheck, MatchesFiniteDifferences) {
  const ModelCase& c = GetParam();
  Transformer<double> model(c.model, c.sequence);
  model.initialize(5);
  // Move every parameter off its special initial value (zero biases, unit scales).
  auto noise = random_vector(model.parameter_count(), 31, 0.2);
  for (size_t i = 0; i < noise.size(); ++i) model.parameters()[i] += noise[i];
  const int batch = 2;
  const size_t positions = static_cast<size_t>(batch) * c.sequence.tokens;
  const bool tokens_in = c.sequence.input == InputKind::kTokens;
  auto x = random_vector(positions * model.input_width(), 32);
  std::vector<int32_t> ids(positions);
  for (size_t i = 0; i < positions; ++i) ids[i] = static_cast<int32_t>((i * 5 + 3) % 7);
  const size_t outputs = positions * model.output_width();
  auto probe = random_vector(outputs, 33);
  std::vector<double> y(outputs);
  auto loss = [&] {
    if (tokens_in) {
      model.forward_tokens(ids.data(), batch, y.data());
    } else {
      model.forward(x.data(), batch, y.data());
    }
    double s = 0;
    for (size_t i = 0; i < outputs; ++i) s += y[i] * probe[i];
    return s;
  };
  loss();
  std::vector<double> dx(x.size());
  model.backward(probe.data(), tokens_in ? nullptr : dx.data());
  const std::vector<double> analytic = model.gradients();
  for (const TensorInfo& tensor : model.layout().tensors()) {
    std::vector<double> values_of(model.parameters().begin() + tensor.offset,
                                  model.parameters().begin() + tensor.offset + tensor.size);
    std::vector<double> grad_of(analytic.begin() + tensor.offset,
                                analytic.begin() + tensor.offset + tensor.size);
    // The checker perturbs a copy; write it back into the model around each loss call.
    auto tensor_loss = [&] {
      std::copy(values_of.begin(), values_of.end(), model.parameters().begin() + tensor.offset);
      return loss();
    };
    expect_gradient_matches(std::string(c.name) + " " + tensor.name, values_of, grad_of,
                            tensor_loss, 12);
    std::copy(values_of.begin(), values_of.end(), model.parameters().begin() + tensor.offset);
  }
  if (!tokens_in) expect_gradient_matches(std::string(c.name) + " input", x, dx, loss, 30);
}

// With several threads the batch is cut into sample shards, each run through the
// whole model on its own thread (model.h, Shard), gradients summed in shard order. The
// outputs, input gradient and parameter gradients must match one thread's, with
// shards of unequal size (5 samples on 3 threads) and more threads than samples.
TEST_P(ModelGradCheck, ShardsMatchOneThread) {
  const ModelCase& c = GetParam();
  const bool tokens_in = c.sequence.input == InputKind::kTokens;
  struct Result {
    int shards;
    std::vector<double> y, dx, gradients, probs;
  };
  auto run = [&](int threads, int batch) {
    set_threads(threads);
    Transformer<double> model(c.model, c.sequence);
    model.initialize(5);
    const size_t positions = static_cast<size_t>(batch) * c.sequence.tokens;
    const auto x = random_vector(positions * model.input_width(), 32);
    std::vector<int32_t> ids(positions);
    for (size_t i = 0; i < positions; ++i) ids[i] = static_cast<int32_t>((i * 5 + 3) % 7);
    const auto probe = random_vector(positions * model.output_width(), 33);
    Result result;
    result.y.resize(positions * model.output_width());
    result.dx.resize(tokens_in ? 0 : x.size());
    if (tokens_in) {
      model.forward_tokens(ids.data(), batch, result.y.data());
    } else {
      model.forward(x.data(), batch, result.y.data());
    }
    model.backward(probe.data(), tokens_in ? nullptr : result.dx.data());
    result.shards = model.shard_count();
    result.gradients = model.gradients();
    const int heads = c.model.width_multiplier * c.model.heads;
    result.probs.resize(static_cast<size_t>(batch) * heads * c.sequence.tokens * c.sequence.tokens);
    model.attention_probabilities(c.model.layers - 1, result.probs.data());
    return result;
  };
  auto expect_near = [&](const std::vector<double>& want, const std::vector<double>& got,
                         const std::string& what) {
    ASSERT_EQ(want.size(), got.size()) << what;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-12 * (1 + std::abs(want[i]))) << what << " [" << i << "]";
  };
  for (const int batch : {5, 2}) {
    const Result one = run(1, batch);
    const Result sharded = run(3, batch);
    set_threads(0);
    EXPECT_EQ(one.shards, 1);
    EXPECT_EQ(sharded.shards, std::min(3, batch));
    const std::string where = std::string(c.name) + " batch " + std::to_string(batch);
    expect_near(one.y, sharded.y, where + " outputs");
    expect_near(one.dx, sharded.dx, where + " input gradient");
    expect_near(one.gradients, sharded.gradients, where + " parameter gradients");
    expect_near(one.probs, sharded.probs, where + " attention probabilities");
  }
}

// A sharded model keeps nothing from one call to the next: after a training step on
// 5 samples and an evaluation forward on 2 (which re-cuts the shards), a step on new
// inputs gives, bit for bit, what a fresh model at the same thread count gives for
// that step alone (the same thread count, the same values).
TEST_P(ModelGradCheck, ShardsKeepNoStateAcrossCalls) {
  const ModelCase& c = GetParam();
  const bool tokens_in = c.sequence.input == InputKind::kTokens;
  auto step = [&](Transformer<double>& model, int batch, uint64_t seed, bool backward,
                  std::vector<double>* dx) {
    const size_t positions = static_cast<size_t>(batch) * c.sequence.tokens;
    const auto x = random_vector(positions * model.input_width(), seed);
    std::vector<int32_t> ids(positions);
    for (size_t i = 0; i < positions; ++i) ids[i] = static_cast<int32_t>((i * 5 + seed) % 7);
    std::vector<double> y(positions * model.output_width());
    if (tokens_in) {
      model.forward_tokens(ids.data(), batch, y.data());
    } else {
      model.forward(x.data(), batch, y.data());
    }
    if (backward) {
      const auto probe = random_vector(y.size(), seed + 1);
      dx->assign(tokens_in ? 0 : x.size(), 0.0);
      model.backward(probe.data(), tokens_in ? nullptr : dx->data());
    }
    return y;
  };
  set_threads(3);
  Transformer<double> used(c.model, c.sequence);
  used.initialize(5);
  std::vector<double> dx_used, dx_fresh;
  step(used, 5, 40, true, &dx_used);
  step(used, 2, 42, false, nullptr);
  const auto y_used = step(used, 5, 44, true, &dx_used);
  const std::vector<double> gradients_used = used.gradients();
  Transformer<double> fresh(c.model, c.sequence);
  fresh.initialize(5);
  const auto y_fresh = step(fresh, 5, 44, true, &dx_fresh);
  const int shards = fresh.shard_count();
  set_threads(0);
  EXPECT_EQ(shards, 3) << c.name;
  EXPECT_EQ(y_used, y_fresh) << c.name << " outputs";
  EXPECT_EQ(dx_used, dx_fresh) << c.name << " input gradient";
  EXPECT_EQ(gradients_used, fresh.gradients()) << c.name << " parameter gradients";
  // An empty batch is an error, not a parallel region of zero threads.
  std::vector<double> none(1);
  const int32_t id = 0;
  if (tokens_in) {
    EXPECT_THROW(used.forward_tokens(&id, 0, none.data()), std::invalid_argument);
  } else {
    EXPECT_THROW(used.forward(none.data(), 0, none.data()), std::invalid_argument);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ModelGradCheck,
    ::testing::Values(
        ModelCase{"published_post_sphere", make_model(6, 2, 3, 3, 1, 1, 8, "sphere", false, "none"),
                  sequence(4)},
        ModelCase{"full_rank_c3", make_model(6, 1, 6, 6, 3, 1, 8, "sphere", false, "none"),
                  sequence(4)},
        ModelCase{"free_rank_two_layers", make_model(6, 3, 4, 2, 2, 2, 8, "sphere", false, "none"),
                  sequence(5)},
        ModelCase{"pre_norm_layer", make_model(6, 2, 5, 3, 2, 2, 8, "layer", true, "none"),
                  sequence(4)},
        ModelCase{"additive_positional",
                  make_model(5, 1, 2, 3, 2, 1, 6, "sphere", false, "additive"), sequence(4)},
        ModelCase{"concat_positional", make_model(4, 7, 1, 1, 2, 2, 6, "sphere", false, "concat"),
                  sequence(4)},
        ModelCase{"bare_attention",
                  make_model(5, 1, 5, 5, 1, 1, 0, "none", false, "none", false, false),
                  sequence(4)},
        ModelCase{"attention_only_three_layers",
                  make_model(4, 2, 2, 2, 2, 3, 0, "sphere", false, "none"), sequence(3)},
        ModelCase{"no_residual_mlp", make_model(4, 2, 3, 2, 1, 2, 6, "layer", false, "none", false),
                  sequence(3)},
        ModelCase{"nearest_mask", make_model(4, 2, 2, 2, 2, 1, 6, "sphere", false, "concat"),
                  sequence(6, AttentionMask::kPrefix, 4)},
        ModelCase{"pre_norm_concat_no_ffn",
                  make_model(4, 1, 7, 2, 3, 2, 0, "layer", true, "concat"), sequence(4)},
        // Input and output stages. Token ids cycle through 0..6.
        ModelCase{"causal_lm_tied", make_model(6, 2, 4, 3, 2, 2, 8, "layer", true, "additive"),
                  with_io(sequence(5, AttentionMask::kCausal), InputKind::kTokens, 7,
                          OutputKind::kLinear, 7)},
        ModelCase{"masked_lm_tied_fewer_classes",
                  make_model(5, 1, 3, 2, 1, 1, 6, "sphere", false, "additive"),
                  with_io(sequence(4), InputKind::kTokens, 9, OutputKind::kLinear, 7)},
        ModelCase{"masked_lm_untied",
                  untied(make_model(5, 2, 2, 4, 2, 1, 6, "layer", false, "additive")),
                  with_io(sequence(4), InputKind::kTokens, 8, OutputKind::kLinear, 7)},
        ModelCase{"icl_linear_in_out", make_model(6, 3, 2, 2, 1, 2, 8, "layer", true, "additive"),
                  with_io(sequence(5, AttentionMask::kCausal), InputKind::kLinear, 4,
                          OutputKind::kLinear, 1)},
        ModelCase{"linear_in_out_concat_no_bias",
                  make_model(4, 2, 3, 3, 2, 1, 6, "sphere", false, "concat", true, false),
                  with_io(sequence(4, AttentionMask::kCausal), InputKind::kLinear, 3,
                          OutputKind::kLinear, 2)},
        ModelCase{"points_in_linear_out", make_model(4, 2, 2, 2, 1, 1, 6, "sphere", false, "none"),
                  with_io(sequence(4), InputKind::kVectors, 0, OutputKind::kLinear, 3)},
        // qkv rows 768 and context rows 256 wide: the activations laid out padded
        // (AttentionShape::qkv_stride), in the model's buffers and its shards.
        ModelCase{"padded_activation_rows",
                  make_model(4, 16, 4, 4, 4, 2, 6, "sphere", false, "none"), sequence(4)}),
    [](const ::testing::TestParamInfo<ModelCase>& info) { return std::string(info.param.name); });

// Training never asks for dx; a post-norm first layer that reads the data then skips
// its input gradient. The parameter gradients must not change.
TEST(ModelBackward, SkippingTheInputGradientKeepsParameterGradients) {
  for (const bool norm_first : {false, true}) {
    const ModelConfig config = make_model(6, 2, 4, 3, 2, 2, 8, "sphere", norm_first, "none");
    Transformer<double> model(config, sequence(5));
    model.initialize(9);
    const int batch = 3;
    const size_t values = static_cast<size_t>(batch) * 5 * 6;
    const auto x = random_vector(values, 41);
    const auto probe = random_vector(values, 42);
    std::vector<double> y(values), dx(values);
    model.forward(x.data(), batch, y.data());
    model.backward(probe.data(), dx.data());
    const std::vector<double> with_dx = model.gradients();
    std::fill(model.gradients().begin(), model.gradients().end(), -1.0);
    model.forward(x.data(), batch, y.data());
    model.backward(probe.data());
    EXPECT_EQ(model.gradients(), with_dx) << "norm_first " << norm_first;
  }
}
