// OpenBLAS on the products of one heads-lm training shard (512 token rows, d = 32,
// H = 4, r = 32: qkv width 384, context 128, MLP 128, vocabulary 256), one thread:
// how fast the BLAS itself runs at the shapes where K or N is d = 32, against the
// large square matrices of sgemm_peak. Prints one line per product and the total.
//   build/release/bench/sgemm_shapes
#include <cblas.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "attnrank/core/threading.h"

namespace {

struct Product {
  const char* name;
  bool transposed_a, transposed_b;
  int m, n, k;
  float beta;  // 1 where the layer adds to a bias already in C
};

}  // namespace

int main() {
  attnrank::set_threads(1);
  const Product products[] = {
      {"in-projection forward", false, true, 512, 384, 32, 0},
      {"in-projection dX", false, false, 512, 32, 384, 0},
      {"in-projection dW", true, false, 384, 32, 512, 0},
      {"out-projection forward", false, true, 512, 32, 128, 1},
      {"out-projection dX", false, false, 512, 128, 32, 0},
      {"out-projection dW", true, false, 32, 128, 512, 0},
      {"MLP in forward", false, true, 512, 128, 32, 1},
      {"MLP in dX", false, false, 512, 32, 128, 0},
      {"MLP in dW", true, false, 128, 32, 512, 0},
      {"MLP out forward", false, true, 512, 32, 128, 1},
      {"MLP out dX", false, false, 512, 128, 32, 0},
      {"MLP out dW", true, false, 32, 128, 512, 0},
      {"vocabulary forward", false, true, 512, 256, 32, 0},
      {"vocabulary dX", false, false, 512, 32, 256, 0},
      {"vocabulary dW", true, false, 256, 32, 512, 0},
  };
  std::vector<float> a(512 * 512, 0.5f), b(512 * 512, 0.25f), c(512 * 512);
  double total_ms = 0, total_flop = 0;
  for (const Product& p : products) {
    const int lda = p.transposed_a ? p.m : p.k, ldb = p.transposed_b ? p.k : p.n;
    double best_ms = 1e9;
    for (int repeat = 0; repeat < 200; ++repeat) {  // the fastest of 200 rounds of 10
      const auto start = std::chrono::steady_clock::now();
      for (int call = 0; call < 10; ++call)
        cblas_sgemm(CblasRowMajor, p.transposed_a ? CblasTrans : CblasNoTrans,
                    p.transposed_b ? CblasTrans : CblasNoTrans, p.m, p.n, p.k, 1.0f, a.data(), lda,
                    b.data(), ldb, p.beta, c.data(), p.n);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count() /
          10;
      best_ms = std::min(best_ms, ms);
    }
    const double flop = 2.0 * p.m * p.n * p.k;
    total_ms += best_ms;
    total_flop += flop;
    fmt::print("{:<24} m {:4} n {:4} k {:4}  {:.4f} ms  {:5.1f} GFLOP/s\n", p.name, p.m, p.n, p.k,
               best_ms, flop / best_ms / 1e6);
  }
  fmt::print("all {:.3f} ms for {:.1f} MFLOP: {:.1f} GFLOP/s\n", total_ms, total_flop / 1e6,
             total_flop / total_ms / 1e6);
}
