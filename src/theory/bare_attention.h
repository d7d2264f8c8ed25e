// The model of the theory tools: one attention layer and nothing else (no MLP,
// norm, bias or residual), whose weights the tools set by hand.
#pragma once
#include "attnrank/config/run_config.h"

namespace attnrank {

inline ModelConfig bare_attention(int dim, int heads, int rank, int value_rank) {
  ModelConfig config;
  config.dim = dim;
  config.heads = heads;
  config.rank = rank;
  config.value_rank = value_rank;
  config.ffn = 0;
  config.norm = Norm::kNone;
  config.bias = false;
  config.residual = false;
  return config;
}

}  // namespace attnrank
