// Finite-difference gradient checks (float64) for every layer's backward.
#include <gtest/gtest.h>

#include <cmath>

#include "attnrank/core/threading.h"
#include "attnrank/kernels/head_layout.h"
#include "attnrank/nn/attention.h"
#include "attnrank/nn/layers.h"
#include "gradcheck.h"

using namespace attnrank;
using attnrank::testing::expect_gradient_matches;
using attnrank::testing::random_vector;

namespace {

double weighted_sum(const std::vector<double>& y, const std::vector<double>& w) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * w[i];
  return s;
}

}  // namespace

TEST(GradCheck, Linear) {
  for (bool with_bias : {true, false}) {
    const int rows = 5, in = 4, out = 3;
    auto x = random_vector(rows * in, 1), w = random_vector(out * in, 2), b = random_vector(out, 3);
    auto probe = random_vector(rows * out, 4);
    std::vector<double> y(rows * out);
    auto loss = [&] {
      linear_forward(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), rows, in, out);
      return weighted_sum(y, probe);
    };
    loss();
    std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
    linear_backward(probe.data(), x.data(), w.data(), dx.data(), dw.data(),
                    with_bias ? db.data() : nullptr, rows, in, out);
    expect_gradient_matches("linear x", x, dx, loss);
    expect_gradient_matches("linear w", w, dw, loss);
    if (with_bias) expect_gradient_matches("linear b", b, db, loss);
  }
}

TEST(GradCheck, SphereNorm) {
  const int rows = 6, width = 5;
  auto x = random_vector(rows * width, 7);
  std::vector<double> scale{1.7};
  auto probe = random_vector(rows * width, 8);
  std::vector<double> y(rows * width), inv(rows);
  auto loss = [&] {
    sphere_norm_forward(x.data(), scale[0], y.data(), inv.data(), rows, width);
    return weighted_sum(y, probe);
  };
  loss();
  std::vector<double> dx(x.size()), dscale(1);
  sphere_norm_backward(probe.data(), x.data(), scale[0], inv.data(), dx.data(), dscale.data(), rows,
                       width);
  expect_gradient_matches("sphere x", x, dx, loss);
  expect_gradient_matches("sphere scale", scale, dscale, loss);
}

TEST(GradCheck, LayerNorm) {
  const int rows = 6, width = 5;
  auto x = random_vector(rows * width, 9), w = random_vector(width, 10),
       b = random_vector(width, 11);
  auto probe = random_vector(rows * width, 12);
  std::vector<double> y(rows * width), mean(rows), rstd(rows);
  auto loss = [&] {
    layer_norm_forward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows,
                       width);
    return weighted_sum(y, probe);
  };
  loss();
  std::vector<double> dx(x.size()), dw(width), db(width);
  layer_norm_backward(probe.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(),
                      dw.data(), db.data(), rows, width);
  expect_gradient_matches("layernorm x", x, dx, loss);
  expect_gradient_matches("layernorm w", w, dw, loss);
  expect_gradient_matches("layernorm b", b, db, loss);
}

struct AttentionCase {
  int batch, tokens, width, heads, rank, value_rank, modules;
  AttentionMask mask;
  int key_limit;
  bool bias;
  int threads = 0;  // 0: every hardware thread; > 0 where the path taken depends on it
};

