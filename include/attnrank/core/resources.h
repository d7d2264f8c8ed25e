// Resource limits checked before work starts: the memory a run may use, bounded
// file reads (so /dev/zero or a huge file is an error, not an endless read) and
// the largest thread count.
#pragma once
#include <cstddef>
#include <string>

namespace attnrank {

// The most worker threads a run may ask for (train.threads, --threads). OpenBLAS
// as Debian builds it runs at most 64 threads (MAX_THREADS=64).
inline constexpr int kMaxThreads = 64;

// Bytes this process may still allocate, and what limits it: the tightest of
// MemAvailable (/proc/meminfo), the cgroup v2 memory.max of this process's cgroup
// and its ancestors (minus memory.current), and RLIMIT_AS (minus the address
// space in use). `limit` names the binding one, e.g. "MemAvailable".
struct MemoryBudget {
  double bytes = 0;  // +inf when nothing could be read
  std::string limit;
};
MemoryBudget available_memory();

// ATTNRANK_MEMORY_MB when set (for tests and for sharing a machine; a positive
// number of MiB, else ConfigError), otherwise available_memory(): the budget
// check_memory goes by.
MemoryBudget memory_budget();

// What the machine or container holds in all, whatever is in use now: MemTotal,
// or the tightest cgroup v2 memory.max above this process; ATTNRANK_MEMORY_MB
// when set. A sweep plans its concurrent runs by it, so the plan (and each run's
// thread count) does not change with the momentary load. RLIMIT_AS is left out:
// it limits each process, not their sum.
MemoryBudget total_memory();

// Throws ConfigError "WHAT needs X MiB of memory, but only Y MiB are available
// (LIMIT); HINT" when need_bytes exceeds available_memory(). ATTNRANK_MEMORY_MB,
// when set, replaces the measured budget (for tests and for sharing a machine).
void check_memory(double need_bytes, const std::string& what, const std::string& hint);

// Under an address-space limit (RLIMIT_AS, ulimit -v), each worker thread costs
// OpenBLAS's per-thread buffers and a stack; when they cannot be mapped OpenBLAS
// retries forever instead of failing. Throws ConfigError naming `key` when
// `threads` threads would not fit (about 128 MiB of address space each, measured:
// 16 threads run and 32 hang under ulimit -v 3000000) beside `model_bytes` not yet
// allocated; does nothing without a limit.
void check_thread_address_space(int threads, const std::string& key, double model_bytes = 0);

// Reads a whole file of at most max_bytes; throws ConfigError naming the path (and
// `what`: "config file", "sweep spec") when it is missing, a directory, unreadable
// or longer (a device such as /dev/zero, a pipe that never ends).
std::string read_file_bounded(const std::string& path, size_t max_bytes, const std::string& what);

// 1 MiB, 16 MiB, ...: the limit on text inputs such as configs and sweep specs.
inline constexpr size_t kMaxTextInputBytes = size_t{16} << 20;

}  // namespace attnrank
