#include "attnrank/threading.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
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

// A cgroup v2 CPU quota ("200000 100000" in cpu.max: 2 CPUs' worth), rounded up;
// 0 when there is none (docker --cpus, Kubernetes limits, systemd CPUQuota).
int cgroup_quota_cpus() {
  std::ifstream file("/sys/fs/cgroup/cpu.max");
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
