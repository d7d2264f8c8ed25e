// The safetensors reader and writer: round trips, a byte-exact file built by hand
// from the spec, and one rejection test per class of corruption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "attnrank/core/error.h"
#include "attnrank/core/safetensors.h"

namespace attnrank {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

// A safetensors byte string from a header text and a data buffer, per the spec:
// u64 little-endian header length, header, data.
Bytes make_file(const std::string& header, const Bytes& data) {
  Bytes out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes zeros(size_t n) {
  return Bytes(n, 0);
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("attnrank_safetensors_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Parses `bytes` expecting a FormatError whose one-line message names the source and
// contains `fragment`.
void expect_rejected(const Bytes& bytes, const std::string& fragment) {
  try {
    parse_safetensors(bytes, "corrupt.safetensors");
    ADD_FAILURE() << "accepted a file that should fail with: " << fragment;
  } catch (const FormatError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind("corrupt.safetensors: ", 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// One valid F32 tensor "t" of shape (2) at [0, 8).
const std::string kValidEntry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST(Safetensors, ValidMinimalFileParses) {
  const SafeTensorFile file = parse_safetensors(make_file("{" + kValidEntry + "}", zeros(8)), "x");
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.at("t").shape, std::vector<int64_t>{2});
  EXPECT_EQ(file.source, "x");
}

TEST(Safetensors, RoundTripFloatAndDouble) {
  TempDir dir;
  SafeTensorFile file;
  const std::vector<float> f = {1.5f, -2.25f, 3.0e-8f, 4.0e30f, 0.0f, -0.0f};
  const std::vector<double> d = {3.141592653589793, -1e-300, 2.5, 1e300};
  const double scalar = 0.125;
  file.add("weights", {2, 3}, f.data());
  file.add("a.double", {4}, d.data());
  file.add("loss", {}, &scalar);
  file.add("empty", {0, 5}, static_cast<const float*>(nullptr));
  file.metadata["config"] = R"({"dim": 8})";
  file.metadata["format"] = "attnrank";
  const fs::path path = dir.path() / "round.safetensors";
  write_safetensors(path.string(), file);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EXPECT_EQ(fs::file_size(path) % 8, 0u);

  const SafeTensorFile back = read_safetensors(path.string());
  EXPECT_EQ(back.metadata, file.metadata);
  ASSERT_EQ(back.tensors.size(), 4u);
  EXPECT_EQ(back.at("weights").dtype, "F32");
  EXPECT_EQ(back.at("weights").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back.at("weights").to_float(), f);
  EXPECT_EQ(back.at("a.double").dtype, "F64");
  EXPECT_EQ(back.at("a.double").to_double(), d);
  EXPECT_EQ(back.at("loss").shape, std::vector<int64_t>{});
  EXPECT_EQ(back.at("loss").elements(), 1);
  EXPECT_EQ(back.at("loss").to_double(), std::vector<double>{scalar});
  EXPECT_EQ(back.at("empty").elements(), 0);
  EXPECT_TRUE(back.at("empty").bytes.empty());
  // Cross-precision conversions.
  EXPECT_EQ(back.at("weights").to_double()[1], -2.25);
  EXPECT_EQ(back.at("a.double").to_float()[2], 2.5f);
  // Writing what was read reproduces the file byte for byte.
  const fs::path again = dir.path() / "again.safetensors";
  write_safetensors(again.string(), back);
  EXPECT_EQ(read_bytes(again), read_bytes(path));
}

TEST(Safetensors, WriterMatchesHandBuiltBytes) {
  // Built per the spec: header {"__metadata__":{"k":"v"},"a":F32[2] at [0,8),
  // "b":F64[1] at [8,16)}, 133 bytes of JSON padded with three spaces to 136.
  const std::string json =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}})";
  ASSERT_EQ(json.size(), 133u);
  // Header length 136 = 0x88 as u64 little-endian, the JSON, the padding.
  const std::string head = std::string("\x88\0\0\0\0\0\0\0", 8) + json + "   ";
  Bytes expected(head.begin(), head.end());
  // 1.0f = 0x3F800000, -2.0f = 0xC0000000, 0.5 = 0x3FE0000000000000, little-endian.
  const Bytes data = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0,
                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xE0, 0x3F};
  expected.insert(expected.end(), data.begin(), data.end());

  SafeTensorFile file;
  const float a[] = {1.0f, -2.0f};
  const double b[] = {0.5};
  // Added out of order: the writer sorts by name.
  file.add("b", {1}, b);
  file.add("a", {2}, a);
  file.metadata["k"] = "v";
  EXPECT_EQ(serialize_safetensors(file), expected);

  TempDir dir;
  const fs::path path = dir.path() / "hand.safetensors";
  write_safetensors(path.string(), file);
  EXPECT_EQ(read_bytes(path), expected);

  const SafeTensorFile parsed = parse_safetensors(expected, "hand");
  EXPECT_EQ(parsed.at("a").to_float(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(parsed.at("b").to_double(), std::vector<double>{0.5});
  EXPECT_EQ(parsed.metadata.at("k"), "v");
}

TEST(Safetensors, ReadsIntegerDtypesAsRawBytes) {
  const std::string header = R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                             R"("m":{"dtype":"BOOL","shape":[2],"data_offsets":[8,10]},)"
                             R"("n":{"dtype":"I32","shape":[1],"data_offsets":[10,14]},)"
                             R"("u":{"dtype":"U8","shape":[2],"data_offsets":[14,16]}})";
  Bytes data = {7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, 0, 0, 0, 9, 10};
  const SafeTensorFile file = parse_safetensors(make_file(header, data), "ints");
  EXPECT_EQ(file.at("i").bytes, (Bytes{7, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(file.at("u").bytes, (Bytes{9, 10}));
  EXPECT_THROW(file.at("i").to_double(), FormatError);
}

TEST(Safetensors, AtNamesMissingTensorAndFile) {
  const SafeTensorFile file =
      parse_safetensors(make_file("{" + kValidEntry + "}", zeros(8)), "my.safetensors");
  try {
    file.at("nope");
    FAIL() << "no exception";
  } catch (const FormatError& error) {
    EXPECT_NE(std::string(error.what()).find("my.safetensors"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("'nope'"), std::string::npos);
  }
}

TEST(Safetensors, RejectsFileShorterThanEightBytes) {
  expect_rejected(Bytes{}, "shorter than");
  expect_rejected(Bytes{1, 0, 0, 0, 0, 0, 0}, "shorter than");
}

TEST(Safetensors, RejectsHeaderLongerThanFile) {
  Bytes bytes = make_file("{}", {});
  bytes[0] = 200;
  expect_rejected(bytes, "exceeds");
}

TEST(Safetensors, RejectsAbsurdHeaderLength) {
  Bytes bytes = make_file("{}", {});
  bytes[6] = 1;  // 2^48 + 2
  expect_rejected(bytes, "absurd");
  bytes = Bytes{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, '{', '}'};
  expect_rejected(bytes, "absurd");
}

TEST(Safetensors, RejectsInvalidJson) {
  expect_rejected(make_file("{\"t\":", {}), "not valid JSON");
  expect_rejected(make_file("", {}), "not valid JSON");
  expect_rejected(make_file("{} x", {}), "not valid JSON");
  expect_rejected(make_file("{\"\xff\":1}", {}), "not valid JSON");  // not UTF-8
}

TEST(Safetensors, RejectsHeaderThatIsNotAnObject) {
  expect_rejected(make_file("[1, 2]   ", {}), "not a JSON object");
  expect_rejected(make_file("\"t\"", {}), "not a JSON object");
  expect_rejected(make_file(" {}", {}), "start with '{'");
}

TEST(Safetensors, RejectsEntryMissingAField) {
  expect_rejected(make_file(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", zeros(8)),
                  "has no \"dtype\"");
  expect_rejected(make_file(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", zeros(8)),
                  "has no \"shape\"");
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[2]}})", zeros(8)),
                  "has no \"data_offsets\"");
}

TEST(Safetensors, RejectsEntryWithWrongJsonTypes) {
  expect_rejected(make_file(R"({"t":[1]})", {}), "'t' is not a JSON object");
  expect_rejected(make_file(R"({"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", zeros(8)),
                  "dtype is not a string");
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", zeros(8)),
                  "shape is not an array");
  expect_rejected(
      make_file(R"({"t":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", zeros(8)),
      "shape[0] is not an integer");
  expect_rejected(
      make_file(R"({"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", zeros(8)),
      "shape[0] is not an integer");
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", zeros(8)),
                  "data_offsets is not an array of two integers");
  expect_rejected(
      make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":{"a":0}}})", zeros(8)),
      "data_offsets is not an array of two integers");
  expect_rejected(
      make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", zeros(8)),
      "data_offsets[1] is not an integer");
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_rejected(make_file(R"({"t":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", zeros(8)),
                  "unknown dtype 'F31'");
}

TEST(Safetensors, RejectsNegativeDimension) {
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", zeros(8)),
                  "shape[0] is negative");
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", zeros(8)),
                  "data_offsets[0] is negative");
}

TEST(Safetensors, RejectsShapeProductOverflow) {
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],)"
                            R"("data_offsets":[0,8]}})",
                            zeros(8)),
                  "overflow");
  // Fits in elements, overflows once multiplied by the 8-byte dtype size.
  expect_rejected(make_file(R"({"t":{"dtype":"F64","shape":[2305843009213693952],)"
                            R"("data_offsets":[0,8]}})",
                            zeros(8)),
                  "overflow");
  expect_rejected(
      make_file(R"({"t":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})",
                zeros(8)),
      "too large");
}

