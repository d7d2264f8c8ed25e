// A run's identity: a hash of its resolved config, so a sweep recognises runs it
// has already finished whatever grid or spec file produced them.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <set>

#include "attnrank/config_io/config_io.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

namespace {

std::string flow_text(const YAML::Node& node) {
  YAML::Emitter emitter;
  emitter << YAML::Flow << node;
  return emitter.c_str();
}

// Keys whose value never changes what a run computes: its model and held-out
// metrics are the same bits whatever they say (eval_every and tensorboard add
// outputs, validation curves, but take nothing from the training data stream).
const std::set<std::string>& identity_neutral_keys() {
  static const std::set<std::string> keys = {"train.threads", "train.checkpoint_every",
                                             "train.eval_every", "train.tensorboard"};
  return keys;
}

uint64_t fnv1a64(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> flat_config(const RunConfig& config) {
  // to_yaml is the one canonical writer of every key; reading it back keeps this
  // in step with the schema without a second table.
  const YAML::Node root = YAML::Load(to_yaml(config));
  std::vector<std::pair<std::string, std::string>> flat;
  for (const auto& section : root)
    for (const auto& entry : section.second)
      flat.emplace_back(section.first.Scalar() + "." + entry.first.Scalar(),
                        flow_text(entry.second));
  return flat;
}

std::string canonical_config(const RunConfig& config) {
  static const auto defaults = [] {
    auto flat = flat_config(RunConfig{});
    return std::vector<std::pair<std::string, std::string>>(flat.begin(), flat.end());
  }();
  auto is_default = [&](const std::pair<std::string, std::string>& entry) {
    return std::find(defaults.begin(), defaults.end(), entry) != defaults.end();
  };
  auto flat = flat_config(config);
  std::sort(flat.begin(), flat.end());
  std::string text = "attnrank-run-v1\n";
  for (const auto& entry : flat)
    if (!identity_neutral_keys().contains(entry.first) && !is_default(entry))
      text += entry.first + ": " + entry.second + "\n";
  return text;
}

std::string run_identity(const RunConfig& config) {
  static const char* kHex = "0123456789abcdef";
  uint64_t hash = fnv1a64(canonical_config(config));
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) id[static_cast<size_t>(i)] = kHex[hash & 15];
  return id;
}

}  // namespace attnrank
