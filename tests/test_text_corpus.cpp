// The real-text corpus, its byte tokenizer and split, and the lm/mlm batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>
#include <unordered_map>

#include "attnrank/core/error.h"
#include "attnrank/core/rng.h"
#include "attnrank/core/threading.h"
#include "attnrank/tasks/text_corpus.h"
#include "attnrank/tasks/text_task.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

const char* objective_label(TextObjective objective) {
  return objective == TextObjective::kLm ? "lm" : "mlm";
}

constexpr size_t kBlock = kSplitBlockBytes;
// 50 full blocks and a short one: blocks 18, 38 validation; 19, 39 test.
constexpr size_t kTestCorpusBytes = 50 * kBlock + 1000;

std::string random_bytes(uint64_t seed, size_t size) {
  Rng rng(seed, 99);
  std::string text(size, '\0');
  for (char& c : text) c = static_cast<char>(rng.next_u64() >> 56);
  return text;
}

// Random bytes locate themselves: every 8-byte substring occurs once, so a
// window's first 8 bytes give its offset in the corpus.
class Locator {
 public:
  explicit Locator(const std::string& text) : text_(text) {
    for (size_t i = 0; i + 8 <= text.size(); ++i) {
      const bool inserted = offsets_.emplace(key(text.data() + i), i).second;
      EXPECT_TRUE(inserted) << "test corpus has a repeated 8-byte substring at " << i;
    }
  }
  // Offset of the window whose bytes are `window` (n >= 8 of them); fails the
  // test if the whole window is not found there.
  size_t locate(const std::vector<int32_t>& window) const {
    std::string bytes(window.size(), '\0');
    for (size_t i = 0; i < window.size(); ++i) bytes[i] = static_cast<char>(window[i]);
    const auto it = offsets_.find(key(bytes.data()));
    if (it == offsets_.end()) {
      ADD_FAILURE() << "window not in the corpus";
      return std::string::npos;
    }
    EXPECT_EQ(text_.compare(it->second, bytes.size(), bytes), 0) << "window differs from text";
    return it->second;
  }

 private:
  static uint64_t key(const char* p) {
    uint64_t k = 0;
    for (int i = 0; i < 8; ++i) k = (k << 8) | static_cast<uint8_t>(p[i]);
    return k;
  }
  const std::string& text_;
  std::unordered_map<uint64_t, size_t> offsets_;
};

std::shared_ptr<const TextCorpus> test_corpus(size_t size = kTestCorpusBytes, uint64_t seed = 1) {
  return std::make_shared<const TextCorpus>("random", random_bytes(seed, size));
}

// The index of the span of `spans` containing [begin, end), or -1.
int containing_span(const std::vector<TextSpan>& spans, size_t begin, size_t end) {
  for (size_t i = 0; i < spans.size(); ++i)
    if (spans[i].begin <= begin && end <= spans[i].end) return static_cast<int>(i);
  return -1;
}

// The window of row `row`: for mlm the original bytes are the labels where
// scored, the inputs elsewhere.
std::vector<int32_t> original_row(const std::vector<int32_t>& inputs,
                                  const std::vector<int32_t>& labels, int row, int n) {
  std::vector<int32_t> original(n);
  for (int i = 0; i < n; ++i) {
    const size_t at = static_cast<size_t>(row) * n + i;
    original[i] = labels[at] >= 0 ? labels[at] : inputs[at];
  }
  return original;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("attnrank_text_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ / name, std::ios::binary) << bytes;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

}  // namespace

// ---- Tokenizer --------------------------------------------------------------

TEST(ByteTokenizer, RoundTripsAllByteValues) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::vector<int32_t> tokens = encode(all);
  ASSERT_EQ(tokens.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tokens[b], b);
  EXPECT_EQ(decode(tokens), all);
}

TEST(ByteTokenizer, RoundTripsRandomByteStrings) {
  EXPECT_EQ(decode(encode("")), "");
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(seed, 7);
    const std::string text = random_bytes(seed, rng.next_u64() % 300);
    const std::vector<int32_t> tokens = encode(text);
    ASSERT_EQ(tokens.size(), text.size());
    for (int32_t t : tokens) ASSERT_TRUE(t >= 0 && t < 256);
    EXPECT_EQ(decode(tokens), text);
  }
  const std::string invalid_utf8 = "\xff\xfe\xc3(\x80\xe2\x82";
  EXPECT_EQ(decode(encode(invalid_utf8)), invalid_utf8);
}

