// Reading, writing and checking one config value. Scalars are parsed strictly
// (no 3.5 for an integer, no `yes` for a boolean, no quoted numbers) so that a
// typo fails loudly instead of training something else for hours.
#include <fmt/core.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <type_traits>

#include "config_schema.h"

namespace attnrank::config_schema {

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace

std::string one_line(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    else
      out += c;
  }
  return out;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      break;
  }
  constexpr size_t kShown = 60;
  std::string text = one_line(node.Scalar());
  if (text.size() > kShown) text = text.substr(0, kShown) + "...";
  // yaml-cpp tags quoted scalars "!": they are strings whatever they look like.
  if (node.Tag() == "!") return "the quoted string '" + text + "'";
  if (node.Tag() == "tag:yaml.org,2002:str") return "the string (!!str) '" + text + "'";
  return "'" + text + "'";
}

namespace {

// The text of a plain (unquoted) scalar, or nothing for anything else.
std::optional<std::string> plain_scalar(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  // Untagged ("?"), or tagged as a number or boolean; "!" (quoted), !!str and any
  // other tag make a string, whatever it looks like.
  const std::string& tag = node.Tag();
  if (tag != "?" && tag != "" && tag != "tag:yaml.org,2002:int" &&
      tag != "tag:yaml.org,2002:float" && tag != "tag:yaml.org,2002:bool")
    return std::nullopt;
  return node.Scalar();
}

template <typename T>
T parse_integer(const YAML::Node& node) {
  const std::string what =
      std::is_unsigned_v<T> ? "expected a non-negative integer" : "expected an integer";
  const auto text = plain_scalar(node);
  if (!text) throw ValueError(what + ", got " + describe(node));
  std::string_view digits = *text;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  if (std::is_unsigned_v<T> && !digits.empty() && digits.front() == '-')
    throw ValueError(what + ", got " + describe(node));
  T value{};
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error == std::errc::result_out_of_range)
    throw ValueError(fmt::format("{} is out of range (at most {})",
                                 text->size() <= 60 ? *text : describe(node),
                                 std::numeric_limits<T>::max()));
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
    throw ValueError(what + ", got " + describe(node));
  return value;
}

double parse_float(const YAML::Node& node) {
  const auto text = plain_scalar(node);
  if (!text) throw ValueError("expected a number, got " + describe(node));
  std::string_view digits = *text;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() ||
      !std::isfinite(value))
    throw ValueError("expected a finite number, got " + describe(node));
  return value;
}

bool parse_bool(const YAML::Node& node) {
  const auto text = plain_scalar(node);
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  throw ValueError("expected true or false, got " + describe(node));
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : std::string(separator)) + item;
  return out;
}

std::string parse_choice(const YAML::Node& node, const std::vector<std::string>& choices) {
  if (node.IsScalar()) {
    for (const auto& choice : choices)
      if (node.Scalar() == choice) return choice;
  }
  throw ValueError("expected one of " + join(choices, " | ") + ", got " + describe(node));
}

int parse_rank(const YAML::Node& node) {
  if (plain_scalar(node) == "auto") return 0;  // derived by resolve_and_validate
  const std::string what = "expected an integer >= 1 or 'auto', got ";
  int value = 0;
  try {
    value = parse_integer<int>(node);
  } catch (const ValueError&) {
    throw ValueError(what + describe(node));
  }
  if (value < 1) throw ValueError(what + describe(node));
  return value;
}

CheckpointInterval parse_interval(const YAML::Node& node) {
  const std::string what =
      "expected steps (an integer >= 1), a duration (90s, 10min, 2h) or off, got " + describe(node);
  if (!node.IsScalar()) throw ValueError(what);
  const std::string text = node.Scalar();
  if (text == "off" || text == "0") return {0, 0};
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) throw ValueError(what);
  const int64_t count = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  if (unit.empty()) return {count, 0};
  if (unit == "s") return {0, static_cast<double>(count)};
  if (unit == "min") return {0, 60.0 * count};
  if (unit == "h") return {0, 3600.0 * count};
  throw ValueError(what);
}

std::string format_interval(const CheckpointInterval& interval) {
  if (interval.steps > 0) return fmt::format("{}", interval.steps);
  if (interval.seconds <= 0) return "off";
  const auto seconds = static_cast<int64_t>(interval.seconds);
  if (seconds % 3600 == 0) return fmt::format("{}h", seconds / 3600);
  if (seconds % 60 == 0) return fmt::format("{}min", seconds / 60);
  return fmt::format("{}s", seconds);
}

// Shortest text that reads back to exactly the same double.
std::string format_float(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  return fmt::format("{}", value);
}

std::string format_string(const std::string& value) {
  YAML::Emitter emitter;
  emitter << value;  // quotes only where a plain scalar would read differently
  return emitter.c_str();
}

std::string format_bound(double value) {
  return fmt::format("{}", value);
}

