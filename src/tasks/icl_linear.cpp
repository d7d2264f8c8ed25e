#include "attnrank/tasks/icl_linear.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnrank/core/eigen_dense.h"
#include "attnrank/core/error.h"
#include "attnrank/core/parallel.h"
#include "attnrank/core/rng.h"

namespace attnrank {

IclLinearTask::IclLinearTask(const IclLinearConfig& config) : config_(config) {
  if (config.features < 1)
    throw ConfigError("task.features: must be >= 1 (got " + std::to_string(config.features) + ")");
  if (config.examples < 1)
    throw ConfigError("task.examples: must be >= 1 (got " + std::to_string(config.examples) + ")");
  if (!(config.noise >= 0.0) || !std::isfinite(config.noise))
    throw ConfigError("task.noise: must be finite and >= 0 (got " + std::to_string(config.noise) +
                      ")");
}

template <typename T>
void IclLinearTask::generate(uint64_t seed, Stream stream, uint64_t index, int batch, T* inputs,
                             T* targets) const {
  const int m = config_.features;
  const int k = config_.examples;
  const int n_tokens = tokens();
  const int width = input_width();
  const double sigma = config_.noise;
  const size_t per_sample = static_cast<size_t>(n_tokens) * width;
#pragma omp parallel if (worth_parallel(static_cast <size_t>(batch) * per_sample * 4))
  {
    std::vector<double> w(m);
    std::vector<T> x(m);
#pragma omp for schedule(static)
    for (int sample = 0; sample < batch; ++sample) {
      Rng rng(seed, static_cast<uint64_t>(stream), index, static_cast<uint64_t>(sample));
      for (int j = 0; j < m; ++j) w[j] = rng.normal();
      T* in = inputs + static_cast<size_t>(sample) * per_sample;
      T* target = targets + static_cast<size_t>(sample) * n_tokens;
      for (size_t j = 0; j < per_sample; ++j) in[j] = T(0);
      for (int i = 0; i <= k; ++i) {  // example i+1
        double y = 0.0;
        for (int j = 0; j < m; ++j) {
          x[j] = static_cast<T>(rng.normal());
          y += w[j] * double(x[j]);
        }
        y += sigma * rng.normal();
        T* x_token = in + static_cast<size_t>(2 * i) * width;
        for (int j = 0; j < m; ++j) x_token[j] = x[j];
        target[2 * i] = static_cast<T>(y);
        if (i < k) {
          in[static_cast<size_t>(2 * i + 1) * width + m] = static_cast<T>(y);
          target[2 * i + 1] = T(0);
        }
      }
    }
  }
}

template <typename T>
double icl_loss(const IclLinearTask& task, const T* outputs, const T* targets, int batch,
                T* d_outputs) {
  const int n_tokens = task.tokens();
  const double normaliser =
      1.0 / (static_cast<double>(batch) * task.scored_tokens() * task.features());
  std::vector<double> sample_sums(batch);
#pragma omp parallel for schedule( \
    static) if (worth_parallel(static_cast <size_t>(batch) * n_tokens * 4))
  for (int b = 0; b < batch; ++b) {
    double sum = 0.0;
    for (int token = 0; token < n_tokens; ++token) {
      const size_t at = static_cast<size_t>(b) * n_tokens + token;
      const double diff = task.scored(token) ? double(outputs[at]) - double(targets[at]) : 0.0;
      sum += diff * diff;
      if (d_outputs != nullptr) d_outputs[at] = static_cast<T>(2.0 * diff * normaliser);
    }
    sample_sums[b] = sum;
  }
  double total = 0.0;
  for (double sum : sample_sums) total += sum;
  return total * normaliser;
}

IclErrorCurve::IclErrorCurve(int positions) {
  if (positions < 1) throw std::invalid_argument("IclErrorCurve: positions must be >= 1");
  sums_.assign(positions, 0.0);
  counts_.assign(positions, 0);
}

void IclErrorCurve::add(int position, double error) {
  sums_.at(position) += error;
  counts_.at(position) += 1;
}

void IclErrorCurve::merge(const IclErrorCurve& other) {
  if (other.positions() != positions())
    throw std::invalid_argument("IclErrorCurve::merge: different numbers of positions");
  for (int i = 0; i < positions(); ++i) {
    sums_[i] += other.sums_[i];
    counts_[i] += other.counts_[i];
  }
}

std::vector<double> IclErrorCurve::mean() const {
  std::vector<double> result(sums_.size());
  for (size_t i = 0; i < sums_.size(); ++i)
    result[i] = counts_[i] > 0 ? sums_[i] / static_cast<double>(counts_[i])
                               : std::numeric_limits<double>::quiet_NaN();
  return result;
}

namespace {

void check_curve(const IclLinearTask& task, const IclErrorCurve& curve) {
  if (curve.positions() != task.scored_tokens())
    throw std::invalid_argument("IclErrorCurve: " + std::to_string(curve.positions()) +
                                " positions for a task with " +
                                std::to_string(task.scored_tokens()) + " scored tokens");
}

}  // namespace

