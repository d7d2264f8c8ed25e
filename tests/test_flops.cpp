// The FLOP counter against a hand count.
#include <gtest/gtest.h>

#include "attnrank/model.h"

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
  EXPECT_DOUBLE_EQ(training_step_flops(m, s, 256), 3 * forward);
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
  EXPECT_DOUBLE_EQ(training_step_flops(m, s, 10), 3 * 3 * forward);
}
