// Real text for the lm/mlm tasks: the corpus, its byte tokenizer and its fixed
// train/validation/test split.
//
// Corpus "fortunes": the Debian package `fortunes` (installed by scripts/setup)
// puts plain UTF-8 text files in /usr/share/games/fortunes/. The texts are the
// regular files without an extension (art, computers, cookie, ...); `*.dat` are
// strfile indexes and `*.u8` are symlinks to the same texts, so both are skipped,
// as are every other symlink, subdirectory, hidden file and file with an
// extension. The corpus is those files sorted by name (byte order), concatenated
// byte for byte. fortunes 1:1.99.1-7.3 (Debian 12) gives 43 files, 2,576,674
// bytes, FNV-1a 64 checksum 0x2015a6f2b7de2d3d; checksum() and size() tell runs
// on other package versions apart.
//
// Tokenizer: byte level. Token id = byte value 0..255; kMaskToken (256) is the
// MLM mask and only ever appears in inputs. encode/decode round-trip any bytes,
// invalid UTF-8 included.
//
// Split (fixed, by position, a function of the corpus size only): the corpus is
// cut into blocks of kSplitBlockBytes = 4096 bytes (the last may be short);
// block b goes to validation if b % 20 == 18, to test if b % 20 == 19, else to
// train: 90/5/5 by blocks, interleaved so every split spans every topic file of
// the 2.5 MB corpus. Each split is a list of spans [begin, end) of byte offsets,
// adjacent blocks of the same split merged, in increasing order. A window (of
// training or evaluation) always lies inside one span, so no training window
// contains a byte of validation or test text.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace attnrank {

// ---- Tokenizer ------------------------------------------------------------

constexpr int kByteTokens = 256;      // ids 0..255: the bytes
constexpr int32_t kMaskToken = 256;   // MLM mask (inputs only)
constexpr int32_t kIgnoreLabel = -1;  // label of an unscored position

// Token id of every byte, in order.
std::vector<int32_t> encode(std::string_view text);
// The bytes of the tokens; throws std::invalid_argument for an id outside 0..255
// (the mask token included).
std::string decode(std::span<const int32_t> tokens);
// True unless `byte` is a UTF-8 continuation byte (10xxxxxx): counting these over
// the scored bytes counts characters, for bits per character.
inline bool starts_character(uint8_t byte) {
  return (byte & 0xC0) != 0x80;
}

// FNV-1a 64 of the bytes.
uint64_t fnv1a64(std::string_view bytes);

// ---- Split ----------------------------------------------------------------

enum class TextSplit : uint64_t { kTrain = 0, kValidation = 1, kTest = 2 };
constexpr TextSplit kTextSplits[] = {TextSplit::kTrain, TextSplit::kValidation, TextSplit::kTest};
const char* split_name(TextSplit split);  // "train" | "validation" | "test"

constexpr size_t kSplitBlockBytes = 4096;
constexpr size_t kSplitPeriod = 20;        // blocks per cycle
constexpr size_t kValidationResidue = 18;  // b % 20 == 18: validation
constexpr size_t kTestResidue = 19;        // b % 20 == 19: test
TextSplit split_of_block(size_t block);    // the rule above
TextSplit split_of_byte(size_t offset);    // split_of_block(offset / 4096)

struct TextSpan {
  size_t begin = 0;
  size_t end = 0;  // one past the last byte
  size_t size() const { return end - begin; }
  bool operator==(const TextSpan&) const = default;
};

// Spans of `split` for a corpus of `corpus_bytes` bytes (merged, increasing).
std::vector<TextSpan> split_spans(size_t corpus_bytes, TextSplit split);

// ---- Corpus ---------------------------------------------------------------

struct CorpusFile {
  std::string name;  // file name inside the corpus directory
  size_t begin = 0;  // offset of its first byte in the corpus
  size_t size = 0;
};

class TextCorpus {
 public:
  // In-memory corpus (tests, or text from elsewhere). No files.
  TextCorpus(std::string name, std::string text);

  // A named corpus read from disk; `directory` overrides the package's location
  // ("" = the default). Throws ConfigError for an unknown name or a missing
  // package/directory/text (one line naming the package and scripts/setup), and
  // FormatError naming a file that cannot be read.
  static std::shared_ptr<const TextCorpus> load(const std::string& name,
                                                const std::string& directory = "");
  static std::vector<std::string> known_names();                  // {"fortunes"}
  static std::string default_directory(const std::string& name);  // ConfigError if unknown

  const std::string& name() const { return name_; }
  const std::string& directory() const { return directory_; }  // "" in memory
  const std::string& text() const { return text_; }
  size_t size() const { return text_.size(); }
  uint8_t byte(size_t offset) const { return static_cast<uint8_t>(text_[offset]); }
  uint64_t checksum() const { return checksum_; }  // fnv1a64(text())
  const std::vector<CorpusFile>& files() const { return files_; }

  const std::vector<TextSpan>& spans(TextSplit split) const {
    return spans_[static_cast<size_t>(split)];
  }
  size_t split_bytes(TextSplit split) const;   // sum of the span sizes
  size_t longest_span(TextSplit split) const;  // 0 if the split is empty

 private:
  TextCorpus(std::string name, std::string directory, std::string text,
             std::vector<CorpusFile> files);

  std::string name_;
  std::string directory_;
  std::string text_;
  uint64_t checksum_ = 0;
  std::vector<CorpusFile> files_;
  std::vector<TextSpan> spans_[3];
};

}  // namespace attnrank
