// Configs between Python and the engine: loading (file, YAML/JSON text, overrides)
// and the resolved config as a typed dict.
#include <pybind11/stl.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>

#include "attnrank/core/error.h"
#include "bindings.h"

namespace attnrank::python {

void raise_file_not_found(const std::string& message) {
  PyErr_SetString(PyExc_FileNotFoundError, message.c_str());
  throw py::error_already_set();
}

RunConfig load_run_config(const ConfigSource& config) {
  try {
    if (config.is_path) return load_config(config.source, config.overrides);
    return parse_config(config.source, config.overrides, "config");
  } catch (const ConfigError& error) {
    // The engine words the message; Python wants the missing file as its own type.
    if (config.is_path && !config.source.empty() && !std::filesystem::exists(config.source))
      raise_file_not_found(error.what());
    throw;
  }
}

namespace {

// One value of to_yaml's output as the Python type its schema type names.
py::object typed_value(const YAML::Node& node, const std::string& type) {
  if (node.IsSequence()) {
    py::list values;
    for (const YAML::Node& item : node) values.append(item.as<double>());
    return values;
  }
  const std::string& text = node.Scalar();
  if (type == "integer") return py::int_(node.as<int64_t>());
  if (type == "uint64") return py::int_(node.as<uint64_t>());
  if (type == "float") return py::float_(node.as<double>());
  if (type == "boolean") return py::bool_(node.as<bool>());
  if (type == "integer | auto") {
    if (text == "auto") return py::str(text);
    return py::int_(node.as<int64_t>());
  }
  return py::str(text);
}

}  // namespace

py::dict config_to_dict(const RunConfig& config) {
  std::map<std::string, std::string> types;
  for (const ConfigKeyInfo& info : config_reference()) types[info.key] = info.type;
  // to_yaml is the engine's one canonical writer of every key, in documentation order.
  const YAML::Node root = YAML::Load(to_yaml(config));
  py::dict out;
  for (const auto& section : root) {
    const std::string name = section.first.Scalar();
    py::dict values;
    for (const auto& entry : section.second) {
      const std::string key = entry.first.Scalar();
      values[py::str(key)] = typed_value(entry.second, types[name + "." + key]);
    }
    out[py::str(name)] = values;
  }
  return out;
}

void bind_config(py::module_& module) {
  module.def(
      "resolve_config",
      [](const std::string& source, bool is_path, const std::vector<std::string>& overrides) {
        RunConfig config = load_run_config({source, is_path, overrides});
        return py::make_tuple(config_to_dict(config), to_yaml(config));
      },
      py::arg("source"), py::arg("is_path"), py::arg("overrides"));
  module.def("config_keys", &config_keys);
  module.def("config_reference", [] {
    py::list out;
    for (const ConfigKeyInfo& info : config_reference()) {
      py::dict item;
      item["key"] = info.key;
      item["type"] = info.type;
      item["default"] = info.default_value;
      item["doc"] = info.doc;
      out.append(item);
    }
    return out;
  });
}

}  // namespace attnrank::python
