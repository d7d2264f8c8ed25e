#include "attnrank/core/tfevents.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace attnrank {

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82f63b78u : 0u);
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

void append_fixed(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xffu);
}

void append_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7fu) | 0x80u);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

// A length-delimited field (wire type 2).
void append_bytes(std::string& out, int field, const std::string& bytes) {
  append_varint(out, static_cast<uint64_t>(field) << 3 | 2u);
  append_varint(out, bytes.size());
  out += bytes;
}

template <typename T>
uint64_t bits_of(T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  if constexpr (sizeof(T) == 4) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
  } else {
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
  }
}

// Fields 1 (wall_time) and 2 (step) of an Event.
std::string event_header(double wall_time, int64_t step) {
  std::string event;
  event += '\x09';  // field 1, fixed64
  append_fixed(event, bits_of(wall_time), 8);
  event += '\x10';  // field 2, varint (int64: two's complement)
  append_varint(event, static_cast<uint64_t>(step));
  return event;
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name);
  for (char& c : host)
    if (c == '/') c = '_';
  return host;
}

double wall_clock_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ bytes[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string record;
  append_fixed(record, data.size(), 8);
  append_fixed(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  append_fixed(record, masked_crc32c(data.data(), data.size()), 4);
  return record;
}

std::string file_version_event(double wall_time) {
  std::string event = event_header(wall_time, 0);
  append_bytes(event, 3, "brain.Event:2");
  return event;
}

std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string entry;
    append_bytes(entry, 1, tag);
    entry += '\x15';  // field 2, fixed32
    append_fixed(entry, bits_of(value), 4);
    append_bytes(summary, 1, entry);
  }
  std::string event = event_header(wall_time, step);
  append_bytes(event, 5, summary);
  return event;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  const double now = wall_clock_seconds();
  path_ = (std::filesystem::path(dir) /
           ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + host_name()))
              .string();
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
  write(file_version_event(now));
}

void EventFileWriter::add_scalars(int64_t step, const Scalars& scalars) {
  write(scalars_event(wall_clock_seconds(), step, scalars));
}

void EventFileWriter::write(const std::string& event) {
  const std::string record = tfrecord(event);
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
}

}  // namespace attnrank
