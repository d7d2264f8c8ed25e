// Reading and writing run configurations: YAML files and `section.key=value`
// overrides in, fully resolved YAML out, and the table of every accepted key.
#pragma once
#include <string>
#include <vector>

#include "attnrank/config/run_config.h"

namespace attnrank {

// One accepted key, for documentation and `--help` style listings.
struct ConfigKeyInfo {
  std::string key;            // "model.dim"
  std::string type;           // "integer", "float", "boolean", "sphere | layer | none", ...
  std::string default_value;  // as written in YAML ("64", "auto", "[0.9, 0.95]")
  std::string doc;            // one line
};

// Loads a YAML config (empty path: defaults only), applies `section.key=value`
// overrides in order, derives defaults and validates. Throws ConfigError with one
// line naming the offending key.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides);
// Parses YAML text instead of a file (same rules).
RunConfig parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                       const std::string& source_name = "<config>");
// Fills derived values (rank, value_rank) and checks every constraint.
void resolve_and_validate(RunConfig& config);
// Fully resolved YAML, readable back by load_config.
std::string to_yaml(const RunConfig& config);
// Every accepted key ("model.dim", ...), in documentation order.
std::vector<std::string> config_keys();
// Every accepted key with its type, default and meaning, in documentation order.
std::vector<ConfigKeyInfo> config_reference();

}  // namespace attnrank
