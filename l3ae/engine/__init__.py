"""The math of l3ae, as pure functions named after the paper and DESIGN §2.

- :func:`gram`                    G = XᵀX from sparse X (numba).
- :func:`semantic_factors`        phase 1 via Woodbury: K, s, δ such that C = S·Dg(1/δ) − Dg(s/δ).
- :func:`semantic_correlation`    phase 1 as a dense C (small n, tests, text-only rows).
- :func:`solve_weights`           phase 2: the generalized closed form for B, one n×n buffer.
- :func:`prune_topk`              keep the k strongest entries per row, CSR.
- :func:`topn`                    score(u) = x_u B, seen items masked, top-N (numba).

P = (G + Dg(a))⁻¹ beyond one n×n buffer: :mod:`.memory` plans where it is computed,
:mod:`.tiled` runs the out-of-core schedule of :mod:`.blas`'s tile tasks, :mod:`.progress`
reports it.
"""

from l3ae.engine.gram import gram
from l3ae.engine.prune import prune_topk
from l3ae.engine.score import topn
from l3ae.engine.semantic import semantic_correlation, semantic_factors
from l3ae.engine.solve import solve_weights

__all__ = ["gram", "semantic_factors", "semantic_correlation", "solve_weights", "prune_topk",
           "topn"]