TEST(ByteTokenizer, DecodeRejectsNonBytes) {
  EXPECT_THROW(decode(std::vector<int32_t>{65, kMaskToken}), std::invalid_argument);
  EXPECT_THROW(decode(std::vector<int32_t>{-1}), std::invalid_argument);
  EXPECT_THROW(decode(std::vector<int32_t>{1000}), std::invalid_argument);
  EXPECT_EQ(decode(std::vector<int32_t>{104, 105, 0, 255}), std::string("hi\0\xff", 4));
}

TEST(ByteTokenizer, StartsCharacterIsFalseExactlyForContinuationBytes) {
  int continuation = 0;
  for (int b = 0; b < 256; ++b) {
    const bool expected = !(b >= 0x80 && b <= 0xBF);
    EXPECT_EQ(starts_character(static_cast<uint8_t>(b)), expected) << b;
    continuation += !expected;
  }
  EXPECT_EQ(continuation, 64);
}

TEST(ByteTokenizer, ChecksumIsFnv1a64) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

// ---- Split ------------------------------------------------------------------

TEST(TextSplit, SpansPartitionTheCorpus) {
  for (size_t size : {size_t{0}, size_t{1}, kBlock - 1, kBlock, kBlock + 1, 19 * kBlock,
                      20 * kBlock - 1, 20 * kBlock + 1, kTestCorpusBytes, 43 * kBlock + 17}) {
    std::vector<int> owner(size, -1);
    for (TextSplit split : kTextSplits) {
      const std::vector<TextSpan> spans = split_spans(size, split);
      for (size_t i = 0; i < spans.size(); ++i) {
        EXPECT_LT(spans[i].begin, spans[i].end) << "empty span";
        if (i > 0) {
          EXPECT_LT(spans[i - 1].end, spans[i].begin) << "unmerged or unordered spans";
        }
        for (size_t b = spans[i].begin; b < spans[i].end && b < size; ++b) {
          EXPECT_EQ(owner[b], -1) << "byte " << b << " in two spans";
          owner[b] = static_cast<int>(split);
          EXPECT_EQ(split_of_byte(b), split);
        }
        EXPECT_LE(spans[i].end, size);
      }
    }
    EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0) << "uncovered bytes, size " << size;
  }
}

TEST(TextSplit, ProportionsAreExactBlockCounts) {
  // 100 full blocks: 90 / 5 / 5.
  const TextCorpus hundred("h", std::string(100 * kBlock, 'x'));
  EXPECT_EQ(hundred.split_bytes(TextSplit::kTrain), 90 * kBlock);
  EXPECT_EQ(hundred.split_bytes(TextSplit::kValidation), 5 * kBlock);
  EXPECT_EQ(hundred.split_bytes(TextSplit::kTest), 5 * kBlock);
  EXPECT_EQ(hundred.spans(TextSplit::kTrain).size(), 5u);
  EXPECT_EQ(hundred.spans(TextSplit::kValidation).size(), 5u);
  EXPECT_EQ(hundred.spans(TextSplit::kValidation)[2], (TextSpan{58 * kBlock, 59 * kBlock}));
  EXPECT_EQ(hundred.spans(TextSplit::kTest)[4], (TextSpan{99 * kBlock, 100 * kBlock}));

  const TextCorpus corpus("c", std::string(kTestCorpusBytes, 'x'));
  EXPECT_EQ(corpus.spans(TextSplit::kTrain),
            (std::vector<TextSpan>{
                {0, 18 * kBlock}, {20 * kBlock, 38 * kBlock}, {40 * kBlock, kTestCorpusBytes}}));
  EXPECT_EQ(corpus.spans(TextSplit::kValidation),
            (std::vector<TextSpan>{{18 * kBlock, 19 * kBlock}, {38 * kBlock, 39 * kBlock}}));
  EXPECT_EQ(corpus.spans(TextSplit::kTest),
            (std::vector<TextSpan>{{19 * kBlock, 20 * kBlock}, {39 * kBlock, 40 * kBlock}}));
  EXPECT_EQ(corpus.longest_span(TextSplit::kTrain), 18 * kBlock);

  // The short last block keeps its rule: block 38 of a 38.5-block corpus is validation.
  const size_t size = 38 * kBlock + 100;
  EXPECT_EQ(split_spans(size, TextSplit::kValidation).back(), (TextSpan{38 * kBlock, size}));
}

