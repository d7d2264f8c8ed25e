// Data streams, targets and the loss of the point tasks.
#include <gtest/gtest.h>

#include <cmath>

#include "attnrank/core/error.h"
#include "attnrank/core/threading.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/train/objective.h"
#include "gradcheck.h"

using namespace attnrank;

namespace {

TaskConfig task_config(const char* name, int points, int queries, const char* distribution) {
  TaskConfig c;
  c.name = *choice_from_name<TaskKind>(name);
  c.points = points;
  c.queries = queries;
  c.distribution = *choice_from_name<PointDistribution>(distribution);
  return c;
}

double dot(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += double(a[i]) * b[i];
  return s;
}

}  // namespace

TEST(PointTask, BatchIsIndependentOfThreadCount) {
  const PointTask task(task_config("farthest", 16, 1, "uniform"), 64);
  const size_t n = 32 * task.tokens() * task.dim();
  std::vector<float> in1(n), t1(n), in2(n), t2(n);
  set_threads(1);
  task.generate(7, Stream::kTrain, 123, 32, in1.data(), t1.data());
  set_threads(2);
  task.generate(7, Stream::kTrain, 123, 32, in2.data(), t2.data());
  EXPECT_EQ(in1, in2);
  EXPECT_EQ(t1, t2);
}

TEST(PointTask, StreamsSeedsAndIndicesDiffer) {
  const PointTask task(task_config("farthest", 4, 1, "uniform"), 8);
  const size_t n = 4 * task.tokens() * task.dim();
  std::vector<float> a(n), b(n), c(n), d(n), targets(n);
  task.generate(1, Stream::kTrain, 0, 4, a.data(), targets.data());
  task.generate(1, Stream::kTest, 0, 4, b.data(), targets.data());
  task.generate(2, Stream::kTrain, 0, 4, c.data(), targets.data());
  task.generate(1, Stream::kTrain, 1, 4, d.data(), targets.data());
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
}

TEST(PointTask, FarthestTargetsAreTheArgminOfDotProducts) {
  const int d = 8, points = 6, batch = 20;
  const PointTask task(task_config("farthest", points, 1, "uniform"), d);
  ASSERT_EQ(task.tokens(), points);
  ASSERT_EQ(task.loss_begin(), 0);
  std::vector<float> in(batch * points * d), targets(in.size());
  task.generate(3, Stream::kTrain, 5, batch, in.data(), targets.data());
  for (int b = 0; b < batch; ++b) {
    const float* x = in.data() + b * points * d;
    for (int i = 0; i < points; ++i) {
      EXPECT_NEAR(dot(x + i * d, x + i * d, d), 1.0, 1e-5);
      int best = 0;
      for (int j = 1; j < points; ++j)
        if (dot(x + i * d, x + j * d, d) < dot(x + i * d, x + best * d, d)) best = j;
      for (int k = 0; k < d; ++k) EXPECT_EQ(targets[(b * points + i) * d + k], x[best * d + k]);
    }
  }
}

TEST(PointTask, NearestScoresOnlyQueriesAndMasksKeys) {
  const int d = 5, points = 4, queries = 3, batch = 10;
  const PointTask task(task_config("nearest", points, queries, "uniform"), d);
  EXPECT_EQ(task.tokens(), points + queries);
  EXPECT_EQ(task.loss_begin(), points);
  EXPECT_EQ(task.loss_end(), points + queries);
  const SequenceSpec spec = point_sequence(task);
  EXPECT_EQ(spec.mask, AttentionMask::kPrefix);
  EXPECT_EQ(spec.key_limit, points);
  std::vector<float> in(batch * task.tokens() * d), targets(in.size());
  task.generate(3, Stream::kTrain, 0, batch, in.data(), targets.data());
  for (int b = 0; b < batch; ++b) {
    const float* x = in.data() + b * task.tokens() * d;
    for (int t = 0; t < points; ++t)
      for (int k = 0; k < d; ++k) EXPECT_EQ(targets[(b * task.tokens() + t) * d + k], 0.0f);
    for (int q = points; q < task.tokens(); ++q) {
      int best = 0;
      for (int j = 1; j < points; ++j)
        if (dot(x + q * d, x + j * d, d) > dot(x + q * d, x + best * d, d)) best = j;
      for (int k = 0; k < d; ++k)
        EXPECT_EQ(targets[(b * task.tokens() + q) * d + k], x[best * d + k]);
    }
  }
}

TEST(PointTask, OrthogonalPointsAreOrthonormal) {
  const int d = 6, points = 6;
  const PointTask task(task_config("nearest", points, 2, "orthogonal"), d);
  std::vector<float> in(4 * task.tokens() * d), targets(in.size());
  task.generate(9, Stream::kTrain, 0, 4, in.data(), targets.data());
  for (int b = 0; b < 4; ++b) {
    const float* x = in.data() + b * task.tokens() * d;
    for (int i = 0; i < points; ++i)
      for (int j = 0; j < points; ++j)
        EXPECT_NEAR(dot(x + i * d, x + j * d, d), i == j ? 1.0 : 0.0, 1e-5);
  }
}

TEST(PointTask, RejectsImpossibleConfigs) {
  EXPECT_THROW(PointTask(task_config("farthest", 9, 1, "orthogonal"), 8), ConfigError);
  EXPECT_THROW(PointTask(task_config("lm", 4, 1, "uniform"), 8), ConfigError);  // not a point task
  EXPECT_THROW(PointTask(task_config("farthest", 1, 1, "uniform"), 8), ConfigError);
  EXPECT_THROW(PointTask(task_config("nearest", 4, 0, "uniform"), 8), ConfigError);
}

TEST(SquaredErrorLoss, ValueAndGradient) {
  // Sum over coordinates, mean over scored tokens and batch.
  const int batch = 2, tokens = 3, dim = 2;
  std::vector<double> out = {1, 2, 3, 4, 5, 6, 0, 0, 1, 1, 2, 2};
  std::vector<double> target(12, 0.0);
  std::vector<double> grad(12);
  const double loss =
      squared_error_loss(out.data(), target.data(), batch, tokens, dim, 1, 3, grad.data());
  // scored tokens: 1 and 2 of each sample: (9+16)+(25+36)+(1+1)+(4+4) = 96, over 4 tokens
  EXPECT_DOUBLE_EQ(loss, 96.0 / 4.0);
  EXPECT_DOUBLE_EQ(grad[0], 0.0);
  EXPECT_DOUBLE_EQ(grad[2], 2.0 * 3.0 / 4.0);
  auto loss_of = [&] {
    return squared_error_loss(out.data(), target.data(), batch, tokens, dim, 1, 3,
                              static_cast<double*>(nullptr));
  };
  attnrank::testing::expect_gradient_matches("mse", out, grad, loss_of, 12);
}
