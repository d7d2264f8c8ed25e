// The safetensors reader on arbitrary bytes: it must accept the file or throw one
// FormatError, and what it accepts must serialise and parse back unchanged.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attnrank/core/error.h"
#include "attnrank/core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<unsigned char> bytes(data, data + size);
  try {
    const attnrank::SafeTensorFile file = attnrank::parse_safetensors(bytes, "fuzz.safetensors");
    for (const auto& [name, tensor] : file.tensors) {
      if (tensor.dtype == "F32" || tensor.dtype == "F64") (void)tensor.to_double();
    }
    const std::vector<unsigned char> again = attnrank::serialize_safetensors(file);
    const attnrank::SafeTensorFile reread = attnrank::parse_safetensors(again, "round trip");
    if (reread.tensors.size() != file.tensors.size() || reread.metadata != file.metadata)
      __builtin_trap();
  } catch (const attnrank::FormatError&) {
  }
  return 0;
}