// ---- Training batches ---------------------------------------------------------

TEST(TextTask, TrainWindowsNeverTouchValidationOrTestText) {
  const auto corpus = test_corpus();
  const Locator locator(corpus->text());
  // 4000-byte windows make crossing a span end likely for a wrong sampler.
  for (const TextObjective objective : {TextObjective::kLm, TextObjective::kMlm}) {
    for (int n : {16, 4000}) {
      const TextTask task(corpus, objective, n);
      const int batch = n > 100 ? 64 : 512;
      std::vector<int32_t> in(static_cast<size_t>(batch) * n), labels(in.size());
      for (uint64_t index = 0; index < 8; ++index) {
        task.generate(5, index, batch, in.data(), labels.data());
        for (int row = 0; row < batch; ++row) {
          const size_t start = locator.locate(original_row(in, labels, row, n));
          ASSERT_NE(start, std::string::npos);
          const size_t end = start + static_cast<size_t>(task.window_bytes());
          EXPECT_GE(containing_span(corpus->spans(TextSplit::kTrain), start, end), 0)
              << objective_label(objective) << " window [" << start << ", " << end
              << ") leaves the train spans";
          for (TextSplit held_out : {TextSplit::kValidation, TextSplit::kTest})
            for (const TextSpan& span : corpus->spans(held_out))
              ASSERT_TRUE(end <= span.begin || start >= span.end)
                  << objective_label(objective) << " window overlaps " << split_name(held_out);
        }
      }
    }
  }
}

TEST(TextTask, LmLabelsAreTheInputsShiftedByOne) {
  const auto corpus = test_corpus();
  const Locator locator(corpus->text());
  const int n = 32, batch = 100;
  const TextTask task(corpus, TextObjective::kLm, n);
  EXPECT_EQ(task.tokens(), n);
  EXPECT_EQ(task.vocabulary(), 256);
  std::vector<int32_t> in(batch * n), labels(in.size());
  task.generate(3, 0, batch, in.data(), labels.data());
  for (int row = 0; row < batch; ++row) {
    const size_t start =
        locator.locate(std::vector<int32_t>(in.begin() + row * n, in.begin() + (row + 1) * n));
    ASSERT_NE(start, std::string::npos);
    for (int i = 0; i < n; ++i) {
      if (i + 1 < n) {
        EXPECT_EQ(labels[row * n + i], in[row * n + i + 1]);
      }
      EXPECT_EQ(labels[row * n + i], corpus->byte(start + i + 1));
    }
  }
}

TEST(TextTask, TrainStartsAreUniformOverValidStarts) {
  const auto corpus = test_corpus();
  const Locator locator(corpus->text());
  const int n = 1024, batch = 500, batches = 40;
  const TextTask task(corpus, TextObjective::kLm, n);
  const auto& spans = corpus->spans(TextSplit::kTrain);
  std::vector<double> expected;
  uint64_t total = 0;
  for (const TextSpan& span : spans) total += span.size() - (n + 1) + 1;
  EXPECT_EQ(task.train_windows(), total);
  for (const TextSpan& span : spans)
    expected.push_back(static_cast<double>(span.size() - n) / static_cast<double>(total));

  std::vector<double> hits(spans.size(), 0.0);
  double first_half = 0.0;  // starts in the first half of their span's valid range
  std::vector<int32_t> in(batch * n), labels(in.size());
  for (int b = 0; b < batches; ++b) {
    task.generate(11, b, batch, in.data(), labels.data());
    for (int row = 0; row < batch; ++row) {
      const size_t start =
          locator.locate(std::vector<int32_t>(in.begin() + row * n, in.begin() + (row + 1) * n));
      const int s = containing_span(spans, start, start + n + 1);
      ASSERT_GE(s, 0);
      hits[s] += 1.0;
      first_half += (start - spans[s].begin) < (spans[s].size() - n) / 2 ? 1.0 : 0.0;
    }
  }
  const double draws = static_cast<double>(batch) * batches;
  for (size_t s = 0; s < spans.size(); ++s) {
    const double sigma = std::sqrt(expected[s] * (1 - expected[s]) / draws);
    EXPECT_NEAR(hits[s] / draws, expected[s], 5 * sigma) << "span " << s;
  }
  EXPECT_NEAR(first_half / draws, 0.5, 5 * std::sqrt(0.25 / draws));
}

