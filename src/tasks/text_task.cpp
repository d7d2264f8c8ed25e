#include "attnrank/tasks/text_task.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "attnrank/core/error.h"
#include "attnrank/core/parallel.h"
#include "attnrank/core/rng.h"
#include "attnrank/tasks/point_task.h"

namespace attnrank {

namespace {

// BERT replacement of a selected position.
constexpr double kMaskProbability = 0.8;
constexpr double kRandomByteProbability = 0.1;  // the remaining 0.1 keeps the byte
// Rough scalar operations per token, for worth_parallel.
constexpr size_t kWorkPerToken = 8;

// Uniform in [0, n), n >= 1, without bias: draws below 2^64 mod n are rejected so
// the accepted range is a whole number of copies of [0, n).
uint64_t uniform_below(Rng& rng, uint64_t n) {
  const uint64_t threshold = (uint64_t{0} - n) % n;
  uint64_t x = rng.next_u64();
  while (x < threshold) x = rng.next_u64();
  return x % n;
}

// inputs[0, length) hold the original bytes, labels[0, length) hold kIgnoreLabel;
// selects, replaces and labels the positions (see text_task.h).
void mask_window(Rng& rng, double rate, int length, int32_t* inputs, int32_t* labels) {
  int selected = 0;
  for (int i = 0; i < length; ++i) {
    if (rng.uniform() < rate) {
      labels[i] = inputs[i];
      ++selected;
    }
  }
  if (selected == 0) {
    const int i = static_cast<int>(uniform_below(rng, static_cast<uint64_t>(length)));
    labels[i] = inputs[i];
  }
  for (int i = 0; i < length; ++i) {
    if (labels[i] == kIgnoreLabel) continue;
    const double r = rng.uniform();
    if (r < kMaskProbability) {
      inputs[i] = kMaskToken;
    } else if (r < kMaskProbability + kRandomByteProbability) {
      inputs[i] = static_cast<int32_t>(rng.next_u64() >> 56);
    }
  }
}

}  // namespace

TextTask::TextTask(std::shared_ptr<const TextCorpus> corpus, TextObjective objective, int tokens,
                   double mask_rate)
    : corpus_(std::move(corpus)), objective_(objective), tokens_(tokens), mask_rate_(mask_rate) {
  if (corpus_ == nullptr) throw std::invalid_argument("TextTask: null corpus");
  if (tokens < 1)
    throw ConfigError("task.length: sequence length must be >= 1 (got " + std::to_string(tokens) +
                      ")");
  if (objective_ == TextObjective::kMlm && !(mask_rate > 0.0 && mask_rate <= 1.0))
    throw ConfigError("task.mask_rate: must be in (0, 1] (got " + std::to_string(mask_rate) + ")");

  const size_t window = static_cast<size_t>(window_bytes());
  for (TextSplit split : kTextSplits) {
    const size_t longest = corpus_->longest_span(split);
    if (longest < window) {
      throw ConfigError("task.length: sequence length " + std::to_string(tokens) + " needs " +
                        std::to_string(window) + "-byte windows but the longest " +
                        split_name(split) + " span of corpus '" + corpus_->name() + "' has " +
                        std::to_string(longest) + " bytes (" + std::to_string(corpus_->size()) +
                        "-byte corpus, split in blocks of " + std::to_string(kSplitBlockBytes) +
                        ")");
    }
  }

  for (const TextSpan& span : corpus_->spans(TextSplit::kTrain)) {
    if (span.size() < window) continue;
    train_spans_.push_back(span);
    train_offsets_.push_back(train_windows_);
    train_windows_ += span.size() - window + 1;
  }

  const size_t n = static_cast<size_t>(tokens_);
  for (TextSplit split : kTextSplits) {
    std::vector<size_t>& offsets = eval_offsets_[static_cast<size_t>(split)];
    size_t total = 0;
    for (const TextSpan& span : corpus_->spans(split)) {
      offsets.push_back(total);
      // lm predicts size - 1 bytes, mlm scores windows of all size bytes.
      const size_t covered = objective_ == TextObjective::kLm ? span.size() - 1 : span.size();
      total += (covered + n - 1) / n;
    }
    offsets.push_back(total);
  }
}

int TextTask::vocabulary() const {
  return objective_ == TextObjective::kMlm ? kByteTokens + 1 : kByteTokens;
}

int TextTask::window_bytes() const {
  return objective_ == TextObjective::kLm ? tokens_ + 1 : tokens_;
}

void TextTask::generate(uint64_t seed, uint64_t index, int batch, int32_t* inputs,
                        int32_t* labels) const {
  const int n = tokens_;
  const bool lm = objective_ == TextObjective::kLm;
#pragma omp parallel for schedule( \
    static) if (worth_parallel(static_cast <size_t>(batch) * n * kWorkPerToken))
  for (int sample = 0; sample < batch; ++sample) {
    Rng rng(seed, static_cast<uint64_t>(Stream::kTrain), index, static_cast<uint64_t>(sample));
    const uint64_t r = uniform_below(rng, train_windows_);
    const size_t span =
        static_cast<size_t>(std::upper_bound(train_offsets_.begin(), train_offsets_.end(), r) -
                            train_offsets_.begin()) -
        1;
    const size_t start = train_spans_[span].begin + static_cast<size_t>(r - train_offsets_[span]);
    int32_t* in = inputs + static_cast<size_t>(sample) * n;
    int32_t* out = labels + static_cast<size_t>(sample) * n;
    for (int i = 0; i < n; ++i) in[i] = corpus_->byte(start + i);
    if (lm) {
      for (int i = 0; i < n; ++i) out[i] = corpus_->byte(start + i + 1);
    } else {
      std::fill(out, out + n, kIgnoreLabel);
      mask_window(rng, mask_rate_, n, in, out);
    }
  }
}

