"""How a config given in Python reaches the engine."""
import json
import os
from collections.abc import Mapping


def _plain(value):
    # numpy scalars and arrays (e.g. a seed from np.arange) as plain numbers.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError("config: %r (%s) is not a number, string, bool or list"
                    % (value, type(value).__name__))


def nested(config):
    """{section: {key: value}} from a dict of sections and/or dotted keys."""
    out = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError("config: keys must be str, got %r" % (key,))
        if "." in key:
            section, name = key.split(".", 1)
            out.setdefault(section, {})
            if not isinstance(out[section], dict):
                raise ValueError("config: %s given both as a section and as %s" % (section, key))
            out[section][name] = value
        elif isinstance(value, Mapping):
            out.setdefault(key, {})
            if not isinstance(out[key], dict):
                raise ValueError("config: %s given twice" % key)
            out[key].update(value)
        else:
            out[key] = value  # the engine names the problem ("expected a map of keys")
    return out


def overrides_list(overrides):
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    items = list(overrides)
    for item in items:
        if not isinstance(item, str):
            raise TypeError("overrides: expected 'section.key=value' strings, got %r" % (item,))
    return items


def source(config, overrides=()):
    """(source, is_path, overrides) for the native module: `config` is None
    (the defaults), a path to a YAML file, or a dict ({"model": {"dim": 8}} or
    {"model.dim": 8}); `overrides` are 'section.key=value' strings applied after it."""
    extra = overrides_list(overrides)
    if config is None:
        return "", True, extra
    if isinstance(config, (str, os.PathLike)):
        return os.fspath(config), True, extra
    if isinstance(config, Mapping):
        try:
            # JSON is YAML: the engine parses it with its own rules and messages.
            text = json.dumps(nested(config), allow_nan=False, default=_plain)
        except ValueError as error:
            raise ValueError("config: %s (NaN and infinity are not config values)"
                             % error) from None
        return text, False, extra
    raise TypeError("config: expected a dict, a path to a YAML file or None, got %s"
                    % type(config).__name__)
