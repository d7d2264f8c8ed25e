#include "attnrank/tasks/point_task.h"

#include <cmath>
#include <string>
#include <vector>

#include "attnrank/core/error.h"
#include "attnrank/core/parallel.h"
#include "attnrank/core/rng.h"
#include "attnrank/core/vectors.h"

namespace attnrank {

namespace {

// Dot products closer than this count as ties (orthonormal sets are exact ties up to
// rounding); ties go to the lowest index.
constexpr double kTieTolerance = 1e-9;

// Random orthonormal set: Gram-Schmidt (twice, for accuracy) on Gaussian vectors,
// which gives a Haar-distributed frame.
void orthonormal_points(Rng& rng, double* points, int count, int dim) {
  for (int p = 0; p < count; ++p) {
    double* v = points + static_cast<size_t>(p) * dim;
    for (;;) {
      for (int i = 0; i < dim; ++i) v[i] = rng.normal();
      for (int pass = 0; pass < 2; ++pass) {
        for (int q = 0; q < p; ++q) {
          const double* u = points + static_cast<size_t>(q) * dim;
          const double proj = dot(v, u, dim);
          for (int i = 0; i < dim; ++i) v[i] -= proj * u[i];
        }
      }
      const double norm = std::sqrt(dot(v, v, dim));
      if (norm > 1e-6) {
        for (int i = 0; i < dim; ++i) v[i] /= norm;
        break;
      }
    }
  }
}

}  // namespace

PointTask::PointTask(const TaskConfig& config, int dim) : config_(config), dim_(dim) {
  if (!is_point_task(config.name))
    throw ConfigError("task.name: '" + std::string(name_of(config.name)) +
                      "' is not a point task (farthest | nearest)");
  if (config.points < (config.name == TaskKind::kFarthest ? 2 : 1))
    throw ConfigError("task.points: too few points (" + std::to_string(config.points) + ")");
  if (config.name == TaskKind::kNearest && config.queries < 1)
    throw ConfigError("task.queries: must be >= 1");
  if (config.distribution == PointDistribution::kOrthogonal && config.points > dim)
    throw ConfigError("task.points: orthogonal distribution needs points (" +
                      std::to_string(config.points) + ") <= model.dim (" + std::to_string(dim) +
                      ")");
}

int PointTask::tokens() const {
  return config_.points + (config_.name == TaskKind::kNearest ? config_.queries : 0);
}
int PointTask::loss_begin() const {
  return config_.name == TaskKind::kNearest ? config_.points : 0;
}
int PointTask::loss_end() const {
  return tokens();
}

template <typename T>
void PointTask::generate(uint64_t seed, Stream stream, uint64_t index, int batch, T* inputs,
                         T* targets) const {
  const int n = config_.points;
  const int tokens_per_sample = tokens();
  const int d = dim_;
  const bool farthest = config_.name == TaskKind::kFarthest;
#pragma omp parallel if (worth_parallel(static_cast <size_t>(batch) * tokens_per_sample * d * 8))
  {
    std::vector<double> points(static_cast<size_t>(tokens_per_sample) * d);
#pragma omp for schedule(static)
    for (int sample = 0; sample < batch; ++sample) {
      Rng rng(seed, static_cast<uint64_t>(stream), index, static_cast<uint64_t>(sample));
      if (config_.distribution == PointDistribution::kOrthogonal) {
        orthonormal_points(rng, points.data(), n, d);
      } else {
        for (int p = 0; p < n; ++p)
          random_unit_vector(rng, points.data() + static_cast<size_t>(p) * d, d);
      }
      for (int p = n; p < tokens_per_sample; ++p)  // nearest: uniform queries
        random_unit_vector(rng, points.data() + static_cast<size_t>(p) * d, d);

      const size_t base = static_cast<size_t>(sample) * tokens_per_sample * d;
      for (size_t i = 0; i < points.size(); ++i) {
        inputs[base + i] = static_cast<T>(points[i]);
        targets[base + i] = T(0);
      }
      for (int token = loss_begin(); token < loss_end(); ++token) {
        const double* x = points.data() + static_cast<size_t>(token) * d;
        int best = -1;
        double best_score = 0.0;
        for (int j = 0; j < n; ++j) {
          // Farthest: minimise the dot product; nearest: maximise it.
          const double score = farthest ? -dot(x, points.data() + static_cast<size_t>(j) * d, d)
                                        : dot(x, points.data() + static_cast<size_t>(j) * d, d);
          if (best < 0 || score > best_score + kTieTolerance) {
            best = j;
            best_score = score;
          }
        }
        for (int i = 0; i < d; ++i)
          targets[base + static_cast<size_t>(token) * d + i] =
              static_cast<T>(points[static_cast<size_t>(best) * d + i]);
      }
    }
  }
}

template <typename T>
double squared_error_loss(const T* output, const T* target, int batch, int tokens, int dim,
                          int loss_begin, int loss_end, T* d_output) {
  const int scored = loss_end - loss_begin;
  const double normaliser = 1.0 / (static_cast<double>(batch) * scored);
  std::vector<double> sample_sums(batch);
#pragma omp parallel for schedule( \
    static) if (worth_parallel(static_cast <size_t>(batch) * tokens * dim))
  for (int b = 0; b < batch; ++b) {
    double sum = 0.0;
    for (int token = 0; token < tokens; ++token) {
      const size_t at = (static_cast<size_t>(b) * tokens + token) * dim;
      const bool is_scored = token >= loss_begin && token < loss_end;
      for (int i = 0; i < dim; ++i) {
        const double diff = is_scored ? double(output[at + i]) - double(target[at + i]) : 0.0;
        sum += diff * diff;
        if (d_output != nullptr) d_output[at + i] = static_cast<T>(2.0 * diff * normaliser);
      }
    }
    sample_sums[b] = sum;
  }
  double total = 0.0;
  for (double sum : sample_sums) total += sum;
  return total * normaliser;
}

template void PointTask::generate<float>(uint64_t, Stream, uint64_t, int, float*, float*) const;
template void PointTask::generate<double>(uint64_t, Stream, uint64_t, int, double*, double*) const;
template double squared_error_loss<float>(const float*, const float*, int, int, int, int, int,
                                          float*);
template double squared_error_loss<double>(const double*, const double*, int, int, int, int, int,
                                           double*);

}  // namespace attnrank
