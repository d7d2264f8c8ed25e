// The FLOP counter against a hand count.
#include <gtest/gtest.h>

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
