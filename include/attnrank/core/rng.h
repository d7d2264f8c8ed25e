// Counter-based randomness: every random quantity is addressed by
// (seed, stream, index...), so a batch is the same whatever the thread count or
// the order in which samples are generated.
#pragma once
#include <cstdint>

namespace attnrank {

// SplitMix64 finaliser: a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// xoshiro256** seeded from a key derived from (seed, a, b, c).
class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0);
  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Standard normal (Box-Muller, both values used).
  double normal();
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

 private:
  uint64_t s_[4];
  double spare_normal_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace attnrank
