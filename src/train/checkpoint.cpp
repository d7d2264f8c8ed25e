#include "attnrank/train/checkpoint.h"

#include <filesystem>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/safetensors.h"
#include "attnrank/train/objective.h"

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

LoadedRun load_run(const std::string& run_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(run_dir)) throw ConfigError("checkpoint: no such directory: " + run_dir);
  const std::string config_path = (fs::path(run_dir) / "config.yaml").string();
  const std::string weights_path = (fs::path(run_dir) / "model.safetensors").string();
  if (!fs::exists(config_path)) throw ConfigError("checkpoint: missing " + config_path);
  if (!fs::exists(weights_path)) throw ConfigError("checkpoint: missing " + weights_path);
  LoadedRun run;
  run.config = load_config(config_path, {});
  run.model = std::make_unique<Transformer<float>>(run.config.model,
                                                   make_objective(run.config)->sequence());
  const SafeTensorFile file = read_safetensors(weights_path);
  for (const TensorInfo& tensor : run.model->layout().tensors()) {
    auto found = file.tensors.find(tensor.name);
    if (found == file.tensors.end())
      throw FormatError(weights_path + ": missing tensor '" + tensor.name + "'");
    if (found->second.shape != tensor.shape)
      throw FormatError(weights_path + ": tensor '" + tensor.name +
                        "' has a shape that does not match config.yaml");
    const std::vector<float> values = found->second.to_float();
    std::copy(values.begin(), values.end(), run.model->parameters().begin() + tensor.offset);
  }
  if (file.tensors.size() != run.model->layout().tensors().size())
    throw FormatError(weights_path + ": holds tensors that config.yaml does not describe");
  return run;
}

}  // namespace attnrank
