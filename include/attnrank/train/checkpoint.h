// Checkpoints: DIR/config.yaml (resolved config) + DIR/model.safetensors (every
// parameter as F32 under the names documented in model.h; metadata "format" =
// "attnrank" and "config" = the resolved YAML).
#pragma once
#include <memory>
#include <string>

#include "attnrank/config/run_config.h"
#include "attnrank/nn/model.h"

namespace attnrank {

void save_checkpoint(const std::string& path, const Transformer<float>& model,
                     const RunConfig& config);

struct LoadedRun {
  RunConfig config;
  std::unique_ptr<Transformer<float>> model;
};

// Loads DIR/config.yaml and DIR/model.safetensors, checking every tensor's presence,
// dtype and shape against the model the config describes. Throws ConfigError for a
// missing directory or config, FormatError for a corrupt or mismatched checkpoint.
LoadedRun load_run(const std::string& run_dir);

}  // namespace attnrank
