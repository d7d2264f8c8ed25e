// The YAML config reader and the `section.key=value` overrides: the bytes up to
// the first NUL are the YAML file, each further NUL-separated piece an override.
// Bad input must end in one ConfigError; anything else (another exception, a
// crash, a sanitizer report) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> pieces;
  size_t start = 0;
  for (;;) {
    const size_t end = input.find('\0', start);
    pieces.push_back(input.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  const std::string yaml = pieces.front();
  pieces.erase(pieces.begin());
  try {
    const attnrank::RunConfig config = attnrank::parse_config(yaml, pieces, "fuzz.yaml");
    // What was accepted must be written back and read back to the same config.
    const std::string text = attnrank::to_yaml(config);
    if (attnrank::to_yaml(attnrank::parse_config(text, {}, "round trip")) != text) __builtin_trap();
  } catch (const attnrank::ConfigError&) {
  }
  return 0;
}
