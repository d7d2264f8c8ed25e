#include "attnrank/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "attnrank/core/parallel.h"
#include "attnrank/kernels/kernels.h"

namespace attnrank {

double learning_rate(const TrainConfig& config, int64_t step) {
  const int64_t warmup_steps = std::llround(config.warmup * static_cast<double>(config.steps));
  if (step < warmup_steps)
    return config.lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, config.steps - warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  return config.min_lr +
         (config.lr - config.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

template <typename T>
AdamW<T>::AdamW(const ParameterLayout& layout, const TrainConfig& config)
    : decay_mask_(layout.total(), 0),
      m_(layout.total(), T(0)),
      v_(layout.total(), T(0)),
      beta1_(config.beta1),
      beta2_(config.beta2),
      eps_(config.eps),
      weight_decay_(config.weight_decay) {
  for (const auto& tensor : layout.tensors())
    if (tensor.decay)
      std::fill(decay_mask_.begin() + tensor.offset,
                decay_mask_.begin() + tensor.offset + tensor.size, 1);
}

template <typename T>
void AdamW<T>::step(std::vector<T>& parameters, const std::vector<T>& gradients, double lr) {
  ++step_;
  // PyTorch's AdamW, operation for operation.
  const double bias1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(step_)));
  const T step_size = static_cast<T>(lr / bias1);
  const T decay_factor = static_cast<T>(1.0 - lr * weight_decay_);
  const T b1 = static_cast<T>(beta1_), b2 = static_cast<T>(beta2_);
  const T inv_bias2_sqrt = static_cast<T>(1.0 / bias2_sqrt);
  const T eps = static_cast<T>(eps_);
  kernels::active<T>().adamw_update(parameters.size(), parameters.data(), gradients.data(),
                                    m_.data(), v_.data(), decay_mask_.data(),
                                    {step_size, decay_factor, b1, b2, inv_bias2_sqrt, eps});
}

template <typename T>
void AdamW<T>::restore(const std::vector<T>& first_moment, const std::vector<T>& second_moment,
                       int64_t steps_taken) {
  if (first_moment.size() != m_.size() || second_moment.size() != v_.size() || steps_taken < 0)
    throw std::invalid_argument("AdamW::restore: moments of another layout");
  m_ = first_moment;
  v_ = second_moment;
  step_ = steps_taken;
}

template <typename T>
double gradient_norm(const std::vector<T>& gradients) {
  // Fixed-size chunks summed in order: independent of the thread count.
  constexpr size_t kChunk = 4096;
  const size_t chunks = (gradients.size() + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static) if (worth_parallel(gradients.size()))
  for (size_t c = 0; c < chunks; ++c) {
    const size_t end = std::min(gradients.size(), (c + 1) * kChunk);
    double sum = 0.0;
    for (size_t i = c * kChunk; i < end; ++i) sum += double(gradients[i]) * double(gradients[i]);
    partial[c] = sum;
  }
  double total = 0.0;
  for (double sum : partial) total += sum;
  return std::sqrt(total);
}

template class AdamW<float>;
template class AdamW<double>;
template double gradient_norm<float>(const std::vector<float>&);
template double gradient_norm<double>(const std::vector<double>&);

}  // namespace attnrank
