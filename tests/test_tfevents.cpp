// TensorBoard event files: CRC32C against its published check value, and a
// training run's events.out.tfevents.* decoded back here (TFRecord framing with
// both CRCs, the Event and Summary protobuf fields) against its metrics.csv.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/tfevents.h"
#include "attnrank/experiment/learning_curves.h"
#include "attnrank/train/train.h"
#include "test_files.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

// A protobuf reader for the few wire types an Event uses.
struct Reader {
  const std::string& bytes;
  size_t at = 0;
  bool done() const { return at >= bytes.size(); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= bytes.size()) throw std::runtime_error("varint past the end");
      const auto byte = static_cast<unsigned char>(bytes[at++]);
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    throw std::runtime_error("varint too long");
  }
  uint64_t fixed(int size) {
    if (at + size > bytes.size()) throw std::runtime_error("fixed past the end");
    uint64_t value = 0;
    for (int i = 0; i < size; ++i)
      value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
    at += size;
    return value;
  }
  std::string length_delimited() {
    const uint64_t size = varint();
    if (at + size > bytes.size()) throw std::runtime_error("bytes past the end");
    std::string value = bytes.substr(at, size);
    at += size;
    return value;
  }
};

struct DecodedEvent {
  double wall_time = NAN;
  int64_t step = -1;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

DecodedEvent decode_event(const std::string& data) {
  DecodedEvent event;
  Reader reader{data};
  while (!reader.done()) {
    const uint64_t key = reader.varint();
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (field == 1 && wire == 1) {
      const uint64_t bits = reader.fixed(8);
      std::memcpy(&event.wall_time, &bits, 8);
    } else if (field == 2 && wire == 0) {
      event.step = static_cast<int64_t>(reader.varint());
    } else if (field == 3 && wire == 2) {
      event.file_version = reader.length_delimited();
    } else if (field == 5 && wire == 2) {
      const std::string summary = reader.length_delimited();
      Reader values{summary};
      while (!values.done()) {
        EXPECT_EQ(values.varint(), 0x0au);  // Summary.value
        const std::string value = values.length_delimited();
        Reader fields{value};
        std::string tag;
        float simple = NAN;
        while (!fields.done()) {
          const uint64_t inner = fields.varint();
          if (inner == 0x0a) {
            tag = fields.length_delimited();
          } else if (inner == 0x15) {
            const auto bits = static_cast<uint32_t>(fields.fixed(4));
            std::memcpy(&simple, &bits, 4);
          } else {
            ADD_FAILURE() << "unexpected Summary.Value field key " << inner;
            return event;
          }
        }
        event.values.emplace_back(tag, simple);
      }
    } else {
      ADD_FAILURE() << "unexpected Event field " << field << " wire type " << wire;
      return event;
    }
  }
  return event;
}

uint32_t little_endian_32(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return value;
}

// Every record of an event file, its two CRCs checked.
std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_LE(at + 12, file.size()) << "a record header cut short";
    if (at + 12 > file.size()) break;
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i)
      length |= static_cast<uint64_t>(static_cast<unsigned char>(file[at + i])) << (8 * i);
    EXPECT_EQ(little_endian_32(file, at + 8), masked_crc32c(file.data() + at, 8));
    EXPECT_LE(at + 12 + length + 4, file.size()) << "a record cut short";
    if (at + 12 + length + 4 > file.size()) break;
    const std::string data = file.substr(at + 12, length);
    EXPECT_EQ(little_endian_32(file, at + 12 + length), masked_crc32c(data.data(), data.size()));
    records.push_back(data);
    at += 12 + length + 4;
  }
  return records;
}

}  // namespace

TEST(TfEvents, Crc32cMatchesItsCheckValue) {
  // The CRC-32C (Castagnoli) check value of "123456789" (RFC 3720 B.4 / the CRC catalogue).
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Continuing a checksum is the checksum of the concatenation.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xe3069283u);
  const uint32_t crc = 0xe3069283u;
  EXPECT_EQ(masked_crc32c("123456789", 9), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TfEvents, RecordFramingAndEventBytes) {
  const std::string record = tfrecord("abc");
  ASSERT_EQ(record.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(record.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(read_records(record), std::vector<std::string>{"abc"});
  // wall_time 1.5, step 300, one value: the protobuf bytes by hand.
  const std::string event = scalars_event(1.5, 300, {{"a/b", 0.25f}});
  const std::string expected = std::string("\x09\0\0\0\0\0\0\xf8\x3f", 9) +  // 1.5
                               "\x10\xac\x02" +                              // 300
                               "\x2a\x0c\x0a\x0a\x0a\x03"
                               "a/b" +                              // summary, value, tag
                               std::string("\x15\0\0\x80\x3e", 5);  // 0.25f
  EXPECT_EQ(event, expected);
  const DecodedEvent version = decode_event(file_version_event(2.0));
  EXPECT_EQ(version.file_version, "brain.Event:2");
  EXPECT_EQ(version.step, 0);
  EXPECT_EQ(version.wall_time, 2.0);
}

TEST(TfEvents, TrainingRunWritesItsMetricsRowsAsScalars) {
  const fs::path dir = attnrank::testing::fresh_run_dir("tfevents", "run");
  const RunConfig config =
      load_config(std::string(ATTNRANK_SOURCE_DIR) + "/configs/tiny.yaml",
                  {"train.threads=1", "train.tensorboard=true", "train.eval_every=100"});
  ASSERT_EQ(train(config, dir.string(), TrainOptions{}).status, "done");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().starts_with("events.out.tfevents."))
      files.push_back(entry.path());
  ASSERT_EQ(files.size(), 1u);
  const std::vector<std::string> records = read_records(attnrank::testing::read_file(files[0]));
  // file_version, one event per metrics row (4), the final test metrics.
  ASSERT_EQ(records.size(), 6u);
  const DecodedEvent first = decode_event(records[0]);
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_GT(first.wall_time, 1.6e9);  // seconds since 1970, after 2020

  const MetricsTable table = read_metrics_table(dir.string());
  ASSERT_EQ(table.rows.size(), 4u);
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const DecodedEvent event = decode_event(records[i + 1]);
    const auto& row = table.rows[i];
    EXPECT_EQ(event.step, static_cast<int64_t>(row[0]));
    EXPECT_GE(event.wall_time, first.wall_time);
    std::map<std::string, float> values(event.values.begin(), event.values.end());
    EXPECT_FLOAT_EQ(values.at("train/loss"), static_cast<float>(row[1]));
    EXPECT_FLOAT_EQ(values.at("train/lr"), static_cast<float>(row[2]));
    EXPECT_FLOAT_EQ(values.at("train/grad_norm"), static_cast<float>(row[3]));
    if (std::isnan(row[4])) {
      EXPECT_EQ(values.size(), 3u);
    } else {
      EXPECT_FLOAT_EQ(values.at("validation/mse"), static_cast<float>(row[4]));
    }
  }
  const DecodedEvent last = decode_event(records[5]);
  EXPECT_EQ(last.step, 200);
  ASSERT_EQ(last.values.size(), 1u);
  EXPECT_EQ(last.values[0].first, "test/mse");
}
