#include "attnrank/train/checkpoint.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/resources.h"
#include "attnrank/core/safetensors.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/run_directory.h"

namespace attnrank {

void save_checkpoint(const std::string& path, const Transformer<float>& model,
                     const RunConfig& config) {
  SafeTensorFile file;
  for (const TensorInfo& tensor : model.layout().tensors())
    file.add(tensor.name, tensor.shape, model.parameters().data() + tensor.offset);
  file.metadata["format"] = "attnrank";
  file.metadata["config"] = to_yaml(config);
  write_safetensors(path, file);
}

namespace {

// The weights carry the config they were trained with (metadata "config"); an
// edited config.yaml would evaluate them as another model.
void check_same_config(const RunConfig& config, const SafeTensorFile& file,
                       const std::string& weights_path) {
  const auto stored = file.metadata.find("config");
  if (stored == file.metadata.end()) return;  // written by hand or another tool
  RunConfig trained;
  try {
    trained = parse_config(stored->second, {}, weights_path + ": metadata config");
  } catch (const ConfigError& error) {
    throw FormatError(weights_path + ": the config in its metadata is unreadable (" + error.what() +
                      ")");
  }
  if (const auto difference = config_difference(config, trained))
    throw FormatError(weights_path + ": the weights were trained with '" + difference->theirs +
                      "', which does not match config.yaml ('" + difference->ours +
                      "'); restore config.yaml or retrain");
}

}  // namespace

LoadedRun load_run(const std::string& run_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(run_dir)) throw ConfigError("checkpoint: no such directory: " + run_dir);
  const std::string config_path = (fs::path(run_dir) / "config.yaml").string();
  const std::string weights_path = (fs::path(run_dir) / "model.safetensors").string();
  if (!fs::exists(config_path)) throw ConfigError("checkpoint: missing " + config_path);
  if (!fs::exists(weights_path)) throw ConfigError("checkpoint: missing " + weights_path);
  LoadedRun run;
  run.config = load_config(config_path, {});
  const SafeTensorFile file = read_safetensors(weights_path);
  check_same_config(run.config, file, weights_path);
  const SequenceSpec sequence = make_objective(run.config)->sequence();
  check_memory(training_memory_bytes(run.config.model, sequence, run.config.train.batch),
               "evaluating " + run_dir, "");
  run.model = std::make_unique<Transformer<float>>(run.config.model, sequence);
  for (const TensorInfo& tensor : run.model->layout().tensors()) {
    auto found = file.tensors.find(tensor.name);
    if (found == file.tensors.end())
      throw FormatError(weights_path + ": missing tensor '" + tensor.name + "'");
    if (found->second.shape != tensor.shape)
      throw FormatError(weights_path + ": tensor '" + tensor.name +
                        "' has a shape that does not match config.yaml");
    const std::vector<float> values = found->second.to_float();
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i]))
        throw FormatError(weights_path + ": tensor '" + tensor.name + "' holds " +
                          (std::isnan(values[i]) ? "NaN" : "an infinite value") + " at index " +
                          std::to_string(i) + "; these weights cannot be evaluated");
    std::copy(values.begin(), values.end(), run.model->parameters().begin() + tensor.offset);
  }
  if (file.tensors.size() != run.model->layout().tensors().size())
    throw FormatError(weights_path + ": holds tensors that config.yaml does not describe");
  return run;
}

}  // namespace attnrank
