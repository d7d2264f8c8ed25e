"""The package itself: imports, the native module's whereabouts, pip install."""
import os
import shutil
import subprocess
import sys

import attnrank
from conftest import BUILD, ROOT

PYTHON = os.path.join(ROOT, "python")


def run_python(code, env=None, cwd=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_import_is_light_and_builds_are_reported():
    # attnrank.torch and the native module load on first use only.
    result = run_python("import sys, attnrank; print('torch' in sys.modules, "
                        "'attnrank._attnrank' in sys.modules)",
                        env=dict(os.environ, PYTHONPATH=PYTHON))
    assert result.stdout.split() == ["False", "False"], result.stderr
    info = attnrank.build_info()
    assert info["version"] == attnrank.__version__ and info["kernels"]
    keys = [item["key"] for item in attnrank.config_reference()]
    assert keys[:2] == ["model.dim", "model.heads"] and "train.seed" in keys


def test_without_the_native_module(tmp_path):
    # A copy of the package away from any build: the pure-Python parts work, the rest
    # says how to build.
    shutil.copytree(os.path.join(PYTHON, "attnrank"), tmp_path / "attnrank",
                    ignore=shutil.ignore_patterns("_attnrank*", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "ATTNRANK_BUILD_DIR"}
    env["PYTHONPATH"] = str(tmp_path)
    code = ("import attnrank, numpy\n"
            "attnrank.safetensors.save_file({'a': numpy.ones(2)}, 'x.safetensors')\n"
            "print(attnrank.safetensors.load_file('x.safetensors')['a'].sum())\n"
            "try:\n    attnrank.Model()\nexcept ImportError as e:\n    print(e)\n")
    result = run_python(code, env=env, cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0] == "2.0", result.stderr
    assert "native module (_attnrank" in lines[1] and "cmake --preset release" in lines[1]


def test_pip_install_into_a_venv(tmp_path):
    # pip cannot download here: setup.py must build with what is installed, reusing
    # this build's module. A copy of python/, so the source tree stays clean.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    source = tmp_path / "python"
    shutil.copytree(PYTHON, source, ignore=shutil.ignore_patterns("_attnrank*", "__pycache__",
                                                                  "build", "*.egg-info"))
    env = dict(os.environ, ATTNRANK_BUILD_DIR=BUILD, PIP_NO_INDEX="1")
    env.pop("PYTHONPATH", None)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", str(source)],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    env.pop("ATTNRANK_BUILD_DIR")
    result = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import attnrank, attnrank._native as n; print(n.find()); "
                             "print(attnrank.Model({'model': {'dim': 4, 'ffn': 8}}).num_parameters)"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    path, parameters = result.stdout.split()
    assert path.startswith(str(venv)) and int(parameters) > 0, result.stderr
