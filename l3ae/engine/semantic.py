"""Phase 1: the semantic item–item correlation C ("EASE on the embeddings").

    C = argmin ||F − FC||² + λ_F ||C||²  s.t. diag(C) = 0
    Woodbury, never the n×n Q:  K = (FFᵀ + λ_F I_d)⁻¹ (d×d),  S = Fᵀ K F,  s = diag(S),
    δ = 1 − s,  C_ij = S_ij / δ_j (i ≠ j),  C_jj = 0,  i.e.  C = S·Dg(1/δ) − Dg(s/δ).

E = Fᵀ : (n, d) embeddings, one row per item. Cost O(n d² + d³), memory O(n d).

Computed through the Cholesky factor R (d×d, lower) of FFᵀ + λ_F I = EᵀE + λ_F I = R Rᵀ:
K = R⁻ᵀ R⁻¹, so S = Y Yᵀ with Y = E R⁻ᵀ (n, d) and s_i = ||Y_i||². EᵀE is one blocked dsyrk
and Y one blocked dtrsm, n·d² flops each (a GEMM-based EᵀE, an explicit inverse and E·K cost
five times that: 11 s against 3 s at n = 8000, d = 4096), in float64 over row blocks of E, so
the only O(n d) array is Y itself in the model's dtype. Everything small (R, K, s, δ) is float64
inside and returned in E's float dtype.
"""

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from l3ae.errors import ConfigError

_BLOCK_BYTES = 32 << 20  # float64 row blocks of E: small beside n·d, large for BLAS-3


@dataclass(frozen=True)
class SemanticFactors:
    """K (d, d), s (n,), delta (n,) of phase 1; ``C[I, :] = (E[I] K) Eᵀ Dg(1/δ)``, zero diagonal."""

    K: np.ndarray
    s: np.ndarray
    delta: np.ndarray


@dataclass(frozen=True)
class SemanticBasis:
    """Phase 1 as S = Y Yᵀ: Y (n, d) in the asked dtype (None unless asked for), s, δ (n,)
    float64, R (d, d) float64 lower with R Rᵀ = EᵀE + λ_F I, ete (d, d) float64 = EᵀE (None
    unless asked for)."""

    Y: object
    s: np.ndarray
    delta: np.ndarray
    R: np.ndarray
    ete: np.ndarray


def _rows(n, d):
    return max(256, _BLOCK_BYTES // (8 * max(d, 1)))


def semantic_basis(E, reg_f, dtype=None, want_y=True, want_ete=False) -> SemanticBasis:
    """Phase 1 from E (n, d) float and λ_F > 0, as S = Y Yᵀ (see the module docstring).

    dtype : of Y (default E's float dtype). want_y : False for s, δ and R only.
    want_ete : also return EᵀE (d, d) float64 (else ``ete`` is None).
    Peak memory beyond E: Y, one (d, d) float64 (two with EᵀE) and one (block, d) float64.
    """
    if not reg_f > 0:
        raise ConfigError(f"reg_f (λ_F) must be > 0, got {reg_f}")
    E = np.asarray(E)
    n, d = E.shape
    dtype = np.dtype(dtype or (E.dtype if E.dtype in (np.float32, np.float64) else np.float64))
    block = _rows(n, d)
    # EᵀE, lower triangle, by dsyrk on float64 row blocks (C-ordered Eb: Ebᵀ is Fortran-ordered)
    H = np.zeros((d, d), order="F")
    for r0 in range(0, n, block):
        Eb = np.asarray(E[r0:r0 + block], dtype=np.float64)
        H = blas.dsyrk(1.0, Eb.T, beta=1.0, c=H, trans=0, lower=1, overwrite_c=1)
    ete = _full(H) if want_ete else None
    H.flat[:: d + 1] += reg_f
    R, info = lapack.dpotrf(H, lower=1, clean=1, overwrite_a=1)
    if info != 0:  # EᵀE + λ_F I with λ_F > 0 is SPD unless E holds NaN/inf
        raise ConfigError(f"EᵀE + λ_F I is not positive definite (LAPACK info {info}): do the "
                          "embeddings hold NaN or inf?")
    Y = np.empty((n, d), dtype) if want_y else None
    s = np.empty(n)
    for r0 in range(0, n, block):
        Eb = np.array(E[r0:r0 + block], dtype=np.float64)  # owned: the solve overwrites it
        Yb = blas.dtrsm(1.0, R, Eb.T, side=0, lower=1, trans_a=0, overwrite_b=1).T  # Eb R⁻ᵀ
        s[r0:r0 + len(Yb)] = np.einsum("ij,ij->i", Yb, Yb)
        if want_y:
            Y[r0:r0 + len(Yb)] = Yb
    return SemanticBasis(Y, s, 1.0 - s, R, ete)


def _full(H, block=512):
    """The symmetric (d, d) C-ordered array whose lower triangle is H's, by column blocks
    (no d×d temporaries beside the result)."""
    d = H.shape[0]
    out = np.array(H, order="C")
    for j0 in range(0, d, block):
        j1 = min(d, j0 + block)
        diag = np.tril(out[j0:j1, j0:j1])
        out[j0:j1, j0:j1] = diag + np.tril(diag, -1).T
        out[j0:j1, j1:] = out[j1:, j0:j1].T
    return out


def semantic_factors(E, reg_f):
    """Phase 1 factors (K, s, δ) from E (n, d) float32/float64 and λ_F > 0."""
    dtype = E.dtype if E.dtype in (np.float32, np.float64) else np.float64
    b = semantic_basis(E, reg_f, want_y=False)
    K, info = lapack.dpotri(b.R, lower=1, overwrite_c=1)  # (R Rᵀ)⁻¹, lower triangle
    if info != 0:
        raise ConfigError(f"EᵀE + λ_F I cannot be inverted (LAPACK info {info})")
    K = _full(K)
    return SemanticFactors(K.astype(dtype), b.s.astype(dtype), b.delta.astype(dtype))


def semantic_rows(E, factors, rows):
    """Rows ``rows`` (slice or index array) of C as a dense (r, n) array of E's dtype."""
    idx = np.arange(E.shape[0])[rows]
    block = (E[idx] @ factors.K) @ (E / factors.delta[:, None]).T
    block[np.arange(len(idx)), idx] = 0
    return block


def semantic_correlation(E, reg_f):
    """Dense C (n, n) in E's dtype. O(n²) memory: for small catalogs and the text preset."""
    return semantic_rows(E, semantic_factors(E, reg_f), slice(None))
