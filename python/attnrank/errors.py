"""The exceptions of attnrank. Both are ValueErrors: bad input, never a crash."""


class ConfigError(ValueError):
    """A config, override or argument the engine rejects (one line naming it)."""


class FormatError(ValueError):
    """A file that exists but is not what it claims to be (a corrupt safetensors
    file, a checkpoint that does not match its config, a foreign database)."""
