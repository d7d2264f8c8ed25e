// Finite-difference gradient checks (float64) for whole models across
// (H, r, r_v, c, L, norm, positional, residual, mask) settings, including r != d/H.
#include <gtest/gtest.h>

#include "attnrank/model.h"
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
  m.norm = norm;
  m.norm_first = norm_first;
  m.positional = positional;
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
  const size_t values = static_cast<size_t>(batch) * c.sequence.tokens * c.model.dim;
  auto x = random_vector(values, 32);
  auto probe = random_vector(values, 33);
  std::vector<double> y(values);
  auto loss = [&] {
    model.forward(x.data(), batch, y.data());
    double s = 0;
    for (size_t i = 0; i < values; ++i) s += y[i] * probe[i];
    return s;
  };
  loss();
  std::vector<double> dx(values);
  model.backward(probe.data(), dx.data());
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
  expect_gradient_matches(std::string(c.name) + " input", x, dx, loss, 30);
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
                  make_model(4, 1, 7, 2, 3, 2, 0, "layer", true, "concat"), sequence(4)}),
    [](const ::testing::TestParamInfo<ModelCase>& info) { return std::string(info.param.name); });
