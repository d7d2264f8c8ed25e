// Files for the training tests: whole-file reads and fresh run directories under
// the temporary directory.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "temp_dirs.h"

namespace attnrank::testing {

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// TMP/attnrank_<prefix>_<pid>_<name> (temp_dirs.h), removed if present and not
// created: train() creates its run directory.
inline std::filesystem::path fresh_run_dir(const std::string& prefix, const std::string& name) {
  const auto dir = process_temp_path(prefix, name);
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace attnrank::testing
