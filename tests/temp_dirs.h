// Per-process temporary paths for the tests: CTest runs each test of a program as
// its own process, side by side, so every name carries the pid; each path is
// removed when the process exits, unless ATTNRANK_KEEP_TEST_DIRS is set (to look
// at them after a failure).
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace attnrank::testing {

class TempPaths {
 public:
  static TempPaths& instance() {
    static TempPaths paths;
    return paths;
  }
  void add(const std::filesystem::path& path) {
    std::lock_guard lock(mutex_);
    paths_.push_back(path);
  }
  ~TempPaths() {
    if (std::getenv("ATTNRANK_KEEP_TEST_DIRS") != nullptr) return;
    std::error_code error;
    for (const auto& path : paths_) std::filesystem::remove_all(path, error);
  }

 private:
  std::mutex mutex_;
  std::vector<std::filesystem::path> paths_;
};

// TMP/attnrank_<prefix>_<pid>_<name>, not created; removed at exit.
inline std::filesystem::path process_temp_path(const std::string& prefix, const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("attnrank_" + prefix + "_" + std::to_string(::getpid()) + "_" + name);
  TempPaths::instance().add(path);
  return path;
}

}  // namespace attnrank::testing
