// In-context linear regression: generator, loss, error curves, least-squares reference.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attnrank/core/eigen_dense.h"
#include "attnrank/core/error.h"
#include "attnrank/core/threading.h"
#include "attnrank/tasks/icl_linear.h"
#include "gradcheck.h"

using namespace attnrank;

namespace {

IclLinearTask make_task(int features, int examples, double noise) {
  IclLinearConfig c;
  c.features = features;
  c.examples = examples;
  c.noise = noise;
  return IclLinearTask(c);
}

template <typename T>
struct Batch {
  std::vector<T> inputs, targets;
};

template <typename T>
Batch<T> generate(const IclLinearTask& task, uint64_t seed, Stream stream, uint64_t index,
                  int batch) {
  Batch<T> b;
  b.inputs.resize(static_cast<size_t>(batch) * task.tokens() * task.input_width());
  b.targets.resize(static_cast<size_t>(batch) * task.tokens());
  task.generate(seed, stream, index, batch, b.inputs.data(), b.targets.data());
  return b;
}

// Sample mean and standard error of the mean.
struct MeanStat {
  double mean = 0, se = 0;
};
MeanStat mean_stat(const std::vector<double>& v) {
  double sum = 0, squares = 0;
  for (double x : v) sum += x;
  const double mean = sum / v.size();
  for (double x : v) squares += (x - mean) * (x - mean);
  return {mean, std::sqrt(squares / (v.size() - 1) / v.size())};
}

// x_{i+1} of sequence b as a row vector (double).
template <typename T>
Eigen::RowVectorXd x_of(const IclLinearTask& task, const std::vector<T>& inputs, int b, int i) {
  Eigen::RowVectorXd x(task.features());
  const size_t base = (static_cast<size_t>(b) * task.tokens() + 2 * i) * task.input_width();
  for (int j = 0; j < task.features(); ++j) x(j) = double(inputs[base + j]);
  return x;
}

// y_{i+1} of sequence b, read from its target (defined for i = 0..k).
template <typename T>
double y_of(const IclLinearTask& task, const std::vector<T>& targets, int b, int i) {
  return double(targets[static_cast<size_t>(b) * task.tokens() + 2 * i]);
}

// w recovered from the first m examples of sequence b (noise 0, k >= m).
template <typename T>
Eigen::VectorXd recover_w(const IclLinearTask& task, const Batch<T>& batch, int b) {
  const int m = task.features();
  Eigen::MatrixXd xs(m, m);
  Eigen::VectorXd ys(m);
  for (int i = 0; i < m; ++i) {
    xs.row(i) = x_of(task, batch.inputs, b, i);
    ys(i) = y_of(task, batch.targets, b, i);
  }
  return xs.colPivHouseholderQr().solve(ys);
}

}  // namespace

TEST(IclLinear, ShapesAndScoredTokens) {
  const IclLinearTask task = make_task(3, 4, 0.5);
  EXPECT_EQ(task.tokens(), 9);
  EXPECT_EQ(task.input_width(), 4);
  EXPECT_EQ(task.scored_tokens(), 5);
  for (int t = 0; t < task.tokens(); ++t) EXPECT_EQ(task.scored(t), t % 2 == 0) << t;
  EXPECT_FALSE(task.scored(-1));
  EXPECT_FALSE(task.scored(9));
  EXPECT_DOUBLE_EQ(task.trivial_loss(), 1.0 + 0.25 / 3);
}

TEST(IclLinear, TokenLayoutAndTargets) {
  const int m = 3, k = 5, batch = 16;
  const IclLinearTask task = make_task(m, k, 0.3);
  const auto data = generate<float>(task, 4, Stream::kTrain, 2, batch);
  const int width = task.input_width();
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < task.tokens(); ++t) {
      const float* token =
          data.inputs.data() + (static_cast<size_t>(b) * task.tokens() + t) * width;
      const float target = data.targets[static_cast<size_t>(b) * task.tokens() + t];
      if (t % 2 == 0) {  // x token: (x, 0), target y
        EXPECT_EQ(token[m], 0.0f);
        double norm = 0;
        for (int j = 0; j < m; ++j) norm += double(token[j]) * token[j];
        EXPECT_GT(norm, 0.0);
        EXPECT_NE(target, 0.0f);
        if (t + 1 < task.tokens()) {  // the following y token carries the same y
          EXPECT_EQ(token[width + m], target);
        }
      } else {  // y token: (0, ..., 0, y), target 0
        for (int j = 0; j < m; ++j) EXPECT_EQ(token[j], 0.0f);
        EXPECT_NE(token[m], 0.0f);
        EXPECT_EQ(target, 0.0f);
      }
    }
  }
}