TEST(Safetensors, RejectsOffsetsThatDisagreeWithShape) {
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", zeros(8)),
                  "span 8 bytes but dtype and shape need 12");
}

TEST(Safetensors, RejectsBeginAfterEnd) {
  expect_rejected(make_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", zeros(8)),
                  "begin 8 > end 4");
}

TEST(Safetensors, RejectsEndBeyondDataBuffer) {
  expect_rejected(make_file("{" + kValidEntry + "}", zeros(7)), "beyond the data buffer");
}

TEST(Safetensors, RejectsOverlappingTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_rejected(make_file(header, zeros(12)), "'a' and 'b' overlap");
  // Aliasing: two names for the same bytes.
  const std::string alias = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_rejected(make_file(alias, zeros(8)), "overlap");
}

TEST(Safetensors, RejectsGapsAndUnusedBytes) {
  const std::string gap = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_rejected(make_file(gap, zeros(12)), "gap before 'b'");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", zeros(8)),
                  "gap before 'a'");
  expect_rejected(make_file("{" + kValidEntry + "}", zeros(9)), "at the end belong to no tensor");
  expect_rejected(make_file("{}", zeros(1)), "at the end belong to no tensor");
}

TEST(Safetensors, RejectsDuplicateNames) {
  const std::string header = R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_rejected(make_file(header, zeros(8)), "duplicate tensor name 't'");
  expect_rejected(
      make_file(R"({"t":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})",
                zeros(8)),
      "duplicate key 'dtype'");
}

