#include "attnrank/core/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <system_error>

#include "attnrank/core/error.h"
#include "attnrank/core/resources.h"

namespace attnrank {

// The format stores little-endian data; we copy bytes to and from host memory as-is.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;
constexpr char kMetadataKey[] = "__metadata__";

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw FormatError(source + ": invalid safetensors file: " + what);
}

// A JSON value that must be a non-negative integer representable as int64_t.
int64_t read_count(const json& value, const std::string& source, const std::string& what) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(source, what + " is too large (" + std::to_string(v) + ")");
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v < 0) fail(source, what + " is negative (" + std::to_string(v) + ")");
    return v;
  }
  fail(source, what + " is not an integer");
}

// Parses the header, rejecting duplicate keys at any depth (nlohmann keeps only the
// last of duplicates, which would silently drop a tensor).
json parse_header(const unsigned char* begin, const unsigned char* end, const std::string& source) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  int duplicate_depth = 0;
  json::parser_callback_t track_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) {
        duplicate = key;
        duplicate_depth = depth;
      }
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, end, track_keys);
  } catch (const json::exception& error) {
    std::string message = error.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    fail(source, "header is not valid JSON (" + message + ")");
  }
  if (!header.is_object()) fail(source, "header is not a JSON object");
  if (begin == end || *begin != '{') fail(source, "header does not start with '{'");
  if (!duplicate.empty()) {
    if (duplicate_depth == 1) fail(source, "duplicate tensor name '" + duplicate + "'");
    fail(source, "duplicate key '" + duplicate + "' in the header");
  }
  return header;
}

std::map<std::string, std::string> read_metadata(const json& value, const std::string& source) {
  if (!value.is_object()) fail(source, "__metadata__ is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, entry] : value.items()) {
    if (!entry.is_string()) fail(source, "__metadata__ value '" + key + "' is not a string");
    metadata[key] = entry.get<std::string>();
  }
  return metadata;
}

struct Extent {
  int64_t begin, end;
  std::string name;
};

// Validates one header entry against the data buffer; returns its byte range.
Extent read_entry(const std::string& name, const json& entry, int64_t buffer_bytes,
                  const std::string& source, SafeTensor& tensor) {
  const std::string where = "tensor '" + name + "'";
  if (!entry.is_object()) fail(source, where + " is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) fail(source, where + " has no \"" + key + "\"");
  const json& dtype = entry["dtype"];
  const json& shape = entry["shape"];
  const json& offsets = entry["data_offsets"];
  if (!dtype.is_string()) fail(source, where + ": dtype is not a string");
  if (!shape.is_array()) fail(source, where + ": shape is not an array");
  if (!offsets.is_array() || offsets.size() != 2)
    fail(source, where + ": data_offsets is not an array of two integers");

  tensor.dtype = dtype.get<std::string>();
  const int64_t dtype_size = safetensors_dtype_size(tensor.dtype);
  if (dtype_size == 0) fail(source, where + ": unknown dtype '" + tensor.dtype + "'");

  int64_t elements = 1;
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    const int64_t dim =
        read_count(shape[axis], source, where + ": shape[" + std::to_string(axis) + "]");
    tensor.shape.push_back(dim);
    if (__builtin_mul_overflow(elements, dim, &elements))
      fail(source, where + ": shape has too many elements (overflow)");
  }
  int64_t expected_bytes = 0;
  if (__builtin_mul_overflow(elements, dtype_size, &expected_bytes))
    fail(source, where + ": shape has too many bytes (overflow)");

  const int64_t begin = read_count(offsets[0], source, where + ": data_offsets[0]");
  const int64_t end = read_count(offsets[1], source, where + ": data_offsets[1]");
  if (begin > end)
    fail(source,
         where + ": data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
  if (end > buffer_bytes)
    fail(source, where + ": data_offsets end " + std::to_string(end) +
                     " is beyond the data buffer (" + std::to_string(buffer_bytes) +
                     " bytes; file truncated?)");
  if (end - begin != expected_bytes)
    fail(source, where + ": data_offsets span " + std::to_string(end - begin) +
                     " bytes but dtype and shape need " + std::to_string(expected_bytes));
  return {begin, end, name};
}

