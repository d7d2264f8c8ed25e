// attnrank._attnrank: the engine in-process for the Python package. The Python
// side (python/attnrank/*.py) wraps these functions and classes; nothing here is
// meant to be called directly.
#include <pybind11/stl.h>

#include "attnrank/core/error.h"
#include "attnrank/train/build_info.h"
#include "bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_attnrank, module) {
  module.doc() = "attnrank's C++ engine (use the attnrank package, not this module)";
  // The engine's two kinds of bad input raise the package's ValueError subclasses
  // (python/attnrank/errors.py), the same classes its pure-Python parts raise.
  const py::module_ errors = py::module_::import("attnrank.errors");
  // Kept for the interpreter's lifetime: translators may run until it exits.
  static PyObject* config_error = py::object(errors.attr("ConfigError")).release().ptr();
  static PyObject* format_error = py::object(errors.attr("FormatError")).release().ptr();
  py::register_exception_translator([](std::exception_ptr raised) {
    try {
      if (raised) std::rethrow_exception(raised);
    } catch (const attnrank::ConfigError& error) {
      PyErr_SetString(config_error, error.what());
    } catch (const attnrank::FormatError& error) {
      PyErr_SetString(format_error, error.what());
    }
  });

  module.def("build_info", [] {
    const attnrank::BuildInfo info = attnrank::build_info();
    py::dict out;
    out["version"] = info.version;
    out["commit"] = info.commit;
    out["compiler"] = info.compiler;
    out["build"] = info.build;
    out["kernels"] = info.isa;
    out["kernel_variants"] = info.variants;
    out["cpu"] = info.cpu;
    out["blas"] = info.blas;
    out["blas_threads"] = info.blas_threads;
    out["threads"] = info.threads;
    return out;
  });

  attnrank::python::bind_config(module);
  attnrank::python::bind_train(module);
  attnrank::python::bind_model(module);
}
