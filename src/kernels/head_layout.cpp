#include "attnrank/kernels/head_layout.h"

#include <algorithm>
#include <numeric>

namespace attnrank::kernels {

namespace {

// Lays out `items` values per head (item-major within a group) for every lane
// group: order[group base + item * count + lane] = model_index(head, item).
template <typename ModelIndex>
std::vector<int> lane_order(const AttentionShape& s, HeadLayout layout, int items,
                            ModelIndex model_index) {
  const int heads_total = s.modules * s.heads;
  std::vector<int> order(static_cast<size_t>(heads_total) * items);
  for (int first = 0; first < heads_total; first += layout.group) {
    const int count = std::min(layout.group, heads_total - first);
    const size_t base = static_cast<size_t>(first) * items;
    for (int item = 0; item < items; ++item)
      for (int lane = 0; lane < count; ++lane)
        order[base + static_cast<size_t>(item) * count + lane] = model_index(first + lane, item);
  }
  return order;
}

std::vector<int> identity(size_t size) {
  std::vector<int> order(size);
  std::iota(order.begin(), order.end(), 0);
  return order;
}

}  // namespace

std::vector<int> qkv_order(const AttentionShape& s, HeadLayout layout) {
  if (layout.model_order()) return identity(static_cast<size_t>(s.qkv_width()));
  const int r = s.rank;
  // Item t of a head: query e = t (t < r), key e = t - r, value e = t - 2r.
  return lane_order(s, layout, s.head_block(), [&s, r](int head, int item) {
    const int module = head / s.heads, h = head % s.heads;
    const int base = module * s.heads * s.head_block();
    if (item < r) return base + h * r + item;
    if (item < 2 * r) return base + s.heads * r + h * r + (item - r);
    return base + 2 * s.heads * r + h * s.value_rank + (item - 2 * r);
  });
}

std::vector<int> context_order(const AttentionShape& s, HeadLayout layout) {
  if (layout.model_order()) return identity(static_cast<size_t>(s.context_width()));
  return lane_order(s, layout, s.value_rank,
                    [&s](int head, int e) { return head * s.value_rank + e; });
}

std::vector<int> probs_order(const AttentionShape& s, HeadLayout layout) {
  const int cells = s.tokens * s.tokens;
  if (layout.model_order())
    return identity(static_cast<size_t>(s.modules) * s.heads * static_cast<size_t>(cells));
  return lane_order(s, layout, cells, [cells](int head, int cell) { return head * cells + cell; });
}

}  // namespace attnrank::kernels