TEST(TextTask, MlmMaskingFollowsBert) {
  const auto corpus = test_corpus();
  const Locator locator(corpus->text());
  const int n = 128, batch = 512, batches = 4;
  const TextTask task(corpus, TextObjective::kMlm, n);
  EXPECT_EQ(task.vocabulary(), 257);
  EXPECT_DOUBLE_EQ(task.mask_rate(), 0.15);
  double positions = 0, selected = 0, masked = 0, random_other = 0, unchanged = 0;
  std::set<int32_t> random_values;
  std::vector<int32_t> in(batch * n), labels(in.size());
  for (int b = 0; b < batches; ++b) {
    task.generate(21, b, batch, in.data(), labels.data());
    for (int row = 0; row < batch; ++row) {
      const size_t start = locator.locate(original_row(in, labels, row, n));
      ASSERT_NE(start, std::string::npos);
      for (int i = 0; i < n; ++i) {
        const int32_t input = in[row * n + i], label = labels[row * n + i];
        const int32_t text = corpus->byte(start + i);
        positions += 1;
        if (label == -1) {
          EXPECT_EQ(input, text) << "unselected position changed";
          continue;
        }
        ASSERT_EQ(label, text) << "label is not the original byte";
        selected += 1;
        if (input == kMaskToken) {
          masked += 1;
        } else if (input != text) {
          ASSERT_TRUE(input >= 0 && input < 256);
          random_other += 1;
          random_values.insert(input);
        } else {
          unchanged += 1;
        }
      }
    }
  }
  EXPECT_NEAR(selected / positions, 0.15, 0.004);
  EXPECT_NEAR(masked / selected, 0.8, 0.01);
  EXPECT_NEAR(random_other / selected, 0.1 * 255.0 / 256.0, 0.008);
  EXPECT_NEAR(unchanged / selected, 0.1 + 0.1 / 256.0, 0.008);
  EXPECT_GT(random_values.size(), 240u) << "replacement bytes are not uniform";
}

TEST(TextTask, MlmScoresAtLeastOnePositionPerWindow) {
  const auto corpus = test_corpus();
  const int n = 16, batch = 2000;
  std::vector<int32_t> in(batch * n), labels(in.size());
  const TextTask rare(corpus, TextObjective::kMlm, n, 1e-12);
  rare.generate(1, 0, batch, in.data(), labels.data());
  std::vector<int> chosen(n, 0);
  for (int row = 0; row < batch; ++row) {
    int scored = 0;
    for (int i = 0; i < n; ++i)
      if (labels[row * n + i] >= 0) {
        ++scored;
        ++chosen[i];
      }
    EXPECT_EQ(scored, 1);
  }
  for (int i = 0; i < n; ++i) EXPECT_GT(chosen[i], batch / n / 2) << "position " << i;

  const TextTask all(corpus, TextObjective::kMlm, n, 1.0);
  all.generate(1, 0, batch, in.data(), labels.data());
  EXPECT_EQ(std::count(labels.begin(), labels.end(), -1), 0);
}

TEST(TextTask, GenerationIsIndependentOfThreadCount) {
  const auto corpus = test_corpus();
  for (const TextObjective objective : {TextObjective::kLm, TextObjective::kMlm}) {
    const TextTask task(corpus, objective, 128);
    const size_t size = 256 * 128;
    std::vector<int32_t> in1(size), l1(size), in2(size), l2(size);
    set_threads(1);
    task.generate(7, 123, 256, in1.data(), l1.data());
    set_threads(2);
    task.generate(7, 123, 256, in2.data(), l2.data());
    set_threads(0);
    EXPECT_EQ(in1, in2) << objective_label(objective);
    EXPECT_EQ(l1, l2) << objective_label(objective);
  }
}

TEST(TextTask, SeedsAndIndicesGiveDifferentBatchesAndSamplesAreAddressed) {
  const auto corpus = test_corpus();
  for (const TextObjective objective : {TextObjective::kLm, TextObjective::kMlm}) {
    const TextTask task(corpus, objective, 32);
    const size_t size = 8 * 32;
    std::vector<int32_t> a(size), b(size), c(size), small(size / 2), labels(size);
    task.generate(1, 0, 8, a.data(), labels.data());
    task.generate(2, 0, 8, b.data(), labels.data());
    task.generate(1, 1, 8, c.data(), labels.data());
    task.generate(1, 0, 4, small.data(), labels.data());
    EXPECT_NE(a, b) << objective_label(objective);
    EXPECT_NE(a, c) << objective_label(objective);
    EXPECT_TRUE(std::equal(small.begin(), small.end(), a.begin())) << objective_label(objective);
  }
}

