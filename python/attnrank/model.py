"""attnrank.Model: a model of the C++ engine in this process, on numpy arrays."""
import os

import numpy as np

from . import _config
from ._native import native


class Model:
    """An attnrank model (float32, the engine's own forward and backward passes).

    Model(config, overrides=[], seed=None) builds a freshly initialised model:
    `config` is a dict ({"model": {"dim": 8}, "task": {"points": 4}}), a path to a
    YAML config, or None for the defaults; the task decides the sequence length and
    the input and output stages. seed defaults to the config's train.seed.
    Model.load(run_dir) reads a trained run's checkpoint.

    Inputs `x` are (B, N, input width) floats, or (B, N) token ids for the text
    tasks; outputs are (B, N, output width). See docs/python.md.
    """

    def __init__(self, config=None, overrides=(), seed=None):
        self._native = native().Model(*_config.source(config, overrides), seed)

    @classmethod
    def load(cls, run_dir):
        """The model of a run directory (config.yaml and model.safetensors)."""
        model = cls.__new__(cls)
        model._native = native().Model.load(os.fspath(run_dir))
        return model

    @property
    def config(self):
        """The resolved config, {section: {key: value}}."""
        return self._native.config

    @property
    def sequence(self):
        """What the task feeds the model: tokens (N), mask (full, prefix or causal),
        key_limit, input (vectors, tokens or linear) and input_width, output
        (vectors or linear) and output_width, tied (output layer = embedding)."""
        return self._native.sequence

    @property
    def num_parameters(self):
        return self._native.parameter_count

    @property
    def num_attention_parameters(self):
        return self._native.attention_parameter_count

    @property
    def parameters(self):
        """name -> float32 numpy array, a writable view on the engine's parameters:
        assigning into it (p[...] = values) changes the model."""
        return self._native.parameters()

    @property
    def gradients(self):
        """name -> read-only float32 view on the gradients of the last loss_and_grad."""
        return self._native.gradients()

    def forward(self, x, return_attention=False):
        """Outputs (B, N, output width) for inputs x; with return_attention, the pair
        (outputs, [attention weights of each layer, (B, c*heads, N, N)]) with the
        heads of module m at m*heads .. (m+1)*heads - 1 and 0 where masked."""
        return self._native.forward(np.asarray(x), bool(return_attention))

    __call__ = forward

    def loss_and_grad(self, x, y):
        """(loss, gradients) of the task's loss on inputs x and targets y: values
        shaped like the outputs for regression ((B, N) when one value per position),
        class labels (B, N) for the text tasks (-1: not scored). The gradients are
        read-only views (name -> array) that the next call overwrites: copy them to
        keep them."""
        return self._native.loss_and_grad(np.asarray(x), np.asarray(y))

    def training_batch(self, size, index=0, seed=None):
        """(x, y): batch `index` of the task's training stream for `seed` (default
        the config's train.seed): the data `attnrank train` trains on."""
        if int(index) < 0 or (seed is not None and int(seed) < 0):
            raise ValueError("training_batch: index and seed must be >= 0, got %s and %s"
                             % (index, seed))
        return self._native.training_batch(int(size), int(index),
                                           None if seed is None else int(seed))

    def save(self, run_dir):
        """Writes run_dir/config.yaml and run_dir/model.safetensors, loadable by
        Model.load, `attnrank eval` and attnrank.torch.to_module."""
        self._native.save(os.fspath(run_dir))

    def __repr__(self):
        if "_native" not in self.__dict__:  # a constructor that raised
            return "Model(<not built>)"
        m, t = self.config["model"], self.config["task"]
        return ("Model(task=%s, dim=%d, heads=%d, rank=%d, layers=%d, width_multiplier=%d, "
                "%d parameters)" % (t["name"], m["dim"], m["heads"], m["rank"], m["layers"],
                                    m["width_multiplier"], self.num_parameters))
