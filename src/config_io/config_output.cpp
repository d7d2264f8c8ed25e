// A config as YAML (what a run directory records) and the key listing.
#include <fmt/core.h>

#include "attnrank/config_io/config_io.h"
#include "config_schema.h"

namespace attnrank {

using config_schema::KeySpec;

std::string to_yaml(const RunConfig& config) {
  RunConfig resolved = config;
  // Write the numbers a run actually used; leave `auto` only where no number
  // can be derived (such a config fails validation anyway).
  ModelConfig& model = resolved.model;
  if (model.rank == 0 && model.heads >= 1 && model.width() >= 1 && model.width() % model.heads == 0)
    model.rank = model.width() / model.heads;
  if (model.value_rank == 0) model.value_rank = model.rank;

  std::string out = "# attnrank run configuration, fully resolved (keys: docs/config.md)\n";
  std::string section;
  for (const KeySpec& spec : config_schema::key_specs()) {
    if (spec.section != section) {
      section = spec.section;
      out += section + ":\n";
    }
    out += fmt::format("  {}: {}\n", spec.name, config_schema::format_value(spec, resolved));
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const KeySpec& spec : config_schema::key_specs()) keys.push_back(spec.key());
  return keys;
}

std::vector<ConfigKeyInfo> config_reference() {
  RunConfig defaults;
  std::vector<ConfigKeyInfo> reference;
  for (const KeySpec& spec : config_schema::key_specs())
    reference.push_back({spec.key(), config_schema::type_name(spec),
                         config_schema::format_value(spec, defaults), spec.doc});
  return reference;
}

}  // namespace attnrank
