// When a loop is worth an OpenMP parallel region: below about 64k scalar operations
// the fork/join (and, on a busy machine, waiting for a descheduled thread) costs
// more than the loop, which matters for the small models of sweeps.
#pragma once
#include <cstddef>

namespace attnrank {

// A constant, not a function, so the per-ISA kernels can use it without sharing an
// inline symbol with the rest of the library (src/kernels/variant/variant.h).
constexpr size_t kParallelWork = size_t{1} << 16;

inline bool worth_parallel(size_t work) {
  return work >= kParallelWork;
}

}  // namespace attnrank
