// One thread count for both our OpenMP loops and OpenBLAS (the OpenMP build of
// OpenBLAS uses the same pool), so results depend only on this number.
#pragma once

namespace attnrank {

// CPUs this process may use: its affinity mask (taskset, Slurm), capped by a
// cgroup CPU quota where one is set; not the machine's core count.
int hardware_threads();
// Sets the thread count for OpenMP and OpenBLAS; 0 means hardware_threads().
void set_threads(int threads);
int current_threads();

}  // namespace attnrank
