// Point tasks on the sphere (Amsel, Yehudai & Bruna 2024, arXiv 2407.16153) and their loss.
//
// farthest: N points, each token's target is the farthest point of its set
//           x_{argmin_j <x_i, x_j>} (the published self-attention task).
// nearest:  N points followed by `queries` query tokens; each query's target is
//           its nearest point among the N; keys are restricted to the points and
//           the loss is read at the query positions only.
// Distributions: uniform (iid on S^{d-1}) or orthogonal (a random orthonormal
// set, N <= d).
#pragma once
#include <cstdint>

#include "attnrank/config/run_config.h"

namespace attnrank {

// Streams are disjoint sources of batches for one seed: training batches, the
// final test set, and the validation set evaluated during training
// (train.eval_every), so the curves never see the test set.
enum class Stream : uint64_t { kTrain = 0, kTest = 1, kValidation = 2 };

class PointTask {
 public:
  PointTask(const TaskConfig& config, int dim);  // throws ConfigError

  int tokens() const;  // points (+ queries)
  int dim() const { return dim_; }
  const TaskConfig& config() const { return config_; }
  int loss_begin() const;  // first token whose output is scored
  int loss_end() const;    // one past the last
  int loss_tokens() const { return loss_end() - loss_begin(); }
  // Error of predicting 0 for every scored token (unit targets: 1).
  double trivial_mse() const { return 1.0; }

  // Batch `index` of (seed, stream), identical whatever the thread count.
  // inputs, targets: (batch, tokens, dim). Targets outside the scored range are 0.
  template <typename T>
  void generate(uint64_t seed, Stream stream, uint64_t index, int batch, T* inputs,
                T* targets) const;

 private:
  TaskConfig config_;
  int dim_;
};

// Squared error summed over the dim coordinates, mean over scored tokens and batch
// (PyTorch mse_loss times dim). output, target, d_output: (batch, tokens, dim);
// d_output (if non-null) receives dLoss/dOutput, zero outside the scored tokens.
template <typename T>
double squared_error_loss(const T* output, const T* target, int batch, int tokens, int dim,
                          int loss_begin, int loss_end, T* d_output);

}  // namespace attnrank
