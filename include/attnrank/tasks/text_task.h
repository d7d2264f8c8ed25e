// Language modelling on a TextCorpus (text_corpus.h): batches of byte windows for
// causal (lm) and masked (mlm, BERT) language modelling.
//
// lm:  a window of N+1 bytes t[s, s+N]; inputs = t[s, s+N), labels = t[s+1, s+N]
//      (every position scored; a causal mask is the model's business).
// mlm: a window of N bytes; each position is selected with probability
//      mask_rate (none selected: one is selected uniformly, so every window scores
//      something); a selected position's input is kMaskToken with probability
//      0.8, a uniformly random byte with 0.1, unchanged with 0.1; labels are the
//      original byte at selected positions and kIgnoreLabel (-1) elsewhere.
//
// Training: sample s of batch `index` uses Rng(seed, Stream::kTrain, index, s) and
// starts uniformly among every valid start of the train split (the whole window
// inside one span), exactly: a span is chosen with probability proportional to
// its number of valid starts.
//
// Evaluation covers a split deterministically. lm: each span [b, e) is cut into
// windows w = 0, 1, ... covering [b + wN, min(b + wN + N + 1, e)) (stride N), so
// every byte of the span but the first is predicted exactly once; mlm: windows
// [b + wN, min(b + wN + N, e)). A final short window is padded with input 0 and
// label -1. Windows are numbered across the spans of the split in order; mlm
// masking of window w of split p uses Rng(seed, Stream::kTest, p, w).
//
// Batches are identical whatever the OpenMP thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnrank/tasks/text_corpus.h"

namespace attnrank {

enum class TextObjective { kLm, kMlm };

class TextTask {
 public:
  static constexpr double kDefaultMaskRate = 0.15;

  // tokens: N >= 1; mask_rate in (0, 1] (mlm only, ignored by lm). Throws
  // ConfigError for a bad length or rate, and
  // when a split has no span long enough for one full window.
  TextTask(std::shared_ptr<const TextCorpus> corpus, TextObjective objective, int tokens,
           double mask_rate = kDefaultMaskRate);

  int tokens() const { return tokens_; }  // N
  int vocabulary() const;                 // 256 (lm) | 257 (mlm: bytes + mask)
  TextObjective objective() const { return objective_; }
  double mask_rate() const { return mask_rate_; }
  const TextCorpus& corpus() const { return *corpus_; }
  // Bytes a window reads: N + 1 (lm) | N (mlm).
  int window_bytes() const;
  // Number of distinct training windows (valid starts in the train split).
  uint64_t train_windows() const { return train_windows_; }

  // Training batch `index`. inputs, labels: (batch, N), row-major.
  void generate(uint64_t seed, uint64_t index, int batch, int32_t* inputs, int32_t* labels) const;

  // Evaluation windows of a split, and `count` of them from `first_window`
  // (first_window + count <= evaluation_windows(split), else std::out_of_range).
  // inputs, labels: (count, N).
  size_t evaluation_windows(TextSplit split) const;
  void evaluation_batch(TextSplit split, uint64_t seed, size_t first_window, int count,
                        int32_t* inputs, int32_t* labels) const;

 private:
  std::shared_ptr<const TextCorpus> corpus_;
  TextObjective objective_;
  int tokens_;
  double mask_rate_;
  // Train split: spans with at least one valid start, and the running total of
  // valid starts before each (train_offsets_[i] = starts in spans 0..i-1).
  std::vector<TextSpan> train_spans_;
  std::vector<uint64_t> train_offsets_;
  uint64_t train_windows_ = 0;
  // Per split: first evaluation window of each span, plus the total at the end.
  std::vector<size_t> eval_offsets_[3];
};

// Scored positions of labels (count, N) (label >= 0), and how many of them start a
// UTF-8 character: bits per character = total bits / characters.
struct ScoredCount {
  size_t tokens = 0;
  size_t characters = 0;
};
ScoredCount count_scored(const int32_t* labels, size_t count, int tokens);

}  // namespace attnrank