template <typename T>
void add_icl_errors(const IclLinearTask& task, const T* outputs, const T* targets, int batch,
                    IclErrorCurve& curve) {
  check_curve(task, curve);
  const int n_tokens = task.tokens();
  const double inv_m = 1.0 / task.features();
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < task.scored_tokens(); ++i) {
      const size_t at = static_cast<size_t>(b) * n_tokens + IclLinearTask::query_token(i);
      const double diff = double(outputs[at]) - double(targets[at]);
      curve.add(i, diff * diff * inv_m);
    }
}

template <typename T>
std::vector<double> icl_error_curve(const IclLinearTask& task, const T* outputs, const T* targets,
                                    int batch) {
  IclErrorCurve curve(task);
  add_icl_errors(task, outputs, targets, batch, curve);
  return curve.mean();
}

template <typename T>
std::vector<double> icl_least_squares_predictions(const IclLinearTask& task, const T* inputs) {
  const int m = task.features();
  const int k = task.examples();
  const int width = task.input_width();
  Eigen::MatrixXd xs(k, m);  // row i: x_{i+1}
  Eigen::VectorXd ys(k);
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < m; ++j) xs(i, j) = double(inputs[static_cast<size_t>(2 * i) * width + j]);
    ys(i) = double(inputs[static_cast<size_t>(2 * i + 1) * width + m]);
  }
  std::vector<double> predictions(k + 1, 0.0);  // i = 0: w_hat = 0
  for (int i = 1; i <= k; ++i) {
    const Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod(xs.topRows(i));
    const Eigen::VectorXd w_hat = cod.solve(ys.head(i));
    const T* query = inputs + static_cast<size_t>(2 * i) * width;
    double prediction = 0.0;
    for (int j = 0; j < m; ++j) prediction += double(query[j]) * w_hat(j);
    predictions[i] = prediction;
  }
  return predictions;
}

template <typename T>
void add_least_squares_errors(const IclLinearTask& task, const T* inputs, const T* targets,
                              int batch, IclErrorCurve& curve) {
  check_curve(task, curve);
  const int positions = task.scored_tokens();
  const int n_tokens = task.tokens();
  const size_t per_sample = static_cast<size_t>(n_tokens) * task.input_width();
  const double inv_m = 1.0 / task.features();
  // Per-sequence errors first, summed in a fixed order afterwards, so the curve does not
  // depend on the thread count.
  std::vector<double> errors(static_cast<size_t>(batch) * positions);
  const size_t work =
      static_cast<size_t>(task.examples()) * task.examples() * task.features() * task.features();
#pragma omp parallel for schedule(dynamic) if (worth_parallel(static_cast <size_t>(batch) * work))
  for (int b = 0; b < batch; ++b) {
    const std::vector<double> predictions =
        icl_least_squares_predictions(task, inputs + static_cast<size_t>(b) * per_sample);
    for (int i = 0; i < positions; ++i) {
      const double target =
          double(targets[static_cast<size_t>(b) * n_tokens + IclLinearTask::query_token(i)]);
      const double diff = predictions[i] - target;
      errors[static_cast<size_t>(b) * positions + i] = diff * diff * inv_m;
    }
  }
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < positions; ++i)
      curve.add(i, errors[static_cast<size_t>(b) * positions + i]);
}

double icl_least_squares_expected_error(int features, double noise, int seen) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (features < 1 || seen < 0 || !(noise >= 0.0) || !std::isfinite(noise)) return nan;
  const double m = features;
  const double i = seen;
  if (noise == 0.0) return seen < features ? 1.0 - i / m : 0.0;
  const double s2 = noise * noise;
  if (seen <= features - 2) return (m - i + s2 * (1.0 + i / (m - i - 1.0))) / m;
  if (seen <= features + 1) return std::numeric_limits<double>::infinity();
  return s2 * (1.0 + m / (i - m - 1.0)) / m;
}

template void IclLinearTask::generate<float>(uint64_t, Stream, uint64_t, int, float*, float*) const;
template void IclLinearTask::generate<double>(uint64_t, Stream, uint64_t, int, double*,
                                              double*) const;
template double icl_loss<float>(const IclLinearTask&, const float*, const float*, int, float*);
template double icl_loss<double>(const IclLinearTask&, const double*, const double*, int, double*);
template void add_icl_errors<float>(const IclLinearTask&, const float*, const float*, int,
                                    IclErrorCurve&);
template void add_icl_errors<double>(const IclLinearTask&, const double*, const double*, int,
                                     IclErrorCurve&);
template std::vector<double> icl_error_curve<float>(const IclLinearTask&, const float*,
                                                    const float*, int);
template std::vector<double> icl_error_curve<double>(const IclLinearTask&, const double*,
                                                     const double*, int);
template std::vector<double> icl_least_squares_predictions<float>(const IclLinearTask&,
                                                                  const float*);
template std::vector<double> icl_least_squares_predictions<double>(const IclLinearTask&,
                                                                   const double*);
template void add_least_squares_errors<float>(const IclLinearTask&, const float*, const float*, int,
                                              IclErrorCurve&);
template void add_least_squares_errors<double>(const IclLinearTask&, const double*, const double*,
                                               int, IclErrorCurve&);

}  // namespace attnrank
