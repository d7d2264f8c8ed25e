// Error types shared by every module. The CLI maps them to exit codes:
// ConfigError -> 2 (usage or configuration), everything else -> 1.
#pragma once
#include <stdexcept>
#include <string>

namespace attnrank {

// Bad user input: unknown key, wrong type, impossible combination, bad flag.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file that exists but cannot be read as what it claims to be (corrupt
// safetensors, truncated checkpoint, unreadable database).
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace attnrank
