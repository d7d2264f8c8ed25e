// Reading a run configuration: the YAML file, then `section.key=value` overrides
// in order, then derivation and validation. Every error is one ConfigError line
// "SOURCE: KEY: what is wrong".
#include "attnrank/config_io/config_io.h"

#include <fmt/core.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "attnrank/core/error.h"
#include "attnrank/core/resources.h"
#include "config_schema.h"

namespace attnrank {

using config_schema::describe;
using config_schema::fail;
using config_schema::KeySpec;
using config_schema::Origins;

namespace {

std::string unknown_key_hint(std::string_view section, std::string_view name) {
  // The right name in the wrong section ("model.lr") is the likeliest slip.
  for (const KeySpec& spec : config_schema::key_specs())
    if (spec.name == name && spec.section != section)
      return " (did you mean '" + spec.key() + "'?)";
  return did_you_mean(std::string(section) + "." + std::string(name), config_keys());
}

void apply_value(RunConfig& config, const std::string& section, const std::string& name,
                 const YAML::Node& value, const std::string& source, Origins& origins) {
  const std::string key = section + "." + name;
  const KeySpec* spec = config_schema::find_key(key);
  if (!spec) fail(source, key, "unknown key" + unknown_key_hint(section, name));
  try {
    config_schema::set_value(*spec, config, value);
  } catch (const config_schema::ValueError& error) {
    fail(source, key, error.what());
  }
  origins.by_key[key] = source;
}

std::string join_sections() {
  const auto& names = config_schema::section_names();
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return out;
}

void apply_section(RunConfig& config, const std::string& section, const YAML::Node& keys,
                   const std::string& source, Origins& origins) {
  if (keys.IsNull()) return;  // `model:` with every key commented out
  if (!keys.IsMap()) fail(source, section, "expected a map of keys, got " + describe(keys));
  std::set<std::string> seen;
  for (const auto& entry : keys) {
    if (!entry.first.IsScalar())
      fail(source, section, "expected key names, got " + describe(entry.first));
    const std::string name = entry.first.Scalar();
    if (!seen.insert(name).second) fail(source, section + "." + name, "set twice");
    apply_value(config, section, name, entry.second, source, origins);
  }
}

void apply_document(RunConfig& config, const YAML::Node& root, const std::string& source,
                    Origins& origins) {
  if (root.IsNull()) return;  // empty file: defaults
  if (!root.IsMap())
    throw ConfigError(fmt::format("{}: expected a map with the sections {}, got {}", source,
                                  join_sections(), describe(root)));
  const auto& sections = config_schema::section_names();
  std::set<std::string> seen;
  for (const auto& entry : root) {
    const std::string section = entry.first.IsScalar() ? entry.first.Scalar() : "";
    if (std::find(sections.begin(), sections.end(), section) == sections.end())
      fail(source, section.empty() ? describe(entry.first) : section,
           "unknown section (the sections are " + join_sections() + ")" +
               did_you_mean(section, sections));
    if (!seen.insert(section).second) fail(source, section, "section appears twice");
    apply_section(config, section, entry.second, source, origins);
  }
}

// Counts documents without building them.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

YAML::Node parse_document(const std::string& text, const std::string& source) {
  YAML::Node document;
  try {
    // At most two documents are looked at: yaml-cpp 0.7's LoadAll never ends on
    // some inputs (a root tag holding ',' such as "!a,b" yields documents forever;
    // found by fuzz/fuzz_config.cpp).
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    int documents = 0;
    while (documents < 2 && parser.HandleNextDocument(counter)) ++documents;
    if (documents > 1)
      throw ConfigError(fmt::format("{}: holds more than one YAML document, expected one", source));
    document = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    throw ConfigError(fmt::format("{}:{}:{}: invalid YAML: {}", source, error.mark.line + 1,
                                  error.mark.column + 1, error.msg));
  }
  return document;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return "";
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

void apply_override(RunConfig& config, const std::string& override_text, Origins& origins) {
  const std::string source = "override '" + override_text + "'";
  const auto equals = override_text.find('=');
  const std::string key = trim(std::string_view(override_text).substr(0, equals));
  const auto dot = key.find('.');
  if (equals == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == key.size())
    throw ConfigError(source + ": expected section.key=value, e.g. model.rank=32");
  YAML::Node value;
  try {
    value = YAML::Load(override_text.substr(equals + 1));
  } catch (const YAML::Exception& error) {
    fail(source, key, "invalid YAML value: " + error.msg);
  }
  apply_value(config, key.substr(0, dot), key.substr(dot + 1), value, source, origins);
}

std::string read_file(const std::string& path) {
  return read_file_bounded(path, kMaxTextInputBytes, "config file");
}

}  // namespace

RunConfig parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                       const std::string& source_name) {
  RunConfig config;
  Origins origins{.fallback = source_name, .by_key = {}};
  try {
    apply_document(config, parse_document(yaml_text, source_name), source_name, origins);
    for (const auto& override_text : overrides) apply_override(config, override_text, origins);
  } catch (const ConfigError& error) {
    // Paths, overrides and YAML messages come from the user: keep the line one line.
    throw ConfigError(config_schema::one_line(error.what()));
  }
  config_schema::resolve_and_validate(config, origins);
  return config;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return parse_config("", overrides, "defaults");
  std::string text;
  try {
    text = read_file(path);
  } catch (const ConfigError& error) {
    throw ConfigError(config_schema::one_line(error.what()));
  }
  return parse_config(text, overrides, path);
}

}  // namespace attnrank
