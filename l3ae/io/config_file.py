"""Config files: one JSON object of Config fields, as `l3ae tune` writes them."""

import json

from l3ae.errors import DataFormatError


def read_config(path, known):
    """The values of a config file as a dict, its keys checked against ``known`` (the names of
    Config's fields: the caller's, so that io/ knows nothing of the engine)."""
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not a JSON config ({exc})", path=path) from None
    if not isinstance(values, dict):
        raise DataFormatError("a config file holds one JSON object", path=path)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise DataFormatError(f"unknown keys {unknown}; known: {sorted(known)}", path=path)
    return values
