// Shared pieces of the native module attnrank._attnrank (python/attnrank/): how a
// config arrives from Python, how engine errors become Python exceptions, and the
// registration functions of each part.
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "attnrank/config_io/config_io.h"

namespace attnrank::python {

namespace py = pybind11;

// A config as Python hands it over: `source` is a file path (is_path) or YAML text
// (a dict arrives as JSON, which is YAML), followed by `section.key=value` overrides.
struct ConfigSource {
  std::string source;
  bool is_path = false;
  std::vector<std::string> overrides;
};

// Loads and validates; a missing config file raises FileNotFoundError, any other
// problem ConfigError (a ValueError) with the engine's one-line message.
RunConfig load_run_config(const ConfigSource& config);

// The resolved config as {section: {key: value}}, values typed by the schema
// (int, float, bool, str, [float, float]).
py::dict config_to_dict(const RunConfig& config);

// Raises FileNotFoundError(message) in Python.
[[noreturn]] void raise_file_not_found(const std::string& message);

void bind_config(py::module_& module);
void bind_train(py::module_& module);
void bind_model(py::module_& module);

}  // namespace attnrank::python
