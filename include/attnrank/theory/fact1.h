// Fact 1 of Amsel et al. (arXiv 2407.16153): one full-rank head (r = d) with
// W_Q W_K^T = +beta I (nearest: the query token attends to the points) or -beta I
// (farthest: each point attends to the set) and W_V W_O = I computes the target as
// beta -> infinity, for any N. Under hard attention (argmax) it is exact for every beta > 0;
// under softmax the error falls like 1/beta (the weight on the runner-up is
// exp(-beta * gap) and the gap between the best and second-best score has a positive
// density at 0).
#pragma once
#include <cstdint>
#include <string>

#include "attnrank/config/choices.h"
#include "attnrank/nn/attention.h"
#include "attnrank/theory/random_features.h"

namespace attnrank {

// Test MSE (the task's loss: squared error summed over coordinates, mean over scored tokens)
// of the construction, through the engine's Transformer<double> forward pass on the
// task's test stream of `seed`. task: nearest (one query) or farthest.
MonteCarloEstimate fact1_mse(TaskKind task, int dim, int points, AttentionKind kind, double beta,
                             int64_t samples, uint64_t seed);

}  // namespace attnrank