class AttentionGradCheck : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionGradCheck, MatchesFiniteDifferences) {
  const AttentionCase c = GetParam();
  set_threads(c.threads);
  struct RestoreThreads {
    ~RestoreThreads() { set_threads(0); }
  } restore_threads;
  AttentionShape s;
  s.batch = c.batch;
  s.tokens = c.tokens;
  s.width = c.width;
  s.heads = c.heads;
  s.rank = c.rank;
  s.value_rank = c.value_rank;
  s.modules = c.modules;
  s.mask = c.mask;
  s.key_limit = c.key_limit;
  const size_t rows = static_cast<size_t>(c.batch) * c.tokens;
  auto x = random_vector(rows * c.width, 21);
  auto in_w = random_vector(static_cast<size_t>(s.qkv_width()) * c.width, 22, 0.7);
  auto in_b = random_vector(s.qkv_width(), 23, 0.3);
  auto out_w = random_vector(static_cast<size_t>(c.width) * s.context_width(), 24, 0.7);
  auto out_b = random_vector(static_cast<size_t>(c.modules) * c.width, 25, 0.3);
  auto probe = random_vector(rows * c.width, 26);
  std::vector<double> qkv(rows * s.qkv_stride()), context(rows * s.context_stride()),
      probs(rows * c.modules * c.heads * c.tokens), out(rows * c.width);
  auto loss = [&] {
    attention_forward(s, x.data(), in_w.data(), c.bias ? in_b.data() : nullptr, out_w.data(),
                      c.bias ? out_b.data() : nullptr, qkv.data(), probs.data(), context.data(),
                      out.data());
    return weighted_sum(out, probe);
  };
  loss();
  std::vector<double> d_context(context.size()), d_qkv(qkv.size()), dx(x.size()),
      d_in_w(in_w.size()), d_in_b(in_b.size()), d_out_w(out_w.size()), d_out_b(out_b.size());
  attention_backward(s, probe.data(), x.data(), in_w.data(), out_w.data(), qkv.data(), probs.data(),
                     context.data(), d_context.data(), d_qkv.data(), dx.data(), d_in_w.data(),
                     c.bias ? d_in_b.data() : nullptr, d_out_w.data(),
                     c.bias ? d_out_b.data() : nullptr);
  expect_gradient_matches("attention x", x, dx, loss, 60);
  expect_gradient_matches("attention in_w", in_w, d_in_w, loss, 60);
  expect_gradient_matches("attention out_w", out_w, d_out_w, loss, 60);
  if (c.bias) {
    expect_gradient_matches("attention in_b", in_b, d_in_b, loss, 60);
    expect_gradient_matches("attention out_b", out_b, d_out_b, loss, 60);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionGradCheck,
    ::testing::Values(
        // batch, tokens, width, heads, rank, value_rank, modules, mask, key_limit, bias
        AttentionCase{2, 4, 6, 1, 6, 6, 1, AttentionMask::kFull, 0, true},    // full rank
        AttentionCase{2, 4, 6, 3, 2, 2, 1, AttentionMask::kFull, 0, true},    // r = d/H
        AttentionCase{2, 5, 6, 2, 5, 3, 1, AttentionMask::kFull, 0, true},    // r != d/H, r_v != r
        AttentionCase{2, 4, 6, 2, 3, 3, 3, AttentionMask::kFull, 0, true},    // c > 1
        AttentionCase{1, 5, 4, 2, 1, 2, 2, AttentionMask::kPrefix, 3, true},  // nearest mask
        AttentionCase{2, 5, 4, 2, 2, 1, 2, AttentionMask::kCausal, 0, true},  // causal
        AttentionCase{2, 4, 6, 4, 7, 2, 2, AttentionMask::kFull, 0, false},   // r > d, no bias
        // Many rank-1 heads: the kernels' lane order, with a partly filled last group.
        AttentionCase{2, 3, 4, 10, 1, 1, 2, AttentionMask::kCausal, 0, true},
        // Rows a multiple of 256 wide, laid out padded (AttentionShape::qkv_stride):
        // 64 heads of rank 4 (qkv 768, context 256) and 2 heads of rank 64 (512, 256;
        // one head at a time where a vector holds 4 or more doubles, in lanes below).
        AttentionCase{2, 3, 2, 16, 4, 4, 4, AttentionMask::kFull, 0, true},
        AttentionCase{2, 3, 2, 1, 64, 128, 2, AttentionMask::kCausal, 0, true},
        // qkv rows 12288 wide (reference configuration 5's heads): blocks of one
        // sample (attention.cpp's block_samples), so with two threads the second runs
        // two blocks of its two samples.
        AttentionCase{3, 16, 2, 2, 32, 32, 64, AttentionMask::kFull, 0, true},
        // dW_in on packed_gemm_at with two threads (work past worth_parallel's bound),
        // 260 rows each (two depth blocks of the packed x) and a qkv width of 192 (rows
        // of dW_in in chunks of 48 or 96); short sequences keep it cheap under qemu.
        AttentionCase{40, 13, 4, 4, 8, 8, 2, AttentionMask::kCausal, 0, true, 2},
        // dW_in block by block (attention.cpp's blockwise_in_gradient), two threads: each
        // thread's 24 samples of qkv rows (1536 wide, 1552 apart: 1.2 MB of doubles)
        // past 1 MB, in blocks of 5 samples of 4 tokens (about 256 KB of rows), so five
        // blocks, the later ones adding to the first's partial and reusing its dqkv and
        // context gradient rows; the next sample's rows fetched.
        AttentionCase{48, 4, 2, 16, 32, 32, 1, AttentionMask::kCausal, 0, true, 2},
        // Rows past 1 MB but a partial dW_in of 4001 x 9 doubles (288 KB) past the
        // blockwise bound: dW_in over each thread's whole range on packed_gemm_at, dqkv
        // keeping the rows of both blocks (4 + 2 samples of 16 tokens, qkv rows 4001
        // wide) of each of two threads, the next sample's dqkv rows fetched for
        // writing, across the blocks' boundary too. One head of rank 2000 and value
        // rank 1 keeps the loss small enough for the finite differences (with 16 heads
        // of value rank 128 they differed from the analytic gradient by 2e-6, as much
        // as a sum over the single samples, which agrees to 1e-15).
        AttentionCase{12, 16, 9, 1, 2000, 1, 1, AttentionMask::kCausal, 0, true, 2}));

// The ten rank-1 heads above run in the kernels' lane order (not every case does).
TEST(GradCheck, ManySmallHeadsRunInTheLaneOrder) {
  AttentionShape s;
  s.tokens = 3;
  s.width = 4;
  s.heads = 10;
  s.rank = 1;
  s.value_rank = 1;
  s.modules = 2;
  EXPECT_FALSE(kernels::head_layout<double>(s).model_order());
}

TEST(GradCheck, BlockedMlp) {
  // 1100 rows: several blocks per thread and a per-thread reduction of the weight gradients.
  for (bool with_bias : {true, false}) {
    const int rows = 1100, width = 3, ffn = 5;
    auto x = random_vector(rows * width, 41), w1 = random_vector(ffn * width, 42),
         b1 = random_vector(ffn, 43), w2 = random_vector(width * ffn, 44),
         b2 = random_vector(width, 45), probe = random_vector(rows * width, 46);
    std::vector<double> hidden(rows * ffn), y(rows * width);
    auto loss = [&] {
      mlp_forward(x.data(), w1.data(), with_bias ? b1.data() : nullptr, w2.data(),
                  with_bias ? b2.data() : nullptr, hidden.data(), y.data(), rows, width, ffn);
      return weighted_sum(y, probe);
    };
    loss();
    std::vector<double> scratch(mlp_scratch_size(rows, width, ffn)), dx(x.size()), dw1(w1.size()),
        db1(ffn), dw2(w2.size()), db2(width);
    mlp_backward(probe.data(), x.data(), hidden.data(), w1.data(), w2.data(), scratch.data(),
                 scratch.size(), dx.data(), dw1.data(), with_bias ? db1.data() : nullptr,
                 dw2.data(), with_bias ? db2.data() : nullptr, rows, width, ffn);
    expect_gradient_matches("mlp x", x, dx, loss, 30);
    expect_gradient_matches("mlp w1", w1, dw1, loss);
    expect_gradient_matches("mlp w2", w2, dw2, loss);
    if (with_bias) {
      expect_gradient_matches("mlp b1", b1, db1, loss);
      expect_gradient_matches("mlp b2", b2, db2, loss);
    }
  }
}

TEST(GradCheck, EmbeddingScattersIntoRepeatedTokens) {
  const int rows = 6, vocabulary = 4, width = 3, stride = 5;
  const std::vector<int32_t> tokens{2, 0, 2, 3, 2, 0};  // repeats, token 1 unused
  auto table = random_vector(vocabulary * width, 11);
  auto probe = random_vector(rows * stride, 12);
  for (int row = 0; row < rows; ++row)  // padding columns beyond width carry no gradient
    for (int i = width; i < stride; ++i) probe[row * stride + i] = 0.0;
  std::vector<double> y(rows * stride, 0.0);
  auto loss = [&] {
    embedding_forward(tokens.data(), table.data(), y.data(), rows, vocabulary, width, stride);
    return weighted_sum(y, probe);
  };
  loss();
  std::vector<double> dtable(table.size(), 0.0);
  embedding_backward(tokens.data(), probe.data(), dtable.data(), rows, width, stride);
  expect_gradient_matches("embedding table", table, dtable, loss);
  for (int i = 0; i < width; ++i) EXPECT_EQ(dtable[1 * width + i], 0.0);
  const std::vector<int32_t> bad{0, 4};
  EXPECT_THROW(embedding_forward(bad.data(), table.data(), y.data(), 2, vocabulary, width, stride),
               std::out_of_range);
}

TEST(GradCheck, CrossEntropyIgnoresUnlabelledRows) {
  const int rows = 5, classes = 4;
  const std::vector<int32_t> labels{1, -1, 3, 0, -1};
  auto logits = random_vector(rows * classes, 13, 2.0);
  auto loss = [&] {
    return cross_entropy(logits.data(), labels.data(), rows, classes, (double*)nullptr).mean();
  };
  std::vector<double> d_logits(logits.size());
  const CrossEntropy result =
      cross_entropy(logits.data(), labels.data(), rows, classes, d_logits.data());
  EXPECT_EQ(result.scored, 3);
  // By hand: -log softmax at the label, averaged over the three labelled rows.
  double expected = 0.0;
  for (int row : {0, 2, 3}) {
    double sum = 0.0;
    for (int k = 0; k < classes; ++k) sum += std::exp(logits[row * classes + k]);
    expected += std::log(sum) - logits[row * classes + labels[row]];
  }
  EXPECT_NEAR(result.total, expected, 1e-12);
  EXPECT_NEAR(result.mean(), expected / 3, 1e-12);
  expect_gradient_matches("cross-entropy logits", logits, d_logits, loss);
  for (int k = 0; k < classes; ++k) EXPECT_EQ(d_logits[1 * classes + k], 0.0);
  const std::vector<int32_t> bad{4, 0, 0, 0, 0};
  EXPECT_THROW(cross_entropy(logits.data(), bad.data(), rows, classes, (double*)nullptr),
               std::out_of_range);
}
