// Derived sweep keys: small arithmetic expressions over a run's config values, so
// a grid can be written the published way ("model.heads: d/rank" over a rank list).
#include <fmt/core.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>

#include "attnrank/core/error.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

namespace {

// Short names used in the papers, and bare key names that are unique.
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> names = {
      {"d", "model.dim"},
      {"H", "model.heads"},
      {"r", "model.rank"},
      {"c", "model.width_multiplier"},
      {"L", "model.layers"},
      {"N", "task.points"},
      {"p", "model.positional_dim"},
  };
  return names;
}

class Parser {
 public:
  Parser(const std::string& key, const std::string& text,
         const std::vector<std::pair<std::string, std::string>>& values)
      : key_(key), text_(text), values_(values) {}

  double parse() {
    const double value = sum();
    skip_space();
    if (pos_ != text_.size()) fail(fmt::format("unexpected '{}'", shortened(text_.substr(pos_))));
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(fmt::format("derived: {}: '{}': {}", key_, shortened(text_), what));
  }
  // A hostile expression can be megabytes long: quote the start of it only.
  static std::string shortened(const std::string& text) {
    constexpr size_t kShown = 60;
    return text.size() <= kShown ? text : text.substr(0, kShown) + "...";
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool take(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) return ++pos_, true;
    return false;
  }
  double sum() {
    double value = product();
    for (;;) {
      if (take('+'))
        value += product();
      else if (take('-'))
        value -= product();
      else
        return value;
    }
  }
  double product() {
    double value = unary();
    for (;;) {
      if (take('*')) {
        value *= unary();
      } else if (take('/')) {
        const double divisor = unary();
        if (divisor == 0) fail("division by zero");
        value /= divisor;
      } else {
        return value;
      }
    }
  }
  double unary() {
    // Every nesting (a parenthesis or a unary minus) recurses: bound it so a hostile
    // expression is an error, not a stack overflow.
    if (++depth_ > kMaxDepth) fail(fmt::format("nested more than {} levels deep", kMaxDepth));
    struct Leave {
      int& depth;
      ~Leave() { --depth; }
    } leave{depth_};
    if (take('-')) return -unary();
    if (take('(')) {
      const double value = sum();
      if (!take(')')) fail("missing ')'");
      return value;
    }
    skip_space();
    if (pos_ == text_.size()) fail("expression ends early");
    const char c = text_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') return name();
    fail(fmt::format("unexpected '{}'", c));
  }
  double number() {
    // strtod reads just the number (a substring copy per number would make a long
    // expression quadratic).
    const char* begin = text_.c_str() + pos_;
    char* end = nullptr;
    const double value = std::strtod(begin, &end);
    if (end == begin) fail("bad number at '" + shortened(text_.substr(pos_, 61)) + "'");
    pos_ += static_cast<size_t>(end - begin);
    return value;
  }
  double name() {
    const size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) ||
                                   text_[pos_] == '_' || text_[pos_] == '.'))
      ++pos_;
    const std::string word = text_.substr(start, pos_ - start);
    if (word == "width") {
      // The model width: d, plus p with concatenated positional encodings.
      const bool concat = text_of("model.positional") == "concat";
      return lookup("model.dim") + (concat ? lookup("model.positional_dim") : 0.0);
    }
    return lookup(word);
  }
  std::string text_of(const std::string& key) const {
    for (const auto& [name, value] : values_)
      if (name == key) return value;
    return "";
  }
  double lookup(const std::string& word) const {
    std::string key = word;
    if (auto alias = aliases().find(word); alias != aliases().end()) key = alias->second;
    const std::string* found = nullptr;
    for (const auto& [name, value] : values_) {
      const bool bare = name.substr(name.find('.') + 1) == key;
      if (name == key || (key.find('.') == std::string::npos && bare)) {
        if (found && name != key) fail(fmt::format("'{}' is ambiguous: write section.key", word));
        found = &value;
      }
    }
    if (!found)
      fail(
          fmt::format("unknown name '{}' (use a config key such as model.dim, or d, H, r, c, L, "
                      "N, p, width)",
                      word));
    try {
      size_t used = 0;
      const double value = std::stod(*found, &used);
      if (used == found->size()) return value;
    } catch (const std::exception&) {
    }
    fail(fmt::format("'{}' is {}, not a number", word, *found));
  }

  const std::string& key_;
  const std::string& text_;
  const std::vector<std::pair<std::string, std::string>>& values_;
  size_t pos_ = 0;
  int depth_ = 0;
  static constexpr int kMaxDepth = 100;
};

}  // namespace

double evaluate_derived(const std::string& key, const std::string& expression,
                        const RunConfig& config) {
  return evaluate_derived(key, expression, flat_config(config));
}

double evaluate_derived(const std::string& key, const std::string& expression,
                        const std::vector<std::pair<std::string, std::string>>& values) {
  const double value = Parser(key, expression, values).parse();
  if (!std::isfinite(value))
    throw ConfigError(
        fmt::format("derived: {}: '{}' is not finite", key,
                    expression.size() <= 60 ? expression : expression.substr(0, 60) + "..."));
  return value;
}

}  // namespace attnrank