TEST(IclLinear, GeneratorStatistics) {
  const int m = 4, k = 6, batch = 20000;
  const double sigma = 0.5;
  const IclLinearTask task = make_task(m, k, sigma);
  const auto data = generate<double>(task, 11, Stream::kTrain, 0, batch);
  // x entries: mean 0, variance 1 (all entries are independent).
  std::vector<double> xs, x_squares;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i <= k; ++i) {
      const Eigen::RowVectorXd x = x_of(task, data.inputs, b, i);
      for (int j = 0; j < m; ++j) {
        xs.push_back(x(j));
        x_squares.push_back(x(j) * x(j));
      }
    }
  const MeanStat x_mean = mean_stat(xs), x_var = mean_stat(x_squares);
  EXPECT_NEAR(x_mean.mean, 0.0, 5 * x_mean.se);
  EXPECT_NEAR(x_var.mean, 1.0, 5 * x_var.se);
  EXPECT_LT(x_var.se, 0.01);
  // y: mean 0, variance m + sigma^2. One y (the query) per sequence, so samples are
  // independent.
  std::vector<double> ys, y_squares;
  for (int b = 0; b < batch; ++b) {
    const double y = y_of(task, data.targets, b, k);
    ys.push_back(y);
    y_squares.push_back(y * y);
  }
  const MeanStat y_mean = mean_stat(ys), y_var = mean_stat(y_squares);
  EXPECT_NEAR(y_mean.mean, 0.0, 5 * y_mean.se);
  EXPECT_NEAR(y_var.mean, m + sigma * sigma, 5 * y_var.se);
  EXPECT_LT(y_var.se, 0.1);
  // The same batch without noise has the same x and w; the difference of the ys is
  // sigma * eps with eps ~ N(0, 1).
  const auto clean = generate<double>(make_task(m, k, 0.0), 11, Stream::kTrain, 0, batch);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i <= k; ++i)
      ASSERT_EQ(x_of(task, clean.inputs, b, i), x_of(task, data.inputs, b, i));
  std::vector<double> noise_squares;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i <= k; ++i) {
      const double e = (y_of(task, data.targets, b, i) - y_of(task, clean.targets, b, i)) / sigma;
      noise_squares.push_back(e * e);
    }
  const MeanStat noise_var = mean_stat(noise_squares);
  EXPECT_NEAR(noise_var.mean, 1.0, 5 * noise_var.se);
}

TEST(IclLinear, NoiselessTargetsAreLinearWithFreshWPerSequence) {
  const int m = 5, k = 8, batch = 64;
  const IclLinearTask task = make_task(m, k, 0.0);
  const auto data = generate<float>(task, 3, Stream::kTrain, 0, batch);
  const auto next = generate<float>(task, 3, Stream::kTrain, 1, batch);
  std::vector<Eigen::VectorXd> ws;
  for (int b = 0; b < batch; ++b) {
    const Eigen::VectorXd w = recover_w(task, data, b);
    // Every later example, the query included, follows the same w.
    for (int i = m; i <= k; ++i) {
      const double y = y_of(task, data.targets, b, i);
      EXPECT_NEAR(x_of(task, data.inputs, b, i).dot(w), y, 1e-4 * std::max(1.0, std::abs(y)))
          << "sequence " << b << " example " << i;
    }
    ws.push_back(w);
  }
  for (int a = 0; a < batch; ++a)
    for (int b = a + 1; b < batch; ++b) EXPECT_GT((ws[a] - ws[b]).norm(), 1e-3) << a << " " << b;
  for (int b = 0; b < batch; ++b)
    EXPECT_GT((ws[b] - recover_w(task, next, b)).norm(), 1e-3) << "batch 0 vs 1, sequence " << b;
}