// ---- Evaluation ---------------------------------------------------------------

TEST(TextTask, LmEvaluationPredictsEveryNonFirstByteOfEverySpanOnce) {
  const auto corpus = test_corpus();
  for (int n : {1, 100, 4095}) {
    const TextTask task(corpus, TextObjective::kLm, n);
    for (TextSplit split : kTextSplits) {
      size_t expected_windows = 0;
      std::vector<int32_t> expected_inputs, expected_labels;
      for (const TextSpan& span : corpus->spans(split)) {
        expected_windows += (span.size() - 1 + n - 1) / n;
        for (size_t b = span.begin; b + 1 < span.end; ++b) {
          expected_inputs.push_back(corpus->byte(b));
          expected_labels.push_back(corpus->byte(b + 1));
        }
      }
      const size_t windows = task.evaluation_windows(split);
      ASSERT_EQ(windows, expected_windows) << split_name(split) << " n=" << n;
      std::vector<int32_t> in(windows * n), labels(in.size());
      task.evaluation_batch(split, 0, 0, static_cast<int>(windows), in.data(), labels.data());
      std::vector<int32_t> got_inputs, got_labels;
      for (size_t w = 0; w < windows; ++w) {
        bool padding = false;
        for (int i = 0; i < n; ++i) {
          const size_t at = w * n + i;
          if (labels[at] == -1) padding = true;
          if (padding) {
            ASSERT_EQ(labels[at], -1) << "scored position after padding";
            ASSERT_EQ(in[at], 0);
          } else {
            got_inputs.push_back(in[at]);
            got_labels.push_back(labels[at]);
          }
        }
        ASSERT_FALSE(padding && labels[w * n] == -1) << "empty window " << w;
      }
      EXPECT_EQ(got_labels, expected_labels) << split_name(split) << " n=" << n;
      EXPECT_EQ(got_inputs, expected_inputs) << split_name(split) << " n=" << n;

      // Chunks give the same windows; past the end is an error.
      std::vector<int32_t> chunk_in(7 * n), chunk_labels(chunk_in.size());
      for (size_t first = 0; first < windows; first += 7) {
        const int count = static_cast<int>(std::min<size_t>(7, windows - first));
        task.evaluation_batch(split, 0, first, count, chunk_in.data(), chunk_labels.data());
        ASSERT_TRUE(
            std::equal(chunk_in.begin(), chunk_in.begin() + count * n, in.begin() + first * n));
        ASSERT_TRUE(std::equal(chunk_labels.begin(), chunk_labels.begin() + count * n,
                               labels.begin() + first * n));
      }
      EXPECT_THROW(
          task.evaluation_batch(split, 0, windows, 1, chunk_in.data(), chunk_labels.data()),
          std::out_of_range);
    }
  }
}

