// The table of config keys: one row per key (section, name, value type, bounds,
// one-line doc). Parsing, validation, YAML output and the documentation listing
// all walk this table, so a new key is a new row (plus a struct field).
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/suggest.h"

namespace attnrank::config_schema {

// A bad value for a known key. The message names neither key nor source; the
// caller adds both, so every path reports the same one-line format.
struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Accessors are plain function pointers into a RunConfig: captureless lambdas,
// so the table stays a constant list of rows.
template <typename T>
using Ref = T& (*)(RunConfig&);

template <typename T>
struct IntegerValue {  // int, int64_t (steps) or uint64_t (seed)
  Ref<T> ref;
};
struct FloatValue {
  Ref<double> ref;
};
struct BoolValue {
  Ref<bool> ref;
};
struct ChoiceValue {  // a string from a fixed set
  Ref<std::string> ref;
  std::vector<std::string> choices;
};
template <typename E>
struct EnumValue {  // a closed choice (config/choices.h), written by its name
  Ref<E> ref;
};
struct RankValue {  // an integer >= 1, or `auto` (stored as 0 until resolved)
  Ref<int> ref;
};
struct IntervalValue {  // steps ("500"), a duration ("90s", "10min", "2h") or "off"
  Ref<CheckpointInterval> ref;
};
struct FloatPairValue {  // a two-element list [first, second]
  Ref<double> first;
  Ref<double> second;
  const char* first_name;
  const char* second_name;
};

using Value = std::variant<IntegerValue<int>, IntegerValue<int64_t>, IntegerValue<uint64_t>,
                           FloatValue, BoolValue, ChoiceValue, EnumValue<Norm>,
                           EnumValue<Positional>, EnumValue<HeadSize>, EnumValue<TaskKind>,
                           EnumValue<PointDistribution>, EnumValue<DataMode>,
                           EnumValue<PositionalInit>, RankValue, IntervalValue, FloatPairValue>;

// Closed or open numeric interval checked after resolution (per element for lists).
struct Bounds {
  std::optional<double> min;
  std::optional<double> max;
  bool min_open = false;
  bool max_open = false;
};

struct KeySpec {
  std::string section;
  std::string name;
  Value value;
  Bounds bounds;
  std::string doc;

  std::string key() const { return section + "." + name; }
};

// All keys in documentation order.
const std::vector<KeySpec>& key_specs();
// The sections, in documentation order.
const std::vector<std::string>& section_names();
// The row for "section.name", or null.
const KeySpec* find_key(std::string_view dotted_key);

// Parses `node` into the field of `spec`. Throws ValueError.
void set_value(const KeySpec& spec, RunConfig& config, const YAML::Node& node);
// The field as YAML text (flow style for lists), readable back by set_value.
std::string format_value(const KeySpec& spec, RunConfig& config);
// Short type description for documentation ("integer", "sphere | layer | none").
std::string type_name(const KeySpec& spec);
// Why the field's value is not allowed ("must be >= 1, got 0", a string outside
// its choices), or nothing. Cross-key rules live in resolve_and_validate.
std::optional<std::string> value_violation(const KeySpec& spec, RunConfig& config);

// "'abc'", "a list", "nothing", ... for error messages (long values shortened).
std::string describe(const YAML::Node& node);
// `text` with line breaks and other control characters escaped, so that an
// error stays one line whatever the user typed.
std::string one_line(std::string_view text);

// Where each key got its value (a file or an override), so that an error found
// after merging still names the source responsible.
struct Origins {
  std::string fallback;  // for keys never set explicitly: the config file, or nothing
  std::map<std::string, std::string, std::less<>> by_key;

  const std::string& of(std::string_view key) const;
};

// Throws ConfigError "SOURCE: KEY: MESSAGE" (without "SOURCE: " when source is empty).
[[noreturn]] void fail(const std::string& source, std::string_view key, std::string_view message);

// resolve_and_validate, with errors attributed through `origins`.
void resolve_and_validate(RunConfig& config, const Origins& origins);

}  // namespace attnrank::config_schema