std::optional<std::string> check(const Bounds& bounds, double value, std::string_view label) {
  const std::string prefix = label.empty() ? "" : std::string(label) + " ";
  const std::string got = fmt::format("got {}", value);
  if (bounds.min && bounds.max) {
    const bool below = bounds.min_open ? value <= *bounds.min : value < *bounds.min;
    const bool above = bounds.max_open ? value >= *bounds.max : value > *bounds.max;
    if (below || above)
      return fmt::format("{}must be in {}{}, {}{}, {}", prefix, bounds.min_open ? "(" : "[",
                         format_bound(*bounds.min), format_bound(*bounds.max),
                         bounds.max_open ? ")" : "]", got);
    return std::nullopt;
  }
  if (bounds.min && (bounds.min_open ? value <= *bounds.min : value < *bounds.min))
    return fmt::format("{}must be {} {}, {}", prefix,
                       bounds.min_open ? ">" : ">=", format_bound(*bounds.min), got);
  if (bounds.max && (bounds.max_open ? value >= *bounds.max : value > *bounds.max))
    return fmt::format("{}must be {} {}, {}", prefix,
                       bounds.max_open ? "<" : "<=", format_bound(*bounds.max), got);
  return std::nullopt;
}

}  // namespace

void set_value(const KeySpec& spec, RunConfig& config, const YAML::Node& node) {
  std::visit(
      Overloaded{
          [&]<typename T>(const IntegerValue<T>& v) { v.ref(config) = parse_integer<T>(node); },
          [&](const FloatValue& v) { v.ref(config) = parse_float(node); },
          [&](const BoolValue& v) { v.ref(config) = parse_bool(node); },
          [&](const ChoiceValue& v) { v.ref(config) = parse_choice(node, v.choices); },
          [&]<typename E>(const EnumValue<E>& v) {
            v.ref(config) = *choice_from_name<E>(parse_choice(node, choice_names<E>()));
          },
          [&](const RankValue& v) { v.ref(config) = parse_rank(node); },
          [&](const IntervalValue& v) { v.ref(config) = parse_interval(node); },
          [&](const FloatPairValue& v) {
            if (!node.IsSequence() || node.size() != 2)
              throw ValueError(fmt::format(
                  "expected a list [{}, {}], got {}", v.first_name, v.second_name,
                  node.IsSequence() ? fmt::format("{} elements", node.size()) : describe(node)));
            double first = 0, second = 0;
            try {
              first = parse_float(node[0]);
            } catch (const ValueError& error) {
              throw ValueError(std::string(v.first_name) + ": " + error.what());
            }
            try {
              second = parse_float(node[1]);
            } catch (const ValueError& error) {
              throw ValueError(std::string(v.second_name) + ": " + error.what());
            }
            v.first(config) = first;
            v.second(config) = second;
          },
      },
      spec.value);
}

std::string format_value(const KeySpec& spec, RunConfig& config) {
  return std::visit(
      Overloaded{
          [&]<typename T>(const IntegerValue<T>& v) { return fmt::format("{}", v.ref(config)); },
          [&](const FloatValue& v) { return format_float(v.ref(config)); },
          [&](const BoolValue& v) { return std::string(v.ref(config) ? "true" : "false"); },
          [&](const ChoiceValue& v) { return format_string(v.ref(config)); },
          [&]<typename E>(const EnumValue<E>& v) {
            return format_string(std::string(name_of(v.ref(config))));
          },
          [&](const RankValue& v) {
            const int rank = v.ref(config);
            return rank == 0 ? std::string("auto") : fmt::format("{}", rank);
          },
          [&](const IntervalValue& v) { return format_interval(v.ref(config)); },
          [&](const FloatPairValue& v) {
            return fmt::format("[{}, {}]", format_float(v.first(config)),
                               format_float(v.second(config)));
          },
      },
      spec.value);
}

std::string type_name(const KeySpec& spec) {
  return std::visit(
      Overloaded{
          [](const IntegerValue<uint64_t>&) { return std::string("uint64"); },
          []<typename T>(const IntegerValue<T>&) { return std::string("integer"); },
          [](const FloatValue&) { return std::string("float"); },
          [](const BoolValue&) { return std::string("boolean"); },
          [](const ChoiceValue& v) { return join(v.choices, " | "); },
          []<typename E>(const EnumValue<E>&) { return join(choice_names<E>(), " | "); },
          [](const RankValue&) { return std::string("integer | auto"); },
          [](const IntervalValue&) { return std::string("steps | duration | off"); },
          [](const FloatPairValue&) { return std::string("[float, float]"); },
      },
      spec.value);
}

std::optional<std::string> value_violation(const KeySpec& spec, RunConfig& config) {
  return std::visit(
      Overloaded{
          [&]<typename T>(const IntegerValue<T>& v) {
            return check(spec.bounds, static_cast<double>(v.ref(config)), "");
          },
          [&](const FloatValue& v) { return check(spec.bounds, v.ref(config), ""); },
          [&](const RankValue& v) { return check(spec.bounds, v.ref(config), ""); },
          [&](const FloatPairValue& v) {
            if (auto problem = check(spec.bounds, v.first(config), v.first_name)) return problem;
            return check(spec.bounds, v.second(config), v.second_name);
          },
          [](const BoolValue&) { return std::optional<std::string>(); },
          [](const IntervalValue&) { return std::optional<std::string>(); },
          []<typename E>(const EnumValue<E>&) { return std::optional<std::string>(); },
          [&](const ChoiceValue& v) {
            const std::string& value = v.ref(config);
            for (const auto& choice : v.choices)
              if (value == choice) return std::optional<std::string>();
            return std::optional<std::string>("expected one of " + join(v.choices, " | ") +
                                              ", got '" + value + "'");
          },
      },
      spec.value);
}

}  // namespace attnrank::config_schema