// The spec requires the tensors to tile the data buffer exactly.
void check_coverage(std::vector<Extent> extents, int64_t buffer_bytes, const std::string& source) {
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  int64_t covered = 0;
  const Extent* previous = nullptr;
  for (const Extent& extent : extents) {
    if (extent.begin < covered)
      fail(source, "tensors '" + previous->name + "' and '" + extent.name + "' overlap");
    if (extent.begin > covered)
      fail(source, "data bytes [" + std::to_string(covered) + ", " + std::to_string(extent.begin) +
                       ") belong to no tensor (gap before '" + extent.name + "')");
    covered = extent.end;
    previous = &extent;
  }
  if (covered != buffer_bytes)
    fail(source, "data bytes [" + std::to_string(covered) + ", " + std::to_string(buffer_bytes) +
                     ") at the end belong to no tensor");
}

template <typename From, typename To>
std::vector<To> convert(const std::vector<unsigned char>& bytes) {
  std::vector<To> out(bytes.size() / sizeof(From));
  for (size_t i = 0; i < out.size(); ++i) {
    From value;
    std::memcpy(&value, bytes.data() + i * sizeof(From), sizeof(From));
    out[i] = static_cast<To>(value);
  }
  return out;
}

template <typename To>
std::vector<To> to_floating(const SafeTensor& tensor) {
  if (tensor.dtype == "F32") return convert<float, To>(tensor.bytes);
  if (tensor.dtype == "F64") return convert<double, To>(tensor.bytes);
  throw FormatError("safetensors: tensor of dtype " + tensor.dtype +
                    " cannot be read as floating point (F32 or F64 expected)");
}

template <typename T>
void add_tensor(SafeTensorFile& file, const std::string& name, const std::vector<int64_t>& shape,
                const T* data, const char* dtype) {
  if (name == kMetadataKey)
    throw std::invalid_argument("safetensors: the tensor name __metadata__ is reserved");
  SafeTensor tensor;
  tensor.dtype = dtype;
  tensor.shape = shape;
  for (int64_t dim : shape)
    if (dim < 0) throw std::invalid_argument("safetensors: tensor '" + name + "' has dim < 0");
  const size_t bytes = static_cast<size_t>(tensor.elements()) * sizeof(T);
  tensor.bytes.resize(bytes);
  if (bytes > 0) std::memcpy(tensor.bytes.data(), data, bytes);
  file.tensors.insert_or_assign(name, std::move(tensor));
}

}  // namespace

int64_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  const auto found = sizes.find(dtype);
  return found == sizes.end() ? 0 : found->second;
}

int64_t SafeTensor::elements() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::vector<double> SafeTensor::to_double() const {
  return to_floating<double>(*this);
}
std::vector<float> SafeTensor::to_float() const {
  return to_floating<float>(*this);
}

const SafeTensor& SafeTensorFile::at(const std::string& name) const {
  const auto found = tensors.find(name);
  if (found == tensors.end())
    throw FormatError((source.empty() ? std::string("safetensors") : source) +
                      ": missing tensor '" + name + "'");
  return found->second;
}

void SafeTensorFile::add(const std::string& name, const std::vector<int64_t>& shape,
                         const float* data) {
  add_tensor(*this, name, shape, data, "F32");
}

void SafeTensorFile::add(const std::string& name, const std::vector<int64_t>& shape,
                         const double* data) {
  add_tensor(*this, name, shape, data, "F64");
}

