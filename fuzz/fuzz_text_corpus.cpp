// The text corpus loader: the input becomes a corpus directory (pieces split at
// 0xFF bytes become files "a", "b", ...; the first byte of a piece, if it is 0xFE,
// makes it a symlink or a hidden file instead) and is loaded as the fortunes
// corpus; then the split and the tokenizer run over it.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "attnrank/core/error.h"
#include "attnrank/tasks/text_corpus.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir =
      fs::temp_directory_path() / ("attnrank_fuzz_corpus_" + std::to_string(::getpid()));
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  fs::create_directories(dir);
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  for (int index = 0; index < 26; ++index) {
    const size_t end = input.find('\xff', start);
    std::string piece = input.substr(start, end == std::string::npos ? end : end - start);
    const std::string name(1, static_cast<char>('a' + index));
    if (!piece.empty() && piece[0] == '\xfe') {
      if (index % 2) fs::create_symlink(dir / "a", dir / (name + ".u8"), ignored);
      std::ofstream(dir / ("." + name), std::ios::binary) << piece.substr(1);
    } else {
      std::ofstream(dir / name, std::ios::binary) << piece;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  try {
    const auto corpus = attnrank::TextCorpus::load("fortunes", dir.string());
    for (const attnrank::TextSplit split : attnrank::kTextSplits) {
      size_t bytes = 0;
      for (const attnrank::TextSpan& span : corpus->spans(split)) {
        if (span.begin >= span.end || span.end > corpus->size()) __builtin_trap();
        bytes += span.size();
      }
      if (bytes != corpus->split_bytes(split)) __builtin_trap();
    }
    if (attnrank::decode(attnrank::encode(corpus->text())) != corpus->text()) __builtin_trap();
  } catch (const attnrank::ConfigError&) {
  } catch (const attnrank::FormatError&) {
  }
  return 0;
}