TEST(IclLinear, BatchIsIndependentOfThreadCount) {
  const IclLinearTask task = make_task(8, 10, 0.2);
  const int batch = 128;  // large enough for the parallel region
  set_threads(1);
  const auto one = generate<float>(task, 7, Stream::kTrain, 123, batch);
  IclErrorCurve ls_one(task);
  add_least_squares_errors(task, one.inputs.data(), one.targets.data(), batch, ls_one);
  set_threads(2);
  const auto two = generate<float>(task, 7, Stream::kTrain, 123, batch);
  IclErrorCurve ls_two(task);
  add_least_squares_errors(task, two.inputs.data(), two.targets.data(), batch, ls_two);
  set_threads(0);
  EXPECT_EQ(one.inputs, two.inputs);
  EXPECT_EQ(one.targets, two.targets);
  EXPECT_EQ(ls_one.sums(), ls_two.sums());
  EXPECT_EQ(ls_one.counts(), ls_two.counts());
}

TEST(IclLinear, StreamsSeedsAndIndicesDiffer) {
  const IclLinearTask task = make_task(4, 3, 0.0);
  const auto a = generate<float>(task, 1, Stream::kTrain, 0, 4);
  const auto b = generate<float>(task, 1, Stream::kTest, 0, 4);
  const auto c = generate<float>(task, 2, Stream::kTrain, 0, 4);
  const auto d = generate<float>(task, 1, Stream::kTrain, 1, 4);
  const auto again = generate<float>(task, 1, Stream::kTrain, 0, 4);
  EXPECT_NE(a.inputs, b.inputs);
  EXPECT_NE(a.inputs, c.inputs);
  EXPECT_NE(a.inputs, d.inputs);
  EXPECT_NE(a.targets, b.targets);
  EXPECT_EQ(a.inputs, again.inputs);
  EXPECT_EQ(a.targets, again.targets);
}

TEST(IclLinear, LossByHand) {
  // m = 2, k = 1: tokens x_1, y_1, x_2; scored tokens 0 and 2.
  const IclLinearTask task = make_task(2, 1, 0.0);
  const std::vector<float> outputs = {1.0f, 5.0f, 2.0f};
  const std::vector<float> targets = {0.5f, 0.0f, -1.0f};
  std::vector<float> d(3, -7.0f);
  // ((1 - 0.5)^2 + (2 + 1)^2) / m / (B (k+1)) = 9.25 / 2 / 2.
  EXPECT_DOUBLE_EQ(icl_loss(task, outputs.data(), targets.data(), 1, d.data()), 2.3125);
  // 2 (out - y) / (B (k+1) m) = (out - y) / 2.
  EXPECT_FLOAT_EQ(d[0], 0.25f);
  EXPECT_EQ(d[1], 0.0f);
  EXPECT_FLOAT_EQ(d[2], 1.5f);
  EXPECT_DOUBLE_EQ(icl_loss(task, outputs.data(), targets.data(), 1, static_cast<float*>(nullptr)),
                   2.3125);
  // The per-position curve of the same outputs.
  const std::vector<double> curve = icl_error_curve(task, outputs.data(), targets.data(), 1);
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_DOUBLE_EQ(curve[0], 0.125);
  EXPECT_DOUBLE_EQ(curve[1], 4.5);
}

TEST(IclLinear, LossGradientMatchesFiniteDifferences) {
  const IclLinearTask task = make_task(3, 4, 0.1);
  const int batch = 3;
  const auto data = generate<double>(task, 5, Stream::kTrain, 0, batch);
  std::vector<double> targets = data.targets;
  // Garbage at unscored positions must be ignored by the loss.
  for (size_t i = 1; i < targets.size(); i += 2) targets[i] = 3.0;
  std::vector<double> outputs = attnrank::testing::random_vector(targets.size(), 17);
  std::vector<double> d(outputs.size());
  icl_loss(task, outputs.data(), targets.data(), batch, d.data());
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < task.tokens(); ++t)
      if (!task.scored(t)) {
        EXPECT_EQ(d[static_cast<size_t>(b) * task.tokens() + t], 0.0);
      } else {
        EXPECT_NE(d[static_cast<size_t>(b) * task.tokens() + t], 0.0);
      }
  attnrank::testing::expect_gradient_matches(
      "icl_loss", outputs, d,
      [&] {
        return icl_loss(task, outputs.data(), targets.data(), batch, static_cast<double*>(nullptr));
      },
      100);
}

