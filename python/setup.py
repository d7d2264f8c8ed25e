"""`pip install ./python` (docs/python.md): the attnrank package plus its native
module, built by the project's CMake rather than by setuptools.

The native module links the whole C++ engine (the static library attnrank_lib),
which only the project's CMakeLists.txt knows how to build. So build_ext builds the
CMake target attnrank_python in a build directory of this checkout and copies the
module into the package: $ATTNRANK_BUILD_DIR, or build/release (configured with
`cmake --preset release` when it does not exist yet). With ATTNRANK_BUILD_DIR set to
a configured build, python/ may also be a copy outside the checkout. An up-to-date build costs
seconds; a fresh one builds the library (minutes). No setup.cfg/pyproject.toml, so
pip uses the installed setuptools and needs no network.
"""
import glob
import os
import shutil
import subprocess

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class CMakeBuild(build_ext):
    """Builds attnrank._attnrank with the project's CMake and copies it in place."""

    def build_extension(self, ext):
        build_dir = os.path.abspath(os.environ.get("ATTNRANK_BUILD_DIR") or
                                    os.path.join(ROOT, "build", "release"))
        # A configured build directory is all it needs; configuring one needs the checkout.
        if not os.path.isfile(os.path.join(build_dir, "CMakeCache.txt")):
            if not os.path.isfile(os.path.join(ROOT, "CMakeLists.txt")):
                raise RuntimeError("attnrank: run setup.py from the attnrank checkout (python/ "
                                   "next to CMakeLists.txt), or set ATTNRANK_BUILD_DIR to a "
                                   "configured CMake build directory")
            if "ATTNRANK_BUILD_DIR" in os.environ:
                self._run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"])
            else:
                self._run(["cmake", "--preset", "release"])
        jobs = str(os.cpu_count() or 1)
        self._run(["cmake", "--build", build_dir, "--target", "attnrank_python", "-j", jobs])
        built = glob.glob(os.path.join(build_dir, "python", "attnrank", "_attnrank*"))
        if not built:
            raise RuntimeError("attnrank: CMake built no native module in %s/python/attnrank "
                               "(is ATTNRANK_PYTHON on? see `cmake -L %s | grep PYTHON`)"
                               % (build_dir, build_dir))
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built[0], target)

    def _run(self, command):
        print(" ".join(command))
        subprocess.check_call(command, cwd=ROOT if os.path.isdir(ROOT) else None)


setup(
    name="attnrank",
    version="0.1.0",
    description="Train and inspect attention layers whose rank is chosen independently of "
                "the head count (C++ engine in-process)",
    packages=find_packages(HERE, exclude=["tests"]),
    package_dir={"": "."},
    ext_modules=[Extension("attnrank._attnrank", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy"],
    extras_require={"pandas": ["pandas"], "torch": ["torch"]},
    zip_safe=False,
)
