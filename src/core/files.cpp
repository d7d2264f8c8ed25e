#include "attnrank/core/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace attnrank {

namespace {

// A device or pipe (/dev/stdout, /dev/full, a FIFO) is written in place: a
// temporary next to it would be a stray file in /dev, and a rename would replace
// the device.
void write_in_place(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path + ": write failed (disk full?)");
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
  std::error_code status_error;
  const auto status = std::filesystem::status(path, status_error);
  if (!status_error && std::filesystem::exists(status) &&
      !std::filesystem::is_regular_file(status) && !std::filesystem::is_directory(status))
    return write_in_place(path, text);
  const std::string temporary = path + ".tmp";
  auto fail = [&](const std::string& reason) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw std::runtime_error("cannot write " + path + ": " + reason);
  };
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(std::strerror(errno));
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t count = ::write(fd, text.data() + written, text.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      const int saved = errno;
      ::close(fd);
      fail(count < 0 ? std::strerror(saved) : "no progress");
    }
    written += static_cast<size_t>(count);
  }
  // Synced before the rename: after a crash the name holds the old file or the
  // whole new one.
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    fail(std::strerror(saved));
  }
  if (::close(fd) != 0) fail(std::strerror(errno));
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) fail(error.message());
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  sync_directory(parent.empty() ? "." : parent.string());
}

void sync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace attnrank