TEST(TextTask, MlmEvaluationCoversEverySplitByteOnceAndIsReproducible) {
  const auto corpus = test_corpus();
  const int n = 300;
  const TextTask task(corpus, TextObjective::kMlm, n);
  for (TextSplit split : kTextSplits) {
    std::vector<int32_t> expected;
    for (const TextSpan& span : corpus->spans(split))
      for (size_t b = span.begin; b < span.end; ++b) expected.push_back(corpus->byte(b));
    const size_t windows = task.evaluation_windows(split);
    std::vector<int32_t> in(windows * n), labels(in.size()), in2(in.size()), l2(in.size());
    set_threads(1);
    task.evaluation_batch(split, 4, 0, static_cast<int>(windows), in.data(), labels.data());
    set_threads(2);
    task.evaluation_batch(split, 4, 0, static_cast<int>(windows), in2.data(), l2.data());
    set_threads(0);
    EXPECT_EQ(in, in2);
    EXPECT_EQ(labels, l2);

    std::vector<int32_t> got;
    size_t scored = 0;
    for (size_t w = 0; w < windows; ++w) {
      int window_scored = 0;
      for (int i = 0; i < n; ++i) window_scored += labels[w * n + i] >= 0 ? 1 : 0;
      EXPECT_GE(window_scored, 1) << "window " << w;
      scored += window_scored;
    }
    // Rebuild the split text: full windows, and the shorter last window of each span.
    size_t w = 0;
    for (const TextSpan& span : corpus->spans(split)) {
      for (size_t start = span.begin; start < span.end; start += n, ++w) {
        const int length = static_cast<int>(std::min<size_t>(n, span.end - start));
        const std::vector<int32_t> row = original_row(in, labels, static_cast<int>(w), n);
        got.insert(got.end(), row.begin(), row.begin() + length);
        for (int i = length; i < n; ++i) {
          EXPECT_EQ(in[w * n + i], 0);
          EXPECT_EQ(labels[w * n + i], -1);
        }
      }
    }
    EXPECT_EQ(w, windows);
    EXPECT_EQ(got, expected) << split_name(split);
    EXPECT_NEAR(static_cast<double>(scored) / expected.size(), 0.15, 0.03);

    // Windows fetched in chunks are the same windows (masking is addressed by
    // window, not by position in the batch).
    const int chunk = 5;
    std::vector<int32_t> chunk_in(chunk * n), chunk_labels(chunk_in.size());
    for (size_t first = 0; first < windows; first += chunk) {
      const int count = static_cast<int>(std::min<size_t>(chunk, windows - first));
      task.evaluation_batch(split, 4, first, count, chunk_in.data(), chunk_labels.data());
      ASSERT_TRUE(
          std::equal(chunk_in.begin(), chunk_in.begin() + count * n, in.begin() + first * n));
      ASSERT_TRUE(std::equal(chunk_labels.begin(), chunk_labels.begin() + count * n,
                             labels.begin() + first * n));
    }

    // Another seed masks differently.
    task.evaluation_batch(split, 5, 0, static_cast<int>(windows), in2.data(), l2.data());
    EXPECT_NE(labels, l2);
  }
}

TEST(TextTask, CountsScoredPositionsAndCharacters) {
  // 1 + 2 + 3 + 4 bytes, 4 characters: a, e-acute, euro sign, an emoji.
  const std::vector<int32_t> text = encode("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  ASSERT_EQ(text.size(), 10u);
  std::vector<int32_t> labels = {-1, -1};
  labels.insert(labels.end(), text.begin(), text.end());
  const ScoredCount count = count_scored(labels.data(), 3, 4);
  EXPECT_EQ(count.tokens, 10u);
  EXPECT_EQ(count.characters, 4u);
  const std::vector<int32_t> partial = {0xa9, -1, 0x82, 0x41};
  const ScoredCount p = count_scored(partial.data(), 1, 4);
  EXPECT_EQ(p.tokens, 3u);
  EXPECT_EQ(p.characters, 1u);
}

// ---- Errors -------------------------------------------------------------------

TEST(TextTask, RejectsBadConfigs) {
  const auto corpus = test_corpus();
  EXPECT_THROW(TextTask(corpus, TextObjective::kLm, 0), ConfigError);
  EXPECT_THROW(TextTask(corpus, TextObjective::kMlm, 16, 0.0), ConfigError);
  EXPECT_THROW(TextTask(corpus, TextObjective::kMlm, 16, 1.5), ConfigError);
  EXPECT_THROW(TextTask(corpus, TextObjective::kMlm, 16, std::nan("")), ConfigError);
  EXPECT_NO_THROW(TextTask(corpus, TextObjective::kLm, 4095));
  EXPECT_NO_THROW(TextTask(corpus, TextObjective::kMlm, 4096));
  try {
    TextTask(corpus, TextObjective::kLm, 4096);
    FAIL() << "no error for a window longer than every validation span";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("4096"), std::string::npos) << what;
    EXPECT_NE(what.find("4097"), std::string::npos) << what;
    EXPECT_NE(what.find("validation"), std::string::npos) << what;
  }
  // 19 blocks: no test text at all.
  EXPECT_THROW(TextTask(test_corpus(19 * kBlock), TextObjective::kLm, 8), ConfigError);
}

