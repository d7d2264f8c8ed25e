// TensorBoard event files (events.out.tfevents.*), written without TensorFlow or
// protobuf: a sequence of TFRecords, each
//
//   uint64 length (little-endian), uint32 masked CRC32C of those 8 bytes,
//   `length` bytes of data, uint32 masked CRC32C of the data,
//
// where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 and CRC32C is the
// Castagnoli CRC (reflected polynomial 0x82f63b78). Each record's data is a
// tensorflow.Event protobuf; the fields written (tag = field << 3 | wire type):
//
//   Event:   1 wall_time (double, 0x09), 2 step (int64 varint, 0x10),
//            3 file_version (string, 0x1a; "brain.Event:2", first event only),
//            5 summary (Summary, 0x2a)
//   Summary: 1 value (repeated Summary.Value, 0x0a)
//   Value:   1 tag (string, 0x0a), 2 simple_value (float, fixed32 0x15)
//
// TensorBoard (and W&B's TensorBoard sync) read these as scalars by tag.
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace attnrank {

// CRC32C of `size` bytes, continuing from `crc` (0 for a fresh checksum).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
// The masked CRC32C a TFRecord stores.
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord holding `data`.
std::string tfrecord(const std::string& data);

using Scalars = std::vector<std::pair<std::string, float>>;
// An Event protobuf: the file_version event that opens a file, or a scalar summary.
std::string file_version_event(double wall_time);
std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars);

// Appends events to DIR/events.out.tfevents.<unix seconds>.<host name>, flushed
// after each record so TensorBoard shows a run while it trains. Throws
// std::runtime_error naming the file when it cannot be created or written.
class EventFileWriter {
 public:
  explicit EventFileWriter(const std::string& dir);
  const std::string& path() const { return path_; }
  // Scalars at `step`, stamped with the current wall-clock time.
  void add_scalars(int64_t step, const Scalars& scalars);

 private:
  void write(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace attnrank
