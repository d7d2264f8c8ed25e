// The FLOP counter against a hand count.
#include <gtest/gtest.h>

#include <vector>

#include "attnrank/core/threading.h"
#include "attnrank/nn/model.h"

using namespace attnrank;

TEST(Flops, PublishedSmallestConfiguration) {
  // d = 64, N = 16, H = 1, r = r_v = 64, c = 1, L = 1, ffn 2048, batch 256.
  ModelConfig m;
  m.rank = 64;
  m.value_rank = 64;
  SequenceSpec s;
  s.tokens = 16;
  const double rows = 256.0 * 16;
  const double forward = 2 * rows * 64 * 192          // in-projection
                         + 2 * 256 * 16 * 16 * 128.0  // scores and context
                         + 2 * rows * 64 * 64         // out-projection
                         + 2 * 2 * rows * 64 * 2048;  // MLP
  // The first layer's in-projection input gradient is not computed: the data needs none.
  EXPECT_DOUBLE_EQ(training_step_flops(m, s, 256), 3 * forward - 2 * rows * 64 * 192);
}

TEST(Flops, ScalesWithLayersModulesAndMask) {
  ModelConfig m;
  m.dim = 8;
  m.heads = 2;
  m.rank = 3;
  m.value_rank = 5;
  m.width_multiplier = 4;
  m.layers = 3;
  m.ffn = 0;
  SequenceSpec s;
  s.tokens = 6;
  s.mask = AttentionMask::kPrefix;
  s.key_limit = 4;
  const double rows = 10.0 * 6, heads = 8;
  const double forward = 2 * rows * 8 * heads * (2 * 3 + 5) + 2 * 10 * heads * (6 * 4) * (3 + 5) +
                         2 * rows * heads * 5 * 8;
  const double first_layer_input_gradient = 2 * rows * 8 * heads * (2 * 3 + 5);
  EXPECT_DOUBLE_EQ(training_step_flops(m, s, 10), 3 * 3 * forward - first_layer_input_gradient);
  m.norm_first = true;  // pre-norm: the first norm's scale needs the gradient
  EXPECT_DOUBLE_EQ(training_step_flops(m, s, 10), 3 * 3 * forward);
}

TEST(Flops, InputAndOutputStages) {
  ModelConfig m;
  m.dim = 16;
  m.rank = 16;
  m.value_rank = 16;
  m.ffn = 0;
  m.positional = Positional::kAdditive;  // the first layer's input gradient is needed throughout
  SequenceSpec s;
  s.tokens = 10;
  s.mask = AttentionMask::kCausal;
  const double body = training_step_flops(m, s, 4);
  SequenceSpec text = s;
  text.input = InputKind::kTokens;
  text.input_width = 256;
  text.output = OutputKind::kLinear;
  text.output_width = 256;
  // Lookup: free; read-out: forward, input and weight gradients of (40 x 16) x (16 x 256).
  EXPECT_DOUBLE_EQ(training_step_flops(m, text, 4), body + 3 * 2 * 40.0 * 16 * 256);
  SequenceSpec regression = s;
  regression.input = InputKind::kLinear;
  regression.input_width = 9;
  regression.output = OutputKind::kLinear;
  regression.output_width = 1;
  EXPECT_DOUBLE_EQ(training_step_flops(m, regression, 4),
                   body + 2 * 2 * 40.0 * 9 * 16 + 3 * 2 * 40.0 * 16 * 1);
}

// A step under 2 GFLOP runs one sample shard per thread, each further shard with its
// own gradient copy and MLP partials: the memory estimate grows by at least what the
// model really allocates for them (and not by more than twice that), and not at all
// for a step that keeps one shard.
TEST(Flops, MemoryCountsEachFurtherShard) {
  ModelConfig m;  // the small presets' model: d = 16, r = 16, ffn 64, L = 2, c = 4
  m.dim = 16;
  m.heads = 1;
  m.rank = 16;
  m.value_rank = 16;
  m.width_multiplier = 4;
  m.layers = 2;
  m.ffn = 64;
  SequenceSpec s;
  s.tokens = 8;
  const int batch = 128;
  EXPECT_EQ(training_shards(m, s, batch, 1), 1);
  EXPECT_EQ(training_shards(m, s, batch, 3), 3);
  EXPECT_EQ(training_shards(m, s, 2, 3), 2);
  auto allocated = [&](int threads) {
    set_threads(threads);
    Transformer<float> model(m, s);
    model.initialize(1);
    const size_t values = static_cast<size_t>(batch) * s.tokens * m.dim;
    std::vector<float> x(values, 0.5f), y(values), dy(values, 0.25f);
    model.forward(x.data(), batch, y.data());
    model.backward(dy.data(), nullptr);
    EXPECT_EQ(model.shard_count(), threads);
    return static_cast<double>(model.activation_bytes());
  };
  const double allocated_extra = allocated(3) - allocated(1);
  set_threads(0);
  const double estimated_extra =
      training_memory_bytes(m, s, batch, 3) - training_memory_bytes(m, s, batch, 1);
  EXPECT_GT(allocated_extra, 0);
  EXPECT_GE(estimated_extra, allocated_extra);
  EXPECT_LE(estimated_extra, 2 * allocated_extra);

  ModelConfig large;  // reference configuration 1: 6.8 GFLOP per step, one shard
  large.rank = 64;
  large.value_rank = 64;
  SequenceSpec reference;
  reference.tokens = 16;
  EXPECT_EQ(training_shards(large, reference, 256, 3), 1);
  EXPECT_EQ(training_memory_bytes(large, reference, 256, 3),
            training_memory_bytes(large, reference, 256, 1));
}
