// The safetensors format (https://huggingface.co/docs/safetensors): 8-byte
// little-endian header length, a JSON header mapping names to
// {dtype, shape, data_offsets}, then the raw little-endian data.
//
// Dtypes read: BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32,
// I64, U64, F64 (kept as raw bytes); to_double/to_float convert F32 and F64 only.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnrank {

// Bytes per element of a safetensors dtype name; 0 for an unknown name.
int64_t safetensors_dtype_size(const std::string& dtype);

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
  std::string source;  // file it was read from, for error messages (empty if built in memory)

  // Throws FormatError naming the tensor (and the source file) if absent.
  const SafeTensor& at(const std::string& name) const;
  // Adds (or replaces) a tensor, copying the data. Throws std::invalid_argument for a
  // negative dimension or the reserved name "__metadata__".
  void add(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  void add(const std::string& name, const std::vector<int64_t>& shape, const double* data);
};

// Reads and fully validates a file (header length, JSON, dtypes, shapes vs
// offsets, offsets inside the data, no overlap, no gaps, no duplicate names).
// Throws FormatError naming the file, also when it cannot be opened.
SafeTensorFile read_safetensors(const std::string& path);
SafeTensorFile parse_safetensors(const std::vector<unsigned char>& contents,
                                 const std::string& source_name);
// The exact bytes write_safetensors stores: header with "__metadata__" first (omitted
// when empty), tensors in name order with keys dtype, shape, data_offsets, padded
// with spaces to a multiple of 8; data contiguous in name order. Throws
// std::invalid_argument if a tensor's byte count does not match its dtype and shape.
std::vector<unsigned char> serialize_safetensors(const SafeTensorFile& file);
// Writes atomically (temporary file path + ".tmp", then rename). Throws
// std::runtime_error naming the path on I/O failure.
void write_safetensors(const std::string& path, const SafeTensorFile& file);

}  // namespace attnrank
