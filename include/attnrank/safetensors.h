// The safetensors format (https://huggingface.co/docs/safetensors): 8-byte
// little-endian header length, a JSON header mapping names to
// {dtype, shape, data_offsets}, then the raw little-endian data.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnrank {

struct SafeTensor {
  std::string dtype;  // "F32", "F64", "I64", ...
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;

  int64_t elements() const;
  // Converts F32/F64 data to double (throws FormatError for other dtypes).
  std::vector<double> to_double() const;
  std::vector<float> to_float() const;
};

struct SafeTensorFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__" string map

  // Throws FormatError naming the tensor if absent.
  const SafeTensor& at(const std::string& name) const;
  void add(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  void add(const std::string& name, const std::vector<int64_t>& shape, const double* data);
};

// Reads and fully validates a file (header length, JSON, dtypes, shapes vs
// offsets, offsets inside the data, no overlap, no gaps). Throws FormatError.
SafeTensorFile read_safetensors(const std::string& path);
SafeTensorFile parse_safetensors(const std::vector<unsigned char>& contents,
                                 const std::string& source_name);
// Writes atomically (temporary file then rename). Throws std::runtime_error.
void write_safetensors(const std::string& path, const SafeTensorFile& file);

}  // namespace attnrank
