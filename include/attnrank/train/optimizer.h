// AdamW (PyTorch semantics: decoupled weight decay) and the learning-rate schedule.
#pragma once
#include <cstdint>
#include <vector>

#include "attnrank/config/run_config.h"
#include "attnrank/core/parameters.h"

namespace attnrank {

// Linear warm-up over round(warmup * steps) steps, then cosine decay to min_lr.
// step counts from 0; the rate used for step 0 is lr / warmup_steps.
double learning_rate(const TrainConfig& config, int64_t step);

template <typename T>
class AdamW {
 public:
  AdamW(const ParameterLayout& layout, const TrainConfig& config);
  // One update with learning rate lr; step counts from 1 for bias correction.
  void step(std::vector<T>& parameters, const std::vector<T>& gradients, double lr);
  int64_t steps_taken() const { return step_; }
  // The state a checkpoint saves, and its restore (arenas of the layout's size).
  const std::vector<T>& first_moment() const { return m_; }
  const std::vector<T>& second_moment() const { return v_; }
  void restore(const std::vector<T>& first_moment, const std::vector<T>& second_moment,
               int64_t steps_taken);

 private:
  std::vector<unsigned char> decay_mask_;  // 1 where weight decay applies
  std::vector<T> m_, v_;
  double beta1_, beta2_, eps_, weight_decay_;
  int64_t step_ = 0;
};

// Global L2 norm of the gradients (double accumulation, fixed order).
template <typename T>
double gradient_norm(const std::vector<T>& gradients);

}  // namespace attnrank
