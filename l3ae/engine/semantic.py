"""Phase 1: the semantic item–item correlation C ("EASE on the embeddings").

    C = argmin ||F − FC||² + λ_F ||C||²  s.t. diag(C) = 0
    Woodbury, never the n×n Q:  K = (FFᵀ + λ_F I_d)⁻¹ (d×d),  S = Fᵀ K F,  s = diag(S),
    δ = 1 − s,  C_ij = S_ij / δ_j (i ≠ j),  C_jj = 0,  i.e.  C = S·Dg(1/δ) − Dg(s/δ).

E = Fᵀ : (n, d) embeddings, one row per item. Cost O(n d² + d³), memory O(n d).
Everything small (K, s, δ) is computed in float64 and returned in E's float dtype.
"""

from dataclasses import dataclass

import numpy as np

from l3ae.errors import ConfigError


@dataclass(frozen=True)
class SemanticFactors:
    """K (d, d), s (n,), delta (n,) of phase 1; ``C[I, :] = (E[I] K) Eᵀ Dg(1/δ)``, zero diagonal."""

    K: np.ndarray
    s: np.ndarray
    delta: np.ndarray


def semantic_factors(E, reg_f):
    """Phase 1 factors from E (n, d) float32/float64 and λ_F > 0."""
    if not reg_f > 0:
        raise ConfigError(f"reg_f (λ_F) must be > 0, got {reg_f}")
    dtype = E.dtype if E.dtype in (np.float32, np.float64) else np.float64
    E64 = np.asarray(E, dtype=np.float64)
    d = E64.shape[1]
    FFt = E64.T @ E64
    FFt.flat[:: d + 1] += reg_f
    K = np.linalg.inv(FFt)  # d×d, SPD and tiny: inv is fine here
    K = (K + K.T) / 2
    s = np.einsum("ij,ij->i", E64 @ K, E64)
    return SemanticFactors(K.astype(dtype), s.astype(dtype), (1.0 - s).astype(dtype))


def semantic_rows(E, factors, rows):
    """Rows ``rows`` (slice or index array) of C as a dense (r, n) array of E's dtype."""
    idx = np.arange(E.shape[0])[rows]
    block = (E[idx] @ factors.K) @ (E / factors.delta[:, None]).T
    block[np.arange(len(idx)), idx] = 0
    return block


def semantic_correlation(E, reg_f):
    """Dense C (n, n) in E's dtype. O(n²) memory: for small catalogs and the text preset."""
    return semantic_rows(E, semantic_factors(E, reg_f), slice(None))
