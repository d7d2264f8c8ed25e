// The order in which the per-head kernels keep each head's columns in a qkv or
// context row, and each head's probabilities in a sample's block.
//
// The model's order puts, per module, the queries of all heads, then their keys,
// then their values, head after head ([Q_0 .. Q_{H-1}][K_0 ..][V_0 ..]); context
// and probabilities are head after head. That is the order of the parameters
// (PyTorch's in_proj) and of everything a user sees.
//
// When heads are small (rank or N below a vector register), the kernels lay
// `group` heads side by side, one per vector lane (heads_in_lanes). For them the
// rows are kept in lane order instead, so that every load and store is a whole
// register and nothing is gathered or scattered: heads in groups of `group`
// (the last one possibly smaller, `count` heads), and within a group
//   qkv:      [Q: rank x count][K: rank x count][V: value_rank x count]
//   context:  [value_rank x count]
//   probs:    [N x N x count]
// each element e (or query i, key j) followed by its `count` heads. The attention
// layer gets this order for free by permuting the rows of W_in and b_in and the
// columns of W_out, so the activations stay in one contiguous arena.
#pragma once
#include <cstddef>
#include <vector>

#include "attnrank/kernels/attention_shape.h"
#include "attnrank/kernels/kernels.h"

namespace attnrank::kernels {

struct HeadLayout {
  int group = 0;  // heads per lane group; 0: the model's order

  bool model_order() const { return group == 0; }
};

// The layout `kernel` uses for `shape`.
template <typename T>
HeadLayout head_layout(const KernelTable<T>& kernel, const AttentionShape& shape) {
  return {kernel.heads_in_lanes(shape) ? kernel.lanes : 0};
}

// The layout of the active kernels.
template <typename T>
HeadLayout head_layout(const AttentionShape& shape) {
  return head_layout(active<T>(), shape);
}

// Column k of a qkv row in `layout` holds model column order[k] (a permutation of
// 0 .. qkv_width-1).
std::vector<int> qkv_order(const AttentionShape& shape, HeadLayout layout);
// The same for a context row (0 .. context_width-1).
std::vector<int> context_order(const AttentionShape& shape, HeadLayout layout);
// Element k of one sample's probabilities (c*H*N*N values) in `layout` holds the
// model's element order[k] = (head * N + query) * N + key.
std::vector<int> probs_order(const AttentionShape& shape, HeadLayout layout);

}  // namespace attnrank::kernels