size_t TextTask::evaluation_windows(TextSplit split) const {
  return eval_offsets_[static_cast<size_t>(split)].back();
}

void TextTask::evaluation_batch(TextSplit split, uint64_t seed, size_t first_window, int count,
                                int32_t* inputs, int32_t* labels) const {
  const std::vector<size_t>& offsets = eval_offsets_[static_cast<size_t>(split)];
  const std::vector<TextSpan>& spans = corpus_->spans(split);
  if (count < 0 || first_window > offsets.back() ||
      static_cast<size_t>(count) > offsets.back() - first_window) {
    throw std::out_of_range("evaluation_batch: windows [" + std::to_string(first_window) + ", +" +
                            std::to_string(count) + ") outside the " +
                            std::to_string(offsets.back()) + " " + split_name(split) + " windows");
  }
  const int n = tokens_;
  const bool lm = objective_ == TextObjective::kLm;
#pragma omp parallel for schedule( \
    static) if (worth_parallel(static_cast <size_t>(count) * n * kWorkPerToken))
  for (int k = 0; k < count; ++k) {
    const size_t window = first_window + static_cast<size_t>(k);
    // The last span whose first window is <= window (spans without windows share
    // their offset with the next span, which is the one found).
    const size_t s =
        static_cast<size_t>(std::upper_bound(offsets.begin(), offsets.end() - 1, window) -
                            offsets.begin()) -
        1;
    const TextSpan& span = spans[s];
    const size_t start = span.begin + (window - offsets[s]) * static_cast<size_t>(n);
    const size_t last = lm ? span.end - 1 : span.end;  // inputs end here
    const int length = static_cast<int>(std::min(static_cast<size_t>(n), last - start));
    int32_t* in = inputs + static_cast<size_t>(k) * n;
    int32_t* out = labels + static_cast<size_t>(k) * n;
    std::fill(in, in + n, 0);
    std::fill(out, out + n, kIgnoreLabel);
    for (int i = 0; i < length; ++i) in[i] = corpus_->byte(start + i);
    if (lm) {
      for (int i = 0; i < length; ++i) out[i] = corpus_->byte(start + i + 1);
    } else {
      Rng rng(seed, static_cast<uint64_t>(Stream::kTest), static_cast<uint64_t>(split), window);
      mask_window(rng, mask_rate_, length, in, out);
    }
  }
}

ScoredCount count_scored(const int32_t* labels, size_t count, int tokens) {
  ScoredCount result;
  const size_t total = count * static_cast<size_t>(tokens);
  for (size_t i = 0; i < total; ++i) {
    const int32_t label = labels[i];
    if (label < 0) continue;
    ++result.tokens;
    if (label < kByteTokens && starts_character(static_cast<uint8_t>(label))) ++result.characters;
  }
  return result;
}

}  // namespace attnrank
