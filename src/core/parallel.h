// When a loop is worth an OpenMP parallel region: below about 64k scalar operations
// the fork/join (and, on a busy machine, waiting for a descheduled thread) costs
// more than the loop, which matters for the small models of sweeps.
#pragma once
#include <cstddef>

namespace attnrank {

inline bool worth_parallel(size_t work) {
  return work >= (size_t{1} << 16);
}

}  // namespace attnrank
