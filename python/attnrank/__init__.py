"""attnrank: train and inspect attention layers whose rank is chosen independently
of the head count, with the C++ engine in this process (docs/python.md).

    import attnrank
    run = attnrank.train({"model": {"dim": 8, "ffn": 64}, "task": {"points": 4},
                          "train": {"steps": 1500, "batch": 64}}, out="runs/small")
    run.summary["test_mse"], run.metrics          # pandas when installed
    model = attnrank.Model.load("runs/small")
    outputs, attention = model.forward(x, return_attention=True)
    module = attnrank.torch.to_module(model)      # a torch.nn.Module, same outputs
    attnrank.Results("results.db").aggregate()    # as `attnrank results`

attnrank.safetensors reads and writes checkpoints with numpy alone;
attnrank.torch needs PyTorch and is imported on first use.
"""
from . import safetensors
from .errors import ConfigError, FormatError
from .model import Model
from .results import Results
from .run import Run, train

__version__ = "0.1.0"
__all__ = ["train", "Run", "Model", "Results", "ConfigError", "FormatError", "safetensors",
           "build_info", "config_reference"]


def build_info():
    """What `attnrank info` prints: version, commit, compiler, kernels, BLAS, threads."""
    from ._native import native
    return native().build_info()


def config_reference():
    """Every config key: key, type, default and a one-line doc, in documentation order."""
    from ._native import native
    return native().config_reference()


def __getattr__(name):
    # attnrank.torch without importing torch at `import attnrank`.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError("module 'attnrank' has no attribute %r" % name)
