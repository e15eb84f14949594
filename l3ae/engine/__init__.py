"""The math of l3ae, as pure functions named after the paper and DESIGN §2.

- :func:`l3ae.engine.gram.gram`   G = XᵀX from sparse X (numba; not a name of this package,
                                  whose ``gram`` is that module).
- :func:`semantic_factors`        phase 1 via Woodbury: K, s, δ such that C = S·Dg(1/δ) − Dg(s/δ).
- :func:`semantic_correlation`    phase 1 as a dense C (small n, tests, text-only rows).
- :func:`solve_weights`           phase 2: the generalized closed form for B, one n×n buffer.
- :func:`prune_topk`              keep the k strongest entries per row, CSR.
- :func:`topn`                    score(u) = x_u B, seen items masked, top-N (numba).

P = (G + Dg(a))⁻¹ beyond one n×n buffer: :mod:`.memory` plans where it is computed,
:mod:`.tiled` runs the out-of-core schedule of :mod:`.blas`'s tile tasks, :mod:`.progress`
reports it.

These names load their modules on first use: the command line reads :mod:`.models` (the
presets and knobs) for ``--help`` without compiling numba's kernels.
"""

import importlib

_HOME = {"prune_topk": "prune", "topn": "score",
         "semantic_correlation": "semantic", "semantic_factors": "semantic",
         "solve_weights": "solve"}
__all__ = list(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
