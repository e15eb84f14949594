"""BLAS and LAPACK on C-ordered arrays: the tile tasks of the out-of-core solve and the
in-memory P = A⁻¹.

A C-ordered (r, c) array is a Fortran-ordered (c, r) one: each function hands BLAS/LAPACK the
transpose ``x.T``, so nothing is copied and the result lands in the caller's buffer. What is
"lower" here is "upper" to LAPACK, and op(a) op(b) is computed as (op(b)ᵀ op(a)ᵀ)ᵀ.

Tiles are (T, T), strips are C-ordered stacks of tiles ((k·T, T), every tile one contiguous
block), float32 or float64: the dtype of the first array is that of the call. Each tile task is a
pure function of its input tiles (:mod:`l3ae.engine.tiled` builds the Cholesky and the inverse
from them); ``overwrite=True`` writes the result over the first array instead of a copy.

    gemm        β c + α op(a) op(b)              syrk        β c + α a aᵀ (lower triangle)
    potrf       L with a = L Lᵀ                   potri       (L Lᵀ)⁻¹ of one tile
    trsm_lt     b L⁻ᵀ                             trsm_right  α b L⁻¹
    symm_strip  one strip's share of P · rhs      diag_inverse  L⁻ᵀ (I + z) L⁻¹
    cholesky_inverse  A⁻¹ of a whole (n, n) buffer in place: potrf + potri, the in-memory path
"""

import numpy as np
from scipy.linalg import get_blas_funcs, get_lapack_funcs

from l3ae.errors import NotPositiveDefiniteError, item_name


def _f(name, dtype):
    """The BLAS or LAPACK routine ``name`` for ``dtype`` (s… for float32, d… for float64)."""
    if name in ("gemm", "trsm", "syrk"):
        return get_blas_funcs(name, dtype=dtype)
    return get_lapack_funcs(name, dtype=dtype)


def _land(out, x):
    """x with the routine's result ``out`` in it. The wrappers write x.T in place when it is
    Fortran-contiguous (x C-contiguous) and return a copy otherwise: copy that back."""
    if not np.shares_memory(out, x):
        x.T[...] = out
    return x


def _check_potrf(info, row0, item_ids):
    """potrf's status as an exception: info > 0 is the 1-based leading minor that failed."""
    if info > 0:
        raise NotPositiveDefiniteError.at(row0 + info - 1, item_ids)
    if info < 0:
        raise ValueError(f"potrf: illegal argument {-info}")


def gemm(c, a, b, alpha=-1.0, beta=1.0, ta=False, tb=False, overwrite=False):
    """β c + α op(a) op(b) (op = transpose when ta / tb), c (r, s), in c's dtype.

    The default α = −1, β = 1 is the Cholesky's update c − a bᵀ (with tb).
    """
    c = c if overwrite else c.copy()
    if c.size == 0:
        return c
    if a.shape[1 - int(ta)] == 0:  # empty inner dimension: BLAS refuses k = 0
        c *= beta
        return c
    out = _f("gemm", c.dtype)(alpha, b.T, a.T, beta, c.T, trans_a=int(tb), trans_b=int(ta),
                              overwrite_c=1)
    return _land(out, c)


def syrk(c, a, alpha=-1.0, beta=1.0, overwrite=False):
    """β c + α a aᵀ on the lower triangle of tile c (T, T), a (T, k); the strict upper
    triangle of c is left as is."""
    c = c if overwrite else c.copy()
    if c.size:
        out = _f("syrk", c.dtype)(alpha, a.T, beta=beta, c=c.T, trans=1, lower=0, overwrite_c=1)
        _land(out, c)
    return c


def potrf(a, overwrite=False, row0=0, item_ids=None):
    """L (lower, strict upper zeroed) with a = L Lᵀ, from the lower triangle of tile a (T, T).

    row0 : the tile's first item (names the failing item in NotPositiveDefiniteError).
    """
    a = a if overwrite else a.copy()
    out, info = _f("potrf", a.dtype)(a.T, lower=0, clean=1, overwrite_a=1)
    _check_potrf(info, row0, item_ids)
    return _land(out, a)