TEST(IclLinear, PredictingZeroScoresTrivialLoss) {
  const int m = 6, k = 5, batch = 20000;
  const IclLinearTask task = make_task(m, k, 0.7);
  const auto data = generate<double>(task, 9, Stream::kTest, 0, batch);
  const std::vector<double> zeros(data.targets.size(), 0.0);
  // Per-sequence losses are independent; their mean is the batch loss.
  std::vector<double> per_sequence(batch);
  for (int b = 0; b < batch; ++b) {
    const size_t at = static_cast<size_t>(b) * task.tokens();
    per_sequence[b] = icl_loss(task, zeros.data() + at, data.targets.data() + at, 1,
                               static_cast<double*>(nullptr));
  }
  const MeanStat stat = mean_stat(per_sequence);
  EXPECT_NEAR(
      icl_loss(task, zeros.data(), data.targets.data(), batch, static_cast<double*>(nullptr)),
      stat.mean, 1e-12);
  EXPECT_NEAR(stat.mean, task.trivial_loss(), 5 * stat.se);
  EXPECT_LT(stat.se, 0.02);
}

TEST(IclLinear, ErrorCurveAccumulatesOverBatches) {
  const IclLinearTask task = make_task(3, 4, 0.2);
  const int batch = 10;
  const auto first = generate<float>(task, 1, Stream::kTest, 0, batch);
  const auto second = generate<float>(task, 1, Stream::kTest, 1, batch);
  const std::vector<float> out1(first.targets.size(), 0.5f), out2(second.targets.size(), -0.25f);
  IclErrorCurve curve(task);
  add_icl_errors(task, out1.data(), first.targets.data(), batch, curve);
  IclErrorCurve other(task.scored_tokens());
  add_icl_errors(task, out2.data(), second.targets.data(), batch, other);
  curve.merge(other);
  const std::vector<double> mean = curve.mean();
  ASSERT_EQ(mean.size(), 5u);
  for (int i = 0; i <= task.examples(); ++i) {
    EXPECT_EQ(curve.counts()[i], 2 * batch);
    double expected = 0;
    for (int b = 0; b < batch; ++b) {
      expected += std::pow(0.5 - y_of(task, first.targets, b, i), 2) / 3;
      expected += std::pow(-0.25 - y_of(task, second.targets, b, i), 2) / 3;
    }
    EXPECT_NEAR(mean[i], expected / (2 * batch), 1e-6) << i;
  }
  // The loss is the mean of the one-batch curve over positions.
  const std::vector<double> one = icl_error_curve(task, out1.data(), first.targets.data(), batch);
  double average = 0;
  for (double e : one) average += e / one.size();
  EXPECT_NEAR(
      icl_loss(task, out1.data(), first.targets.data(), batch, static_cast<float*>(nullptr)),
      average, 1e-12);
  // An empty curve is NaN; mismatched curves are rejected.
  EXPECT_TRUE(std::isnan(IclErrorCurve(3).mean()[0]));
  EXPECT_THROW(curve.merge(IclErrorCurve(3)), std::invalid_argument);
  IclErrorCurve wrong(3);
  EXPECT_THROW(add_icl_errors(task, out1.data(), first.targets.data(), batch, wrong),
               std::invalid_argument);
}

