#include "attnrank/core/threading.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace attnrank {

namespace {

// CPUs this process may run on (taskset, Slurm's cgroup cpuset, numactl).
int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}

// CPUs' worth of one cgroup v2 cpu.max file ("200000 100000": 2), rounded up; 0
// when it sets no quota or cannot be read.
int quota_cpus(const std::string& path) {
  std::ifstream file(path);
  std::string quota;
  double period = 0;
  if (!(file >> quota >> period) || quota == "max" || period <= 0) return 0;
  try {
    const double cpus = std::stod(quota) / period;
    return cpus > 0 ? std::max(1, static_cast<int>(std::ceil(cpus))) : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

// The tightest cgroup v2 CPU quota on this process's cgroup and its ancestors
// (docker --cpus, Kubernetes limits, systemd CPUQuota), in CPUs; 0 when none.
// cgroup v1 (cpu.cfs_quota_us) is not read.
int cgroup_quota_cpus() {
  std::ifstream self("/proc/self/cgroup");
  std::string line, path = "/";
  while (std::getline(self, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  int tightest = 0;
  for (std::filesystem::path dir = std::filesystem::path("/sys/fs/cgroup") / path.substr(1);;
       dir = dir.parent_path()) {
    const int cpus = quota_cpus((dir / "cpu.max").string());
    if (cpus > 0 && (tightest == 0 || cpus < tightest)) tightest = cpus;
    if (dir == "/sys/fs/cgroup" || dir == dir.parent_path()) break;
  }
  return tightest;
}

}  // namespace

int hardware_threads() {
  int cpus = affinity_cpus();
  if (cpus <= 0) {
    const unsigned n = std::thread::hardware_concurrency();
    cpus = n == 0 ? 1 : static_cast<int>(n);
  }
  const int quota = cgroup_quota_cpus();
  return quota > 0 ? std::min(cpus, quota) : cpus;
}

void set_threads(int threads) {
  if (threads <= 0) threads = hardware_threads();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int current_threads() {
  return omp_get_max_threads();
}

}  // namespace attnrank
