// Micro-benchmarks of the row and column kernels outside attention's products, in the
// shapes the training steps give them. add_column_sums: the in-projection bias
// gradient, called inside attention's parallel region with each thread adding one
// sample's rows at a time (per_thread 1; a whole thread range before 2026-12-07),
// and the dense layers' bias gradients, called outside it (per_thread 0).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

#include "attnrank/core/rng.h"
#include "attnrank/core/threading.h"
#include "attnrank/kernels/kernels.h"

using namespace attnrank;

namespace {

std::vector<float> random_matrix(int rows, int cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> matrix(static_cast<size_t>(rows) * cols);
  for (float& value : matrix) value = static_cast<float>(rng.normal());
  return matrix;
}

void BM_ColumnSums(benchmark::State& state) {
  set_threads(0);
  const int rows = static_cast<int>(state.range(0)), cols = static_cast<int>(state.range(1));
  const bool per_thread = state.range(2) != 0;
  const kernels::KernelTable<float>& kernel = kernels::active<float>();
  const int threads = per_thread ? omp_get_max_threads() : 1;
  // The qkv gradient's rows lie AttentionShape::padded_row(cols) apart, as attention
  // lays them out; a dense layer's are contiguous.
  const int ld = per_thread ? AttentionShape::padded_row(cols) : cols;
  std::vector<std::vector<float>> matrices, sums;
  for (int t = 0; t < threads; ++t) {
    matrices.push_back(random_matrix(rows, ld, 1 + t));
    sums.emplace_back(cols);
  }
  for (auto _ : state) {
    if (per_thread) {
#pragma omp parallel num_threads(threads)
      {
        const int t = omp_get_thread_num();
        kernel.add_column_sums(matrices[t].data(), rows, cols, ld, sums[t].data());
      }
    } else {
      kernel.add_column_sums(matrices[0].data(), rows, cols, ld, sums[0].data());
    }
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] = benchmark::Counter(4e-9 * threads * rows * static_cast<double>(cols),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// {rows, cols, per_thread}: per thread, one sample of heads-lm's qkv gradient (32 x
// 1536) and of reference configuration 5's (16 x 12288), as attention calls it, and
// whole thread ranges of them (512 or 2048 rows of 1536, 2048 x 12288: past the
// cache, the wide blocks); a dense layer's bias gradients (4096 x 2048, 4096 x 64).
BENCHMARK(BM_ColumnSums)
    ->Args({32, 1536, 1})
    ->Args({16, 12288, 1})
    ->Args({512, 1536, 1})
    ->Args({2048, 1536, 1})
    ->Args({2048, 12288, 1})
    ->Args({4096, 2048, 0})
    ->Args({4096, 64, 0})
    ->ArgNames({"rows", "cols", "per_thread"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