TEST(IclLinear, LeastSquaresPredictionMatchesExplicitPseudoInverse) {
  const int m = 5, k = 10;
  const IclLinearTask task = make_task(m, k, 0.3);
  const auto data = generate<double>(task, 21, Stream::kTest, 4, 2);
  for (int b = 0; b < 2; ++b) {
    const double* inputs = data.inputs.data() + static_cast<size_t>(b) * task.tokens() * (m + 1);
    const std::vector<double> predictions = icl_least_squares_predictions(task, inputs);
    ASSERT_EQ(predictions.size(), static_cast<size_t>(k + 1));
    EXPECT_EQ(predictions[0], 0.0);
    for (int i = 1; i <= k; ++i) {
      Eigen::MatrixXd xs(i, m);
      Eigen::VectorXd ys(i);
      for (int r = 0; r < i; ++r) {
        xs.row(r) = x_of(task, data.inputs, b, r);
        ys(r) = y_of(task, data.targets, b, r);
      }
      // i < m: X^T (X X^T)^{-1} y; i >= m: normal equations (X^T X)^{-1} X^T y.
      const Eigen::VectorXd w =
          i < m ? Eigen::VectorXd(xs.transpose() * (xs * xs.transpose()).inverse() * ys)
                : Eigen::VectorXd((xs.transpose() * xs).inverse() * xs.transpose() * ys);
      const double expected = x_of(task, data.inputs, b, i).dot(w);
      EXPECT_NEAR(predictions[i], expected, 1e-8 * std::max(1.0, std::abs(expected)))
          << "sequence " << b << " after " << i << " examples";
    }
    // The batch reference scores exactly these predictions.
    IclErrorCurve curve(task);
    add_least_squares_errors(
        task, inputs, data.targets.data() + static_cast<size_t>(b) * task.tokens(), 1, curve);
    for (int i = 0; i <= k; ++i)
      EXPECT_DOUBLE_EQ(curve.mean()[i],
                       std::pow(predictions[i] - y_of(task, data.targets, b, i), 2) / m);
  }
}

TEST(IclLinear, LeastSquaresWithoutNoiseMatchesClosedForm) {
  const int m = 5, k = 10, batch = 2000;
  const IclLinearTask task = make_task(m, k, 0.0);
  // Two batches through one accumulator, per-sequence errors kept for the error bars.
  IclErrorCurve curve(task);
  std::vector<std::vector<double>> errors(k + 1);
  for (uint64_t index = 0; index < 2; ++index) {
    const auto data = generate<double>(task, 8, Stream::kTest, index, batch);
    add_least_squares_errors(task, data.inputs.data(), data.targets.data(), batch, curve);
    for (int b = 0; b < batch; ++b) {
      IclErrorCurve one(task);
      const size_t at = static_cast<size_t>(b) * task.tokens();
      add_least_squares_errors(task, data.inputs.data() + at * task.input_width(),
                               data.targets.data() + at, 1, one);
      for (int i = 0; i <= k; ++i) errors[i].push_back(one.sums()[i]);
    }
  }
  const std::vector<double> mean = curve.mean();
  for (int i = 0; i <= k; ++i) {
    const double expected = icl_least_squares_expected_error(m, 0.0, i);
    EXPECT_EQ(curve.counts()[i], 2 * batch);
    if (i < m) {
      EXPECT_DOUBLE_EQ(expected, 1.0 - double(i) / m);
      const MeanStat stat = mean_stat(errors[i]);
      EXPECT_NEAR(stat.mean, mean[i], 1e-9);
      // Error bar: 5 standard errors; the error has variance < 3 (m-i)(m-i+2)/m^2.
      EXPECT_LT(stat.se, std::sqrt(3.0 * (m - i) * (m - i + 2) / (m * m) / (2 * batch)));
      EXPECT_NEAR(mean[i], expected, 5 * stat.se) << "after " << i << " examples";
    } else {
      EXPECT_EQ(expected, 0.0);
      EXPECT_LT(mean[i], 1e-6) << "after " << i << " examples";
    }
  }
}

