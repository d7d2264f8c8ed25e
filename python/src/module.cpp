// attnrank._attnrank: the engine in-process for the Python package. The Python
// side (python/attnrank/*.py) wraps these functions and classes; nothing here is
// meant to be called directly.
#include <pybind11/stl.h>

#include "attnrank/build_info.h"
#include "attnrank/error.h"
#include "bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_attnrank, module) {
  module.doc() = "attnrank's C++ engine (use the attnrank package, not this module)";
  // Bad input is a ValueError in Python; the subclasses keep the engine's two kinds apart.
  py::register_exception<attnrank::ConfigError>(module, "ConfigError", PyExc_ValueError);
  py::register_exception<attnrank::FormatError>(module, "FormatError", PyExc_ValueError);

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
