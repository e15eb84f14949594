"""The tile file of the out-of-core solve: a symmetric (n, n) matrix as T×T tiles in HDF5.

Layout (root attrs like every l3ae file: ``encoding-type = "l3ae-tiles"``, ``encoding-version``,
``l3ae-version``, ``n``, ``tile``, ``dtype``, ``fingerprint`` (sha256 of the inputs that
determine the matrix), ``checkpoint``):

- ``tiles`` (N, N), N = nt·T ≥ n, chunked exactly by tile (T, T), no filters. Only the lower
  tiles (i ≥ j) are ever written, so only they take disk space: about n²/2 · itemsize bytes.
  The padding rows/columns n..N hold an identity block (the engine pads A with it, which leaves
  the first n rows and columns of A⁻¹ unchanged).
- ``crc`` (nt, nt) uint32: zlib.crc32 of each written tile. ``--resume`` verifies every tile it
  will read, so a damaged file is refused rather than silently used.
- ``checkpoint`` attr, int64 [cholesky, inverse, torn]: tile columns of the factor L finished
  (left to right), tile columns of P = A⁻¹ finished (right to left), and the column whose L tiles
  are being overwritten by P (−1: none; its tiles may be a mix of both, the engine recomputes
  that L column from X and the L columns left of it). It is rewritten in place (fixed size) and
  only after the tiles it vouches for are flushed, so a process killed at any moment leaves a
  file that resumes from the last finished column.

Tiles move with HDF5's direct chunk I/O (no chunk cache, no type conversion): a tile of a
C-ordered in-memory strip is one contiguous T×T block, read or written with one call.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from l3ae import __version__
from l3ae.errors import DataFormatError

FORMAT, VERSION = "l3ae-tiles", 1
_REMEDY = "delete it, or run without --resume to start over"


def fingerprint(X, a, dtype, **extra):
    """sha256 (hex) of what determines A = G + Dg(a): X's structure, a, the dtype, extras.

    X : (m, n) CSR (structure only: binary interactions); a : (n,) float64; extra : scalars or
    arrays (e.g. the collective baseline's α and E).
    """
    h = hashlib.sha256(f"{FORMAT}/{VERSION}/{np.dtype(dtype).name}/{X.shape}".encode())
    X = sp.csr_matrix(X)
    X.sort_indices()
    for arr in (X.indptr, X.indices, np.asarray(a, np.float64)):
        h.update(np.ascontiguousarray(arr, dtype=np.int64 if arr.dtype.kind in "iu" else None)
                 .tobytes())
    for k in sorted(extra):
        v = extra[k]
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes() if isinstance(v, np.ndarray)
                 else repr(v).encode())
    return h.hexdigest()


class TileFile:
    """An open tile file. Create with :meth:`create`, reopen for --resume with :meth:`open`."""

    def __init__(self, path, f):
        self.path, self._f = Path(path), f
        self._t = f["tiles"]
        a = f.attrs
        self.n, self.tile, self.dtype = int(a["n"]), int(a["tile"]), np.dtype(a["dtype"])
        self.nt = -(-self.n // self.tile)
        self.N = self.nt * self.tile
        self.crc = f["crc"][...]
        self.checkpoint = [int(v) for v in a["checkpoint"]]

    # -- create / open ------------------------------------------------------------------------
    @classmethod
    def create(cls, path, n, tile, dtype, fp):
        """A fresh file at ``path`` (an existing one is replaced)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        nt = -(-n // tile)
        N = nt * tile
        f = h5py.File(path, "w")
        try:
            f.attrs.update({"encoding-type": FORMAT, "encoding-version": VERSION,
                            "l3ae-version": __version__, "n": n, "tile": tile,
                            "dtype": np.dtype(dtype).name, "fingerprint": fp})
            f.attrs.create("checkpoint", np.array([0, 0, -1], np.int64))
            f.create_dataset("tiles", shape=(N, N), dtype=dtype, chunks=(tile, tile),
                             fillvalue=0)
            f.create_dataset("crc", shape=(nt, nt), dtype=np.uint32, fillvalue=0)
            f.flush()
            return cls(path, f)
        except BaseException:
            f.close()
            raise

    @classmethod
    def open(cls, path, n, dtype, fp):
        """Reopen ``path`` to resume: refuse (DataFormatError) anything but a sound tile file
        made from the same inputs. Verifies the crc32 of every tile the resume will read."""
        path = Path(path)
        try:
            f = h5py.File(path, "r+")
        except OSError as exc:
            raise DataFormatError(f"not a readable tile file ({exc}); {_REMEDY}",
                                  path=path) from None
        try:
            a = f.attrs
            kind = a.get("encoding-type")
            if kind != FORMAT:
                raise DataFormatError(f"not an l3ae tile file (encoding-type {kind!r}); "
                                      f"{_REMEDY}", path=path)
            ver = int(a.get("encoding-version", -1))
            if ver > VERSION:
                raise DataFormatError(f"tile file version {ver} is newer than this l3ae reads "
                                      f"({VERSION}); {_REMEDY}", path=path)
            if a.get("fingerprint") != fp:
                raise DataFormatError(
                    "the tile file was made from other inputs (interactions, ridge, dtype or "
                    f"fusion settings differ); {_REMEDY}", path=path)
            try:
                tf = cls(path, f)
            except (KeyError, ValueError, TypeError) as exc:
                raise DataFormatError(f"damaged tile file ({exc}); {_REMEDY}",
                                      path=path) from None
            if tf.n != n or tf.dtype != np.dtype(dtype):
                raise DataFormatError(f"tile file holds n={tf.n} {tf.dtype}, expected n={n} "
                                      f"{np.dtype(dtype)}; {_REMEDY}", path=path)
            tf._validate()
            return tf
        except BaseException:
            f.close()
            raise

    def _validate(self):
        T, nt, N = self.tile, self.nt, self.N
        bad = []
        if (self._t.shape != (N, N) or self._t.chunks != (T, T) or self._t.dtype != self.dtype
                or self._t.compression):
            bad.append("tiles dataset shape/chunks/dtype")
        if self.crc.shape != (nt, nt):
            bad.append("crc dataset")
        chol, inv, torn = self.checkpoint
        if not (0 <= chol <= nt and 0 <= inv <= nt and (inv == 0 or chol == nt)
                and -1 <= torn < nt):
            bad.append(f"checkpoint {self.checkpoint}")
        if bad:
            raise DataFormatError(f"damaged tile file ({', '.join(bad)}); {_REMEDY}",
                                  path=self.path)
        buf = np.empty((T, T), self.dtype)
        for i, j in self._finished_tiles():
            self._check_crc(self._read(self._t, i, j, buf), self.crc[i, j], (i, j))

    def _finished_tiles(self):
        chol, inv, _ = self.checkpoint
        nt = self.nt
        for j in range(nt):
            done_l = j < chol and j < nt - inv and j != self.torn()  # final L, not inverted
            if done_l or j >= nt - inv:
                yield from ((i, j) for i in range(j, nt))

    def torn(self):
        """The column next to be inverted if its L tiles may be partly overwritten, else −1."""
        chol, inv, torn = self.checkpoint
        return torn if chol == self.nt and torn == self.nt - inv - 1 else -1

    def _check_crc(self, tile, want, where):
        if zlib.crc32(tile) != int(want):
            raise DataFormatError(f"damaged tile file: tile {where} fails its checksum; "
                                  f"{_REMEDY}", path=self.path)

    # -- tile I/O -----------------------------------------------------------------------------
    def _read(self, dset, i, j, out):
        T = self.tile
        try:
            dset.id.read_direct_chunk((i * T, j * T), out=out.reshape(-1).view(np.uint8))
        except TypeError:  # h5py < 3.9: no out=
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(
                dset.id.read_direct_chunk((i * T, j * T))[1], np.uint8)
        except (KeyError, OSError, ValueError) as exc:
            raise DataFormatError(f"damaged tile file: tile ({i}, {j}) unreadable ({exc}); "
                                  f"{_REMEDY}", path=self.path) from None
        return out

    def read_tile(self, i, j, out):
        """Tile (i, j), i ≥ j, into ``out`` (T, T) C-contiguous."""
        return self._read(self._t, i, j, out)

    def read_column(self, j, i0, out):
        """Tiles (i, j) for i0 ≤ i < nt, stacked into ``out`` ((nt − i0)·T, T) C-contiguous."""
        T = self.tile
        for r in range(self.nt - i0):
            self._read(self._t, i0 + r, j, out[r * T:(r + 1) * T])
        return out

    def write_column(self, j, i0, strip):
        """Tiles (i, j) from row i0 down, from ``strip`` (r·T, T) (r = nt − i0 for a whole
        column); their crc32s are kept for the next :meth:`commit`."""
        T = self.tile
        for r in range(len(strip) // T):
            tile = np.ascontiguousarray(strip[r * T:(r + 1) * T])
            self._t.id.write_direct_chunk(((i0 + r) * T, j * T), tile)
            self.crc[i0 + r, j] = zlib.crc32(tile)

    def commit(self, cholesky=None, inverse=None, torn=None):
        """Flush the tiles written so far with their crc32s, then record the checkpoint and
        flush again: the checkpoint never vouches for tiles that are not in the file."""
        self._f["crc"][...] = self.crc
        self._f.flush()
        ck = self.checkpoint
        for k, v in enumerate((cholesky, inverse, torn)):
            if v is not None:
                ck[k] = int(v)
        self._f.attrs.modify("checkpoint", np.array(ck, np.int64))
        self._f.flush()

    def disk_bytes(self):
        return os.path.getsize(self.path) if self.path.exists() else 0

    def close(self):
        if self._f.id.valid:
            self._f.close()

    def remove(self):
        self.close()
        self.path.unlink(missing_ok=True)
