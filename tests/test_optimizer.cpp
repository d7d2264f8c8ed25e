// Learning-rate schedule and AdamW semantics.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "attnrank/train/optimizer.h"

using namespace attnrank;

TEST(Schedule, LinearWarmupThenCosineToMinLr) {
  TrainConfig c;
  c.steps = 1000;
  c.warmup = 0.1;
  c.lr = 0.02;
  c.min_lr = 0.001;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.02 / 100);
  EXPECT_DOUBLE_EQ(learning_rate(c, 49), 0.02 * 50 / 100);
  EXPECT_DOUBLE_EQ(learning_rate(c, 99), 0.02);
  EXPECT_DOUBLE_EQ(learning_rate(c, 100), 0.02);                   // cosine starts at the peak
  EXPECT_NEAR(learning_rate(c, 550), 0.001 + 0.019 * 0.5, 1e-12);  // halfway
  EXPECT_NEAR(learning_rate(c, 1000), 0.001, 1e-12);
  for (int64_t s = 100; s < 999; ++s) EXPECT_GE(learning_rate(c, s), learning_rate(c, s + 1));
}

TEST(Schedule, NoWarmup) {
  TrainConfig c;
  c.steps = 10;
  c.warmup = 0.0;
  c.lr = 1.0;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 1.0);
  EXPECT_NEAR(learning_rate(c, 5), 0.5, 1e-12);
}

TEST(AdamW, MatchesThePyTorchUpdateRule) {
  // Reference: PyTorch's AdamW step written out in double.
  ParameterLayout layout;
  layout.add("w", {3}, false, /*decay=*/true);
  layout.add("b", {2}, false, /*decay=*/false);
  TrainConfig c;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = 1e-8;
  c.weight_decay = 0.1;
  AdamW<double> optimizer(layout, c);
  std::vector<double> p = {0.5, -1.0, 2.0, 0.3, -0.7}, reference = p;
  std::vector<double> m(5, 0.0), v(5, 0.0);
  const double lr = 0.01;
  for (int step = 1; step <= 5; ++step) {
    std::vector<double> g(5);
    for (int i = 0; i < 5; ++i) g[i] = std::sin(step * 1.3 + i);
    optimizer.step(p, g, lr);
    for (int i = 0; i < 5; ++i) {
      if (i < 3) reference[i] *= 1 - lr * c.weight_decay;
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
      const double bias1 = 1 - std::pow(c.beta1, step);
      const double bias2 = 1 - std::pow(c.beta2, step);
      reference[i] -= lr / bias1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bias2) + c.eps);
    }
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(p[i], reference[i], 1e-15) << "step " << step;
  }
  EXPECT_EQ(optimizer.steps_taken(), 5);
}

TEST(GradientNorm, IsTheGlobalL2Norm) {
  std::vector<float> g(10000, 0.0f);
  g[0] = 3.0f;
  g[9999] = 4.0f;
  EXPECT_DOUBLE_EQ(gradient_norm(g), 5.0);
}
