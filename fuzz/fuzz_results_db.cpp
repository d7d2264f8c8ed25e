// The results database reader on a mutated SQLite file: the bytes are written to
// a file and opened as `attnrank results` does. It must read the runs or throw an
// error naming the file; a crash or sanitizer report is a finding. (SQLite's own
// errors outside our classification surface as std::runtime_error, also fine.)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "attnrank/experiment/results_store.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path file =
      fs::temp_directory_path() / ("attnrank_fuzz_" + std::to_string(::getpid()) + ".db");
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    fs::remove(file.string() + suffix, ignored);
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    const attnrank::ResultsStore store(file.string(), attnrank::ResultsStore::Mode::kRead);
    for (const attnrank::RunRecord& run : store.runs(true)) (void)run.metric("test_mse");
    (void)store.finished_ids();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