TEST(Safetensors, RejectsNonStringMetadata) {
  expect_rejected(make_file(R"({"__metadata__":{"a":"b","n":1}})", {}),
                  "__metadata__ value 'n' is not a string");
  expect_rejected(make_file(R"({"__metadata__":["a"]})", {}), "__metadata__ is not a JSON object");
}

TEST(Safetensors, RejectsTruncatedFileOnDisk) {
  TempDir dir;
  SafeTensorFile file;
  const std::vector<double> values(16, 1.0);
  file.add("v", {16}, values.data());
  const fs::path path = dir.path() / "truncated.safetensors";
  write_safetensors(path.string(), file);
  const Bytes full = read_bytes(path);
  for (size_t keep : {full.size() - 1, full.size() - 64, size_t{20}, size_t{5}}) {
    write_bytes(path, Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(keep)));
    try {
      read_safetensors(path.string());
      ADD_FAILURE() << "accepted a file truncated to " << keep << " bytes";
    } catch (const FormatError& error) {
      EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos) << error.what();
    }
  }
}

TEST(Safetensors, RejectsMissingFile) {
  TempDir dir;
  const std::string path = (dir.path() / "absent.safetensors").string();
  try {
    read_safetensors(path);
    FAIL() << "no exception";
  } catch (const FormatError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos);
  }
}

TEST(Safetensors, WriteFailureNamesThePath) {
  TempDir dir;
  SafeTensorFile file;
  const float one = 1.0f;
  file.add("x", {1}, &one);
  const std::string path = (dir.path() / "no_such_dir" / "out.safetensors").string();
  try {
    write_safetensors(path, file);
    FAIL() << "no exception";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos);
  }
}

TEST(Safetensors, WriteReplacesExistingFileAtomically) {
  TempDir dir;
  const fs::path path = dir.path() / "w.safetensors";
  SafeTensorFile first, second;
  const float a = 1.0f, b[] = {2.0f, 3.0f};
  first.add("a", {1}, &a);
  second.add("b", {2}, b);
  write_safetensors(path.string(), first);
  write_safetensors(path.string(), second);
  const SafeTensorFile back = read_safetensors(path.string());
  EXPECT_EQ(back.tensors.size(), 1u);
  EXPECT_EQ(back.at("b").to_float(), (std::vector<float>{2.0f, 3.0f}));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

// The Python generator (scripts/make_golden.py) writes the same layout as our writer,
// so re-serializing what we read must give back every golden file byte for byte.
TEST(Safetensors, GoldenFilesReserializeByteForByte) {
  const fs::path golden = fs::path(ATTNRANK_SOURCE_DIR) / "tests" / "golden";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(golden)) {
    if (entry.path().extension() != ".safetensors") continue;
    ++files;
    const Bytes bytes = read_bytes(entry.path());
    const SafeTensorFile file = parse_safetensors(bytes, entry.path().string());
    EXPECT_EQ(file.metadata.at("format"), "attnrank-golden") << entry.path();
    for (const auto& [name, tensor] : file.tensors)
      EXPECT_EQ(tensor.dtype, "F64") << entry.path() << " " << name;
    EXPECT_EQ(serialize_safetensors(file), bytes) << entry.path();
  }
  EXPECT_GE(files, 8);
}

TEST(Safetensors, RejectsInconsistentTensorsWhenWriting) {
  SafeTensorFile file;
  const float a = 1.0f;
  EXPECT_THROW(file.add("__metadata__", {1}, &a), std::invalid_argument);
  EXPECT_THROW(file.add("neg", {-1}, &a), std::invalid_argument);
  file.add("a", {1}, &a);
  file.tensors["a"].bytes.push_back(0);
  EXPECT_THROW(serialize_safetensors(file), std::invalid_argument);
}

}  // namespace
}  // namespace attnrank