TEST(IclLinear, LeastSquaresWithNoiseMatchesClosedForm) {
  // m = 8, k = 16: the error has finite variance for i <= m-4 and i >= m+4 (5-sigma
  // check); for m-3 <= i <= m-2 and i = m+2, m+3 the mean is finite but the variance
  // is not, so the sample mean converges slowly: checked to 15%. For m-1 <= i <= m+1 the
  // expectation is infinite.
  const int m = 8, k = 16, batch = 20000;
  const double sigma = 0.5;
  const IclLinearTask task = make_task(m, k, sigma);
  const auto data = generate<double>(task, 13, Stream::kTest, 0, batch);
  std::vector<std::vector<double>> errors(k + 1);
  IclErrorCurve curve(task);
  add_least_squares_errors(task, data.inputs.data(), data.targets.data(), batch, curve);
  for (int b = 0; b < batch; ++b) {
    const size_t at = static_cast<size_t>(b) * task.tokens();
    const std::vector<double> predictions =
        icl_least_squares_predictions(task, data.inputs.data() + at * task.input_width());
    for (int i = 0; i <= k; ++i)
      errors[i].push_back(std::pow(predictions[i] - data.targets[at + 2 * i], 2) / m);
  }
  for (int i = 0; i <= k; ++i) {
    const double expected = icl_least_squares_expected_error(m, sigma, i);
    const MeanStat stat = mean_stat(errors[i]);
    EXPECT_NEAR(curve.mean()[i], stat.mean, 1e-9 * std::max(1.0, stat.mean));
    if (i >= m - 1 && i <= m + 1) {
      EXPECT_TRUE(std::isinf(expected)) << i;
    } else if (i <= m - 4 || i >= m + 4) {
      EXPECT_NEAR(stat.mean, expected, 5 * stat.se) << "after " << i << " examples";
      EXPECT_LT(stat.se, 0.02 * expected) << i;
    } else {
      EXPECT_NEAR(stat.mean, expected, 0.15 * expected) << "after " << i << " examples";
    }
  }
}

TEST(IclLinear, ExpectedLeastSquaresErrorClosedForms) {
  // Noise 0: 1 - i/m, then 0.
  EXPECT_DOUBLE_EQ(icl_least_squares_expected_error(5, 0.0, 0), 1.0);
  EXPECT_DOUBLE_EQ(icl_least_squares_expected_error(5, 0.0, 2), 0.6);
  EXPECT_EQ(icl_least_squares_expected_error(5, 0.0, 5), 0.0);
  EXPECT_EQ(icl_least_squares_expected_error(5, 0.0, 40), 0.0);
  // Noise: i = 0 is the trivial loss; i <= m-2 under-parameterised min-norm.
  const double s2 = 0.25;
  EXPECT_DOUBLE_EQ(icl_least_squares_expected_error(8, 0.5, 0),
                   make_task(8, 3, 0.5).trivial_loss());
  EXPECT_DOUBLE_EQ(icl_least_squares_expected_error(8, 0.5, 3), (5 + s2 * (1 + 3.0 / 4)) / 8);
  for (int i = 7; i <= 9; ++i) EXPECT_TRUE(std::isinf(icl_least_squares_expected_error(8, 0.5, i)));
  EXPECT_DOUBLE_EQ(icl_least_squares_expected_error(8, 0.5, 10), s2 * (1 + 8.0) / 8);
  EXPECT_DOUBLE_EQ(icl_least_squares_expected_error(8, 0.5, 19), s2 * (1 + 8.0 / 10) / 8);
  // Tends to the noise floor sigma^2/m.
  EXPECT_NEAR(icl_least_squares_expected_error(8, 0.5, 1000000), s2 / 8, 1e-6);
  // Invalid arguments.
  EXPECT_TRUE(std::isnan(icl_least_squares_expected_error(0, 0.0, 1)));
  EXPECT_TRUE(std::isnan(icl_least_squares_expected_error(5, -1.0, 1)));
  EXPECT_TRUE(std::isnan(icl_least_squares_expected_error(5, 0.0, -1)));
  EXPECT_TRUE(std::isnan(icl_least_squares_expected_error(5, NAN, 1)));
}

TEST(IclLinear, RejectsBadConfigNamingTheKey) {
  const auto expect_error = [](int features, int examples, double noise, const std::string& key) {
    try {
      make_task(features, examples, noise);
      ADD_FAILURE() << "no ConfigError for " << key;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_error(0, 4, 0.0, "task.features");
  expect_error(-3, 4, 0.0, "task.features");
  expect_error(5, 0, 0.0, "task.examples");
  expect_error(5, -1, 0.0, "task.examples");
  expect_error(5, 4, -0.1, "task.noise");
  expect_error(5, 4, NAN, "task.noise");
  expect_error(5, 4, INFINITY, "task.noise");
  EXPECT_NO_THROW(make_task(1, 1, 0.0));
}
