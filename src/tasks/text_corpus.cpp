#include "attnrank/tasks/text_corpus.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "attnrank/core/error.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFortunesName = "fortunes";
constexpr const char* kFortunesDirectory = "/usr/share/games/fortunes";

std::string known_list() {
  std::string list;
  for (const std::string& name : TextCorpus::known_names()) {
    if (!list.empty()) list += " | ";
    list += name;
  }
  return list;
}

std::string not_found(const std::string& name, const std::string& directory,
                      const std::string& why) {
  return "task.corpus: corpus '" + name + "' not found in " + directory + " (" + why +
         "; install the Debian package 'fortunes': scripts/setup)";
}

// A text of the package: a regular file (not a symlink) whose name has no
// extension and is not hidden.
bool is_text_file(const fs::directory_entry& entry) {
  std::error_code ec;
  const fs::file_status status = entry.symlink_status(ec);
  if (ec || !fs::is_regular_file(status)) return false;
  const std::string file_name = entry.path().filename().string();
  return !file_name.empty() && file_name.find('.') == std::string::npos;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw FormatError("corpus file " + path.string() + ": cannot open (" + std::strerror(errno) +
                      ")");
  }
  std::string bytes;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw FormatError("corpus file " + path.string() + ": cannot determine its size");
  bytes.resize(static_cast<size_t>(size));
  in.seekg(0, std::ios::beg);
  in.read(bytes.data(), size);
  if (in.gcount() != size || in.bad()) {
    throw FormatError("corpus file " + path.string() + ": read failed");
  }
  // The file may have grown between tellg and read; anything beyond is ignored,
  // so the corpus is what the size said.
  return bytes;
}

}  // namespace

// ---- Tokenizer ------------------------------------------------------------

std::vector<int32_t> encode(std::string_view text) {
  std::vector<int32_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<uint8_t>(text[i]);
  return tokens;
}

std::string decode(std::span<const int32_t> tokens) {
  std::string text(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = tokens[i];
    if (id < 0 || id >= kByteTokens) {
      throw std::invalid_argument("decode: token " + std::to_string(id) + " at position " +
                                  std::to_string(i) + " is not a byte (0..255)");
    }
    text[i] = static_cast<char>(static_cast<uint8_t>(id));
  }
  return text;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// ---- Split ----------------------------------------------------------------

const char* split_name(TextSplit split) {
  switch (split) {
    case TextSplit::kTrain:
      return "train";
    case TextSplit::kValidation:
      return "validation";
    case TextSplit::kTest:
      return "test";
  }
  return "?";
}

TextSplit split_of_block(size_t block) {
  const size_t residue = block % kSplitPeriod;
  if (residue == kValidationResidue) return TextSplit::kValidation;
  if (residue == kTestResidue) return TextSplit::kTest;
  return TextSplit::kTrain;
}

TextSplit split_of_byte(size_t offset) {
  return split_of_block(offset / kSplitBlockBytes);
}

std::vector<TextSpan> split_spans(size_t corpus_bytes, TextSplit split) {
  std::vector<TextSpan> spans;
  for (size_t begin = 0, block = 0; begin < corpus_bytes; begin += kSplitBlockBytes, ++block) {
    if (split_of_block(block) != split) continue;
    const size_t end = std::min(corpus_bytes, begin + kSplitBlockBytes);
    if (!spans.empty() && spans.back().end == begin) {
      spans.back().end = end;
    } else {
      spans.push_back({begin, end});
    }
  }
  return spans;
}

// ---- Corpus ---------------------------------------------------------------

TextCorpus::TextCorpus(std::string name, std::string text)
    : TextCorpus(std::move(name), "", std::move(text), {}) {}

TextCorpus::TextCorpus(std::string name, std::string directory, std::string text,
                       std::vector<CorpusFile> files)
    : name_(std::move(name)),
      directory_(std::move(directory)),
      text_(std::move(text)),
      checksum_(fnv1a64(text_)),
      files_(std::move(files)) {
  for (TextSplit split : kTextSplits)
    spans_[static_cast<size_t>(split)] = split_spans(text_.size(), split);
}

std::vector<std::string> TextCorpus::known_names() {
  return {kFortunesName};
}

std::string TextCorpus::default_directory(const std::string& name) {
  if (name == kFortunesName) return kFortunesDirectory;
  throw ConfigError("task.corpus: unknown corpus '" + name + "' (" + known_list() + ")");
}

std::shared_ptr<const TextCorpus> TextCorpus::load(const std::string& name,
                                                   const std::string& directory) {
  const std::string default_dir = default_directory(name);  // ConfigError if unknown
  const std::string dir = directory.empty() ? default_dir : directory;

  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw ConfigError(not_found(name, dir, "no such directory"));
  std::vector<fs::path> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (is_text_file(*it)) paths.push_back(it->path());
  }
  if (ec) throw ConfigError(not_found(name, dir, "cannot list the directory: " + ec.message()));
  if (paths.empty()) throw ConfigError(not_found(name, dir, "no text files"));
  std::sort(paths.begin(), paths.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });

  std::string text;
  std::vector<CorpusFile> files;
  for (const fs::path& path : paths) {
    const std::string bytes = read_file(path);
    files.push_back({path.filename().string(), text.size(), bytes.size()});
    text += bytes;
  }
  return std::shared_ptr<const TextCorpus>(
      new TextCorpus(name, dir, std::move(text), std::move(files)));
}

size_t TextCorpus::split_bytes(TextSplit split) const {
  size_t total = 0;
  for (const TextSpan& span : spans(split)) total += span.size();
  return total;
}

size_t TextCorpus::longest_span(TextSplit split) const {
  size_t longest = 0;
  for (const TextSpan& span : spans(split)) longest = std::max(longest, span.size());
  return longest;
}

}  // namespace attnrank
