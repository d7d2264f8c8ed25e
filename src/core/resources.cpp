#include "attnrank/core/resources.h"

#include <fmt/core.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "attnrank/core/error.h"

namespace attnrank {

namespace {

// A "Key:   1234 kB" line of a /proc file, in bytes; NaN when absent.
double proc_kib(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string name;
  double value = 0;
  std::string unit;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key + ":") return value * 1024.0;
  }
  return NAN;
}

// A cgroup file holding one number or "max"; NaN when absent or "max".
double cgroup_number(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return NAN;
  try {
    return std::stod(text);
  } catch (const std::exception&) {
    return NAN;
  }
}

// This process's cgroup v2 directory and its ancestors up to /sys/fs/cgroup.
std::vector<std::filesystem::path> cgroup_ancestry() {
  std::ifstream self("/proc/self/cgroup");
  std::string line, path = "/";
  while (std::getline(self, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  std::vector<std::filesystem::path> dirs;
  for (std::filesystem::path dir = std::filesystem::path("/sys/fs/cgroup") / path.substr(1);;
       dir = dir.parent_path()) {
    dirs.push_back(dir);
    if (dir == "/sys/fs/cgroup" || dir == dir.parent_path()) break;
  }
  return dirs;
}

void tighten(MemoryBudget& budget, double bytes, const std::string& limit) {
  if (std::isfinite(bytes) && bytes < budget.bytes) {
    budget.bytes = std::max(0.0, bytes);
    budget.limit = limit;
  }
}

double mib(double bytes) {
  return bytes / (1024.0 * 1024.0);
}

}  // namespace

MemoryBudget available_memory() {
  MemoryBudget budget{std::numeric_limits<double>::infinity(), "no limit found"};
  tighten(budget, proc_kib("/proc/meminfo", "MemAvailable"), "MemAvailable in /proc/meminfo");
  // cgroup v2: the tightest memory.max - memory.current up the hierarchy.
  for (const std::filesystem::path& dir : cgroup_ancestry()) {
    const double max = cgroup_number(dir / "memory.max");
    const double current = cgroup_number(dir / "memory.current");
    if (std::isfinite(max))
      tighten(budget, max - (std::isfinite(current) ? current : 0.0),
              "cgroup limit " + (dir / "memory.max").string());
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    const double used = proc_kib("/proc/self/status", "VmSize");
    tighten(budget, static_cast<double>(limit.rlim_cur) - (std::isfinite(used) ? used : 0.0),
            "RLIMIT_AS (ulimit -v)");
  }
  return budget;
}

namespace {

// ATTNRANK_MEMORY_MB in bytes, when set.
std::optional<MemoryBudget> forced_budget() {
  const char* forced = std::getenv("ATTNRANK_MEMORY_MB");
  if (forced == nullptr || *forced == '\0') return std::nullopt;
  char* end = nullptr;
  const double mebibytes = std::strtod(forced, &end);
  if (end == forced || *end != '\0' || !std::isfinite(mebibytes) || mebibytes <= 0)
    throw ConfigError(
        fmt::format("ATTNRANK_MEMORY_MB={}: expected a positive number of MiB", forced));
  return MemoryBudget{mebibytes * 1024.0 * 1024.0, "ATTNRANK_MEMORY_MB"};
}

}  // namespace

MemoryBudget memory_budget() {
  if (const auto forced = forced_budget()) return *forced;
  return available_memory();
}

MemoryBudget total_memory() {
  if (const auto forced = forced_budget()) return *forced;
  MemoryBudget budget{std::numeric_limits<double>::infinity(), "no limit found"};
  tighten(budget, proc_kib("/proc/meminfo", "MemTotal"), "MemTotal in /proc/meminfo");
  for (const std::filesystem::path& dir : cgroup_ancestry())
    tighten(budget, cgroup_number(dir / "memory.max"),
            "cgroup limit " + (dir / "memory.max").string());
  return budget;
}

void check_memory(double need_bytes, const std::string& what, const std::string& hint) {
  const MemoryBudget budget = memory_budget();
  if (!(need_bytes <= budget.bytes))
    throw ConfigError(fmt::format(
        "{} needs {:.4g} MiB of memory, but only {:.4g} MiB are "
        "available ({}){}",
        what, mib(need_bytes), mib(budget.bytes), budget.limit, hint.empty() ? "" : "; " + hint));
}

void check_thread_address_space(int threads, const std::string& key, double model_bytes) {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  const double used = proc_kib("/proc/self/status", "VmSize");
  const double left = static_cast<double>(limit.rlim_cur) - (std::isfinite(used) ? used : 0.0);
  constexpr double kPerThread = 128.0 * 1024 * 1024;
  // The model's memory comes out of the same address space as the threads'.
  const double for_threads = left - model_bytes;
  if (threads * kPerThread > for_threads)
    throw ConfigError(fmt::format(
        "{}: {} threads need about {:.0f} MiB of address space beside the model's {:.0f} MiB, but "
        "RLIMIT_AS (ulimit -v) leaves {:.0f} MiB; use at most {} threads or raise the limit",
        key, threads, mib(threads * kPerThread), mib(model_bytes), mib(left),
        std::max(1, static_cast<int>(for_threads / kPerThread))));
}

std::string read_file_bounded(const std::string& path, size_t max_bytes, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::exists(path, error)) throw ConfigError(path + ": " + what + " not found");
  if (fs::is_directory(path, error))
    throw ConfigError(path + ": is a directory, expected a " + what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read " + what + ": " + std::strerror(errno));
  std::string text;
  char buffer[1 << 16];
  while (in) {
    in.read(buffer, sizeof buffer);
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes)
      throw ConfigError(fmt::format("{}: {} is larger than {} MiB; is it the right file?", path,
                                    what, max_bytes >> 20));
  }
  if (in.bad()) throw ConfigError(path + ": cannot read " + what);
  return text;
}

}  // namespace attnrank
