#include "attnrank/threading.h"

#include <omp.h>

#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace attnrank {

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
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
