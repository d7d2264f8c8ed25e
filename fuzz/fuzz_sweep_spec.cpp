// Sweep specs and derived expressions. The first byte picks the mode: even, the
// rest is a sweep spec (parsed, and expanded when it has at most 64 runs); odd, the
// rest is one derived expression evaluated over a default config. Bad input must
// end in one ConfigError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "attnrank/core/error.h"
#include "attnrank/experiment/sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] % 2 == 1) {
      static const attnrank::RunConfig defaults;
      attnrank::evaluate_derived("model.heads", text, defaults);
      return 0;
    }
    const attnrank::SweepSpec spec = attnrank::parse_sweep_spec(text, "fuzz.yaml");
    size_t runs = 0;
    for (const attnrank::Grid& grid : spec.grids) {
      size_t points = 1;
      for (const auto& [key, values] : grid) points *= values.size() > 64 ? 65 : values.size();
      runs += points > 64 ? 65 : points;
    }
    if (runs <= 64) attnrank::expand_sweep(spec);
  } catch (const attnrank::ConfigError&) {
  }
  return 0;
}