TEST(TextCorpus, MissingDirectoryIsAConfigErrorNamingThePackage) {
  try {
    TextCorpus::load("fortunes", "/nonexistent/attnrank/fortunes");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'fortunes'"), std::string::npos) << what;
    EXPECT_NE(what.find("/nonexistent/attnrank/fortunes"), std::string::npos) << what;
    EXPECT_NE(what.find("scripts/setup"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(TextCorpus, DirectoryWithoutTextsIsAConfigError) {
  const TempDir dir;
  dir.write("art.dat", "index");
  fs::create_symlink("art.dat", dir.path() / "art.u8");
  EXPECT_THROW(TextCorpus::load("fortunes", dir.path().string()), ConfigError);
}

TEST(TextCorpus, UnknownNameListsTheKnownCorpora) {
  try {
    TextCorpus::load("shakespeare");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("shakespeare"), std::string::npos) << what;
    EXPECT_NE(what.find("fortunes"), std::string::npos) << what;
  }
  EXPECT_EQ(TextCorpus::known_names(), std::vector<std::string>{"fortunes"});
}

TEST(TextCorpus, LoadsTextFilesSortedByNameAndSkipsIndexesAndLinks) {
  const TempDir dir;
  dir.write("zippy", "Z\n");
  dir.write("art", "A\xff\n");  // not UTF-8: bytes are bytes
  dir.write("art.dat", "INDEX");
  dir.write(".hidden", "H");
  dir.write("ascii-art", "B\n");
  fs::create_symlink("art", dir.path() / "art.u8");
  fs::create_symlink("zippy", dir.path() / "yak");
  fs::create_directories(dir.path() / "sub");
  const auto corpus = TextCorpus::load("fortunes", dir.path().string());
  EXPECT_EQ(corpus->text(), "A\xff\nB\nZ\n");
  ASSERT_EQ(corpus->files().size(), 3u);
  EXPECT_EQ(corpus->files()[0].name, "art");
  EXPECT_EQ(corpus->files()[1].name, "ascii-art");
  EXPECT_EQ(corpus->files()[1].begin, 3u);
  EXPECT_EQ(corpus->files()[2].name, "zippy");
  EXPECT_EQ(corpus->checksum(), fnv1a64("A\xff\nB\nZ\n"));
  EXPECT_EQ(corpus->name(), "fortunes");
}

TEST(TextCorpus, UnreadableFileIsAFormatError) {
  const TempDir dir;
  dir.write("art", "A\n");
  dir.write("secret", "S\n");
  fs::permissions(dir.path() / "secret", fs::perms::none);
  if (std::ifstream(dir.path() / "secret").good()) GTEST_SKIP() << "running as root";
  try {
    TextCorpus::load("fortunes", dir.path().string());
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("secret"), std::string::npos) << e.what();
  }
}

// ---- The installed corpus -------------------------------------------------------

TEST(TextCorpus, LoadsTheInstalledFortunesCorpus) {
  const auto begin = std::chrono::steady_clock::now();
  const auto corpus = TextCorpus::load("fortunes");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::cout << "fortunes: " << corpus->files().size() << " files, " << corpus->size()
            << " bytes, checksum 0x" << std::hex << corpus->checksum() << std::dec << ", loaded in "
            << seconds * 1e3 << " ms\n";
  EXPECT_EQ(corpus->directory(), "/usr/share/games/fortunes");
  EXPECT_GT(corpus->size(), 2'000'000u);
  for (TextSplit split : kTextSplits) EXPECT_GT(corpus->split_bytes(split), 0u);
  size_t total = 0;
  for (size_t i = 0; i < corpus->files().size(); ++i) {
    const CorpusFile& file = corpus->files()[i];
    EXPECT_EQ(file.name.find('.'), std::string::npos) << file.name;
    EXPECT_EQ(file.begin, total);
    if (i > 0) {
      EXPECT_LT(corpus->files()[i - 1].name, file.name);
    }
    total += file.size;
  }
  EXPECT_EQ(total, corpus->size());
  EXPECT_EQ(corpus->checksum(), fnv1a64(corpus->text()));
  const auto again = TextCorpus::load("fortunes");
  EXPECT_EQ(again->checksum(), corpus->checksum());
  EXPECT_EQ(again->size(), corpus->size());

  const TextTask task(corpus, TextObjective::kLm, 256);
  std::vector<int32_t> in(4 * 256), labels(in.size());
  task.generate(0, 0, 4, in.data(), labels.data());
  EXPECT_GT(task.evaluation_windows(TextSplit::kTest), 0u);
}
