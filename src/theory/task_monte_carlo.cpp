#include "task_monte_carlo.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "attnrank/core/error.h"

namespace attnrank {

MonteCarloEstimate estimate_from_sums(double sum, double sum_squares, int64_t samples) {
  MonteCarloEstimate estimate;
  estimate.samples = samples;
  estimate.mean = sum / samples;
  const double variance =
      std::max(0.0, (sum_squares - samples * estimate.mean * estimate.mean) / (samples - 1));
  estimate.standard_error = std::sqrt(variance / samples);
  return estimate;
}

MonteCarloEstimate task_mse_monte_carlo(Transformer<double>& model, const PointTask& task,
                                        int64_t samples, uint64_t seed) {
  if (samples < 2) throw ConfigError("monte carlo: need at least 2 samples");
  const int tokens = task.tokens(), dim = task.dim();
  const int batch = static_cast<int>(std::min<int64_t>(samples, 1024));
  std::vector<double> x(static_cast<size_t>(batch) * tokens * dim), target(x.size()), y(x.size());
  double sum = 0.0, sum_squares = 0.0;
  int64_t done = 0;
  for (uint64_t index = 0; done < samples; ++index) {
    const int rows = static_cast<int>(std::min<int64_t>(batch, samples - done));
    task.generate(seed, Stream::kTest, index, batch, x.data(), target.data());
    model.forward(x.data(), batch, y.data());
    for (int s = 0; s < rows; ++s) {
      double error = 0.0;
      for (int token = task.loss_begin(); token < task.loss_end(); ++token) {
        const size_t at = (static_cast<size_t>(s) * tokens + token) * dim;
        for (int e = 0; e < dim; ++e)
          error += (y[at + e] - target[at + e]) * (y[at + e] - target[at + e]);
      }
      error /= task.loss_tokens();
      sum += error;
      sum_squares += error * error;
    }
    done += rows;
  }
  return estimate_from_sums(sum, sum_squares, done);
}

}  // namespace attnrank
