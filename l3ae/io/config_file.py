"""Config files: one JSON object of Config fields, as `l3ae tune` writes them."""

import json
from dataclasses import fields

from l3ae.engine.models import Config
from l3ae.errors import DataFormatError

# what config files of l3ae 0.1 recorded for knobs that did not enter the model: reset where
# they do not enter, instead of refused (any other value of a knob that does not enter is)
LEGACY_DEFAULTS = {"reg_f": 1.0, "pull_power": 0.5}


def read_config(path):
    """The values of a config file as a dict (keys checked against Config's fields)."""
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not a JSON config ({exc})", path=path) from None
    if not isinstance(values, dict):
        raise DataFormatError("a config file holds one JSON object", path=path)
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataFormatError(f"unknown keys {unknown}; known: {sorted(known)}", path=path)
    return values