def trsm_lt(l, b, overwrite=False):
    """b L⁻ᵀ, b (r, T), for lower-triangular tile l: the off-diagonal step of the Cholesky
    (L_ij = A_ij L_jj⁻ᵀ)."""
    b = b if overwrite else b.copy()
    if b.size:
        out = _f("trsm", b.dtype)(1.0, l.T, b.T, side=0, lower=0, trans_a=1, overwrite_b=1)
        _land(out, b)
    return b


def trsm_right(l, b, alpha=1.0, overwrite=False):
    """α b L⁻¹, b (r, T), for lower-triangular tile l (the inverse's off-diagonal step)."""
    b = b if overwrite else b.copy()
    if b.size:
        out = _f("trsm", b.dtype)(alpha, l.T, b.T, side=0, lower=0, trans_a=0, overwrite_b=1)
        _land(out, b)
    return b


def symm_strip(out, s, rhs, k, i0, overwrite=False):
    """out + (the part of P · rhs that the strip s = P[k:, k] contributes), P symmetric.

    s : ((nt − k)·T, T), tiles (i, k) for i ≥ k with P_kk full. rhs, out : ((nt − i0)·T, r),
    the rows of tile rows i0.. (i0 ≤ k). Adds P[i, k] rhs_k to out_i (i ≥ k) and
    Σ_{i>k} P[i, k]ᵀ rhs_i to out_k: summed over k ≥ i0 this is P[i0:, i0:] · rhs.
    """
    out = out if overwrite else out.copy()
    T = s.shape[1]
    o = (k - i0) * T
    gemm(out[o:], s, rhs[o:o + T], 1.0, 1.0, overwrite=True)
    gemm(out[o:o + T], s[T:], rhs[o + T:], 1.0, 1.0, ta=True, overwrite=True)
    return out


def potri(l):
    """(L Lᵀ)⁻¹ (T, T), full and symmetric, from lower-triangular tile l: LAPACK potri."""
    c, info = _f("potri", l.dtype)(l.T, lower=0)  # l.T: Fortran order, its upper = L's lower
    if info != 0:
        raise NotPositiveDefiniteError(f"potri failed (info {info})")
    c = np.triu(c)  # the upper triangle of (L Lᵀ)⁻¹, Fortran order
    return np.ascontiguousarray(c + np.triu(c, 1).T)


def diag_inverse(l, z):
    """P_jj = L_jj⁻ᵀ (I + z) L_jj⁻¹ (T, T), symmetric, z = L[>j, j]ᵀ P[>j, >j] L[>j, j]."""
    q = z + np.eye(len(z), dtype=z.dtype)
    q = trsm_right(l, q, overwrite=True)  # (I + z) L⁻¹
    p = trsm_right(l, np.ascontiguousarray(q.T), overwrite=True)  # L⁻ᵀ (I + z) L⁻¹
    return (p + p.T) * np.asarray(0.5, p.dtype)


def cholesky_inverse(A, item_ids=None):
    """Overwrite the lower triangle of C-ordered SPD ``A`` (n, n) with that of A⁻¹, in place.

    A = L Lᵀ (potrf), then A⁻¹ = L⁻ᵀ L⁻¹ (potri), both over A's own buffer: the in-memory solve
    holds one n×n array. The strict upper triangle is ignored on input and undefined on output.
    Raises NotPositiveDefiniteError naming the first failing item.
    """
    n = A.shape[0]
    if n == 0:
        return A
    At = A.T
    potrf_, potri_ = get_lapack_funcs(("potrf", "potri"), (At,))
    c, info = potrf_(At, lower=0, clean=0, overwrite_a=1)
    _check_potrf(info, 0, item_ids)
    _land(c, A)
    c, info = potri_(At, lower=0, overwrite_c=1)
    if info != 0:
        raise NotPositiveDefiniteError(f"potri failed at {item_name(max(info, 1) - 1, item_ids)}")
    return _land(c, A)
