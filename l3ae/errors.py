"""Exceptions the CLI maps to exit codes: bad input -> 2, runtime failure -> 1."""

import numpy as np


def item_name(j, item_ids=None):
    """How messages name item index j: "item 'i42' (#7)", or "item #7" without ids."""
    return f"item {item_ids[j]!r} (#{j})" if item_ids is not None else f"item #{j}"


class L3AEError(Exception):
    """Base class of l3ae's own errors."""

    exit_code = 1


class DataFormatError(L3AEError, ValueError):
    """Bad input data. The message names the file, the line (when known) and the value.

    >>> str(DataFormatError("expected 2 columns, got 1", path="r.csv", line=1042))
    'r.csv:1042: expected 2 columns, got 1'
    """

    exit_code = 2

    def __init__(self, message, path=None, line=None):
        self.path, self.line, self.reason = path, line, message
        where = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(where + message)


class ConfigError(L3AEError, ValueError):
    """Hyperparameters or options that cannot work together."""

    exit_code = 2


class NotPositiveDefiniteError(L3AEError, np.linalg.LinAlgError):
    """G + Dg(Λ + λ_E·w) is not positive definite: the ridge is too small (or negative)."""

    exit_code = 1

    @classmethod
    def at(cls, j, item_ids=None):
        """The error for a Cholesky that failed at item index j (leading minor j + 1)."""
        return cls(f"G + Dg(a) is not positive definite at {item_name(j, item_ids)} "
                   f"(leading minor {j + 1}); "
                   f"raise the ridge (--reg-x, or --reg-e with a semantic pull)")


class ClusterError(L3AEError):
    """The Dask scheduler cannot be reached, or was lost during a build (names its address)."""

    exit_code = 1
