// SGEMM peak probe: the best GFLOP/s OpenBLAS reaches on large square matrices
// with the given thread count. Prints one JSON line.
#include <cblas.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "attnrank/core/threading.h"

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  attnrank::set_threads(threads);
  double best = 0;
  int best_size = 0;
  for (int n : {1024, 2048, 3072}) {
    std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
    for (int repeat = 0; repeat < 4; ++repeat) {
      const auto start = std::chrono::steady_clock::now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(),
                  n, 0.0f, c.data(), n);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double gflops = 2.0 * n * n * double(n) / seconds / 1e9;
      if (gflops > best) {
        best = gflops;
        best_size = n;
      }
    }
  }
  fmt::print("{{\"sgemm_peak_gflops\": {:.1f}, \"size\": {}, \"threads\": {}}}\n", best, best_size,
             attnrank::current_threads());
}
