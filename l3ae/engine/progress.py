"""Progress reports: one callback signature for every long phase.

    progress(phase: str, done: int, total: int, info: str = "")

``phase`` names the work ("gram", "cholesky", "inverse", "weights", "tune", "recommend", ...),
``done`` of ``total`` units are finished, ``info`` is optional free text (rates, ETA). Callers
pass three or four arguments, so every callback takes ``info`` with a default
(``l3ae.cli._app.progress_printer`` is one). :class:`Meter` turns the tile columns of the
out-of-core solve into such reports, with GFLOP/s and an ETA from their flop counts.
"""

import math
import time


def ignore(phase, done, total, info=""):
    """The callback that reports nothing (progress=None)."""


class Meter:
    """Tiles done, GFLOP/s and ETA of a phase, from the flops of each tile column.

    report : a progress callback. flops, tiles : per tile column in processing order (float
    flops, int tiles). done : columns already finished (a resume), not counted in the rate.
    """

    def __init__(self, report, phase, flops, tiles, done=0):
        self.report, self.phase, self.flops, self.tiles = report, phase, flops, tiles
        self.total_tiles = int(sum(tiles))
        self.t0, self.start = time.perf_counter(), done
        self.done = done

    def tick(self, cols_done):
        """Report ``cols_done`` columns finished."""
        self.done = cols_done
        dt = time.perf_counter() - self.t0
        work = float(sum(self.flops[self.start:cols_done]))
        rate = work / dt if dt > 0 else 0.0
        left = float(sum(self.flops[cols_done:]))
        eta = left / rate if rate > 0 else float("nan")
        info = (f"{rate / 1e9:.0f} GFLOP/s, ETA {hms(eta)}" if cols_done > self.start
                else "")
        self.report(self.phase, int(sum(self.tiles[:cols_done])), self.total_tiles, info)

    def rate(self):
        """Flops per second over the columns done in this run."""
        dt = time.perf_counter() - self.t0
        return float(sum(self.flops[self.start:self.done])) / dt if dt > 0 else 0.0


def hms(s):
    """Seconds as "m:ss" or "h:mm:ss"; "?" when not finite."""
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"