SafeTensorFile parse_safetensors(const std::vector<unsigned char>& contents,
                                 const std::string& source_name) {
  const std::string& source = source_name;
  if (contents.size() < 8)
    fail(source, "file is " + std::to_string(contents.size()) +
                     " bytes, shorter than the 8-byte header length");
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | contents[i];
  if (header_bytes > kMaxHeaderBytes)
    fail(source, "header length " + std::to_string(header_bytes) + " is absurd (> 100 MB)");
  if (header_bytes > contents.size() - 8)
    fail(source, "header length " + std::to_string(header_bytes) + " exceeds the " +
                     std::to_string(contents.size() - 8) + " bytes after it (file truncated?)");

  const unsigned char* header_begin = contents.data() + 8;
  const json header = parse_header(header_begin, header_begin + header_bytes, source);
  const unsigned char* data = header_begin + header_bytes;
  const int64_t buffer_bytes = static_cast<int64_t>(contents.size() - 8 - header_bytes);

  SafeTensorFile file;
  file.source = source;
  std::vector<Extent> extents;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      file.metadata = read_metadata(entry, source);
      continue;
    }
    SafeTensor tensor;
    const Extent extent = read_entry(name, entry, buffer_bytes, source, tensor);
    tensor.bytes.assign(data + extent.begin, data + extent.end);
    extents.push_back(extent);
    file.tensors.emplace(name, std::move(tensor));
  }
  check_coverage(std::move(extents), buffer_bytes, source);
  return file;
}

SafeTensorFile read_safetensors(const std::string& path) {
  // Only a regular file has a size to check before reading: a link to /dev/zero
  // or a pipe would be read without end.
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error) throw FormatError(path + ": cannot open safetensors file: " + error.message());
  if (!std::filesystem::is_regular_file(status))
    throw FormatError(path +
                      ": not a regular file (a device, pipe or directory), expected a "
                      "safetensors file");
  const auto size = std::filesystem::file_size(path, error);
  if (error) throw FormatError(path + ": cannot open safetensors file: " + error.message());
  // The bytes are held once as read and once as tensors.
  check_memory(2.0 * static_cast<double>(size), "reading " + path, "");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open safetensors file: " + std::strerror(errno));
  std::vector<unsigned char> contents(size);
  in.read(reinterpret_cast<char*>(contents.data()), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size)
    throw FormatError(path + ": read error (the file changed while being read?)");
  return parse_safetensors(contents, path);
}

std::vector<unsigned char> serialize_safetensors(const SafeTensorFile& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) {
    nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
    for (const auto& [key, value] : file.metadata) metadata[key] = value;
    header[kMetadataKey] = std::move(metadata);
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    if (name == kMetadataKey)
      throw std::invalid_argument("safetensors: the tensor name __metadata__ is reserved");
    const int64_t dtype_size = safetensors_dtype_size(tensor.dtype);
    if (dtype_size == 0)
      throw std::invalid_argument("safetensors: tensor '" + name + "' has unknown dtype '" +
                                  tensor.dtype + "'");
    if (static_cast<uint64_t>(tensor.elements() * dtype_size) != tensor.bytes.size())
      throw std::invalid_argument("safetensors: tensor '" + name +
                                  "' byte count does not match its dtype and shape");
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = tensor.dtype;
    entry["shape"] = tensor.shape;
    entry["data_offsets"] = {offset, offset + tensor.bytes.size()};
    header[name] = std::move(entry);
    offset += tensor.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::vector<unsigned char> out;
  out.reserve(8 + text.size() + offset);
  const uint64_t header_bytes = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(header_bytes >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (const auto& [name, tensor] : file.tensors)
    out.insert(out.end(), tensor.bytes.begin(), tensor.bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const SafeTensorFile& file) {
  const std::vector<unsigned char> bytes = serialize_safetensors(file);
  const std::string temporary = path + ".tmp";
  std::FILE* out = std::fopen(temporary.c_str(), "wb");
  if (!out)
    throw std::runtime_error(path + ": cannot create " + temporary + ": " + std::strerror(errno));
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size() &&
                       std::fflush(out) == 0 && ::fsync(fileno(out)) == 0;
  const int write_errno = errno;
  const bool closed = std::fclose(out) == 0;
  if (!written || !closed) {
    std::remove(temporary.c_str());
    throw std::runtime_error(path + ": cannot write " + temporary + ": " +
                             std::strerror(written ? errno : write_errno));
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::remove(temporary.c_str());
    throw std::runtime_error(path + ": cannot rename " + temporary +
                             " into place: " + error.message());
  }
}

}  // namespace attnrank
