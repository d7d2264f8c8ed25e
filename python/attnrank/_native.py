"""Finds and loads the native module attnrank._attnrank (the C++ engine).

Where it looks, in order:
  1. $ATTNRANK_BUILD_DIR/python/attnrank/ (a CMake build directory);
  2. this package's own directory (where `pip install ./python` puts it);
  3. in a source checkout, build/release/ then build/native/ (the CMake presets),
     as BUILD/python/attnrank/.
It is loaded on first use, so the pure-Python parts (attnrank.safetensors,
attnrank.torch's modules, attnrank.Results) work without it.
"""
import importlib.machinery
import importlib.util
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SOURCE_ROOT = os.path.dirname(os.path.dirname(_PACKAGE_DIR))  # python/attnrank -> checkout
_module = None


def search_dirs():
    """The directories searched for the native module, in order."""
    dirs = []
    build = os.environ.get("ATTNRANK_BUILD_DIR")
    if build:
        dirs.append(os.path.join(build, "python", "attnrank"))
    dirs.append(_PACKAGE_DIR)
    if os.path.isfile(os.path.join(_SOURCE_ROOT, "CMakeLists.txt")):
        for preset in ("release", "native"):
            dirs.append(os.path.join(_SOURCE_ROOT, "build", preset, "python", "attnrank"))
    return dirs


def find():
    """The path of the native module that native() loads, or None."""
    for directory in search_dirs():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "_attnrank" + suffix)
            if os.path.isfile(path):
                return path
    return None


def native():
    """The loaded native module; ImportError saying how to build it when absent."""
    global _module
    if _module is None:
        path = find()
        if path is None:
            raise ImportError(
                "attnrank: the native module (_attnrank%s) is not built; looked in %s. Build it "
                "with `cmake --preset release && cmake --build --preset release` from the "
                "repository root, or set ATTNRANK_BUILD_DIR to a CMake build directory "
                "(docs/python.md)" % (importlib.machinery.EXTENSION_SUFFIXES[0],
                                     ", ".join(search_dirs())))
        spec = importlib.util.spec_from_file_location("attnrank._attnrank", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["attnrank._attnrank"] = module
        spec.loader.exec_module(module)
        _module = module
    return _module
