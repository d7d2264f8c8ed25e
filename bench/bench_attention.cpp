// Micro-benchmarks of the attention kernels (forward and backward) across heads H,
// rank r, width multiplier c, sequence length N and width d: the published model
// (d = 64, batch 256), the small presets' regime (d = 16, N = 8, batch 128), where
// many heads of rank 1 must cost what one head of rank 16 costs, and the heads-lm
// shapes (causal, d = 32, N = 32, batch 32).
#include <benchmark/benchmark.h>

#include <vector>

#include "attnrank/core/rng.h"
#include "attnrank/core/threading.h"
#include "attnrank/nn/attention.h"

using namespace attnrank;

namespace {

struct AttentionBuffers {
  explicit AttentionBuffers(const AttentionShape& s) {
    const size_t rows = static_cast<size_t>(s.batch) * s.tokens;
    Rng rng(1);
    auto fill = [&](std::vector<float>& v, size_t n, double scale) {
      v.resize(n);
      for (auto& value : v) value = static_cast<float>(scale * rng.normal());
    };
    fill(x, rows * s.width, 0.125);
    fill(in_weight, static_cast<size_t>(s.qkv_width()) * s.width, 0.1);
    fill(in_bias, s.qkv_width(), 0.01);
    fill(out_weight, static_cast<size_t>(s.width) * s.context_width(), 0.1);
    fill(out_bias, static_cast<size_t>(s.modules) * s.width, 0.01);
    fill(d_out, rows * s.width, 0.01);
    qkv.resize(rows * s.qkv_stride());
    d_qkv.resize(qkv.size());
    probs.resize(rows * s.modules * s.heads * s.tokens);
    context.resize(rows * s.context_stride());
    d_context.resize(context.size());
    out.resize(rows * s.width);
    dx.resize(x.size());
    d_in_weight.resize(in_weight.size());
    d_in_bias.resize(in_bias.size());
    d_out_weight.resize(out_weight.size());
    d_out_bias.resize(out_bias.size());
  }
  std::vector<float> x, in_weight, in_bias, out_weight, out_bias, d_out, qkv, d_qkv, probs, context,
      d_context, out, dx, d_in_weight, d_in_bias, d_out_weight, d_out_bias;
};

AttentionShape shape_of(const benchmark::State& state) {
  AttentionShape s;
  s.width = static_cast<int>(state.range(4));
  s.batch = s.width >= 64 ? 256 : (s.width == 32 ? 32 : 128);
  if (state.range(5) != 0) s.mask = AttentionMask::kCausal;
  s.heads = static_cast<int>(state.range(0));
  s.rank = static_cast<int>(state.range(1));
  s.value_rank = s.rank;
  s.modules = static_cast<int>(state.range(2));
  s.tokens = static_cast<int>(state.range(3));
  return s;
}

void set_counters(benchmark::State& state, const AttentionShape& s, double passes) {
  const double rows = double(s.batch) * s.tokens;
  const double heads = double(s.modules) * s.heads;
  const double flops =
      passes * (2 * rows * s.width * s.qkv_width() +
                2 * s.batch * heads * s.tokens * s.tokens * (s.rank + s.value_rank) +
                2 * rows * s.context_width() * s.width);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_AttentionForward(benchmark::State& state) {
  set_threads(0);
  const AttentionShape s = shape_of(state);
  AttentionBuffers b(s);
  for (auto _ : state)
    attention_forward(s, b.x.data(), b.in_weight.data(), b.in_bias.data(), b.out_weight.data(),
                      b.out_bias.data(), b.qkv.data(), b.probs.data(), b.context.data(),
                      b.out.data());
  set_counters(state, s, 1);
}

void BM_AttentionBackward(benchmark::State& state) {
  set_threads(0);
  const AttentionShape s = shape_of(state);
  AttentionBuffers b(s);
  attention_forward(s, b.x.data(), b.in_weight.data(), b.in_bias.data(), b.out_weight.data(),
                    b.out_bias.data(), b.qkv.data(), b.probs.data(), b.context.data(),
                    b.out.data());
  for (auto _ : state)
    attention_backward(s, b.d_out.data(), b.x.data(), b.in_weight.data(), b.out_weight.data(),
                       b.qkv.data(), b.probs.data(), b.context.data(), b.d_context.data(),
                       b.d_qkv.data(), b.dx.data(), b.d_in_weight.data(), b.d_in_bias.data(),
                       b.d_out_weight.data(), b.d_out_bias.data());
  set_counters(state, s, 2);
}

// {H, r, c, N, d, causal}: the reference configurations, the published rank sweep at
// c = 1 (r = 64/H), a sequence-length sweep, the small presets (d = 16, c = 4, N = 8)
// and the heads-lm ones (causal, d = 32, N = 32, r = 32/H or 32; the FLOP counter
// counts every score, also the masked ones).
void arguments(benchmark::internal::Benchmark* b) {
  for (auto args : std::vector<std::vector<int64_t>>{{1, 64, 1, 16},
                                                     {8, 8, 1, 16},
                                                     {1, 64, 8, 16},
                                                     {8, 8, 8, 16},
                                                     {2, 32, 64, 16},
                                                     {4, 16, 8, 16},
                                                     {64, 1, 1, 16},
                                                     {16, 4, 1, 16},
                                                     {1, 64, 1, 64},
                                                     {8, 8, 1, 64},
                                                     {1, 64, 1, 4}}) {
    args.push_back(64);
    args.push_back(0);
    b->Args(args);
  }
  for (int heads : {1, 4, 16}) b->Args({heads, 16 / heads, 4, 8, 16, 0});
  for (int heads : {1, 4, 16}) b->Args({heads, 32 / heads, 1, 32, 32, 1});
  for (int heads : {4, 16}) b->Args({heads, 32, 1, 32, 32, 1});
  b->ArgNames({"H", "r", "c", "N", "d", "causal"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_AttentionForward)->Apply(arguments);
BENCHMARK(BM_AttentionBackward)->Apply(arguments);
BENCHMARK_MAIN();
