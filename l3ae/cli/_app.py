"""The click group and the mapping of errors to exit codes.

Exit codes: 0 ok · 1 runtime failure (not SPD, out of memory, disk full) · 2 bad usage or bad
input data · 130 interrupted.
"""

import errno
import sys

import click

from l3ae import __version__
from l3ae.errors import L3AEError


class Failure(click.ClickException):
    """A library error shown as one line on stderr with its own exit code."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except L3AEError as exc:
            raise Failure(str(exc), exc.exit_code) from exc
        except MemoryError:
            raise Failure("out of memory: lower --topk, use --dtype float32, or a machine with "
                          "more RAM", 1) from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise Failure(f"disk full while writing {exc.filename or ''}".strip(), 1) from None
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.version_option(__version__, prog_name="l3ae")
def cli():
    """Closed-form, text-aware item-to-item recommenders on the CPU.

    \b
    Quick start on the packaged MovieLens-1M:
      l3ae evaluate --dataset ml-1m --model l3ae
    Your own data:
      l3ae embed --items items.csv --template "{title}. {category}" --out emb.h5
      l3ae build --interactions ratings.csv --embeddings emb.h5 --model l3ae --out model.h5
      l3ae recommend model.h5 --interactions ratings.csv -n 20 --out recs.csv
    """


def progress_printer(quiet=False, force=False):
    """A progress callback(phase, done, total, info="") redrawing one stderr line on a terminal
    (``force``: even when stderr is not one).

    ``info`` is free text shown after the percentage (the tiled solve passes GFLOP/s and ETA).
    """
    if quiet or not (force or sys.stderr.isatty()):
        return None

    def report(phase, done, total, info=""):
        line = f"{phase:<10} {done}/{total} ({100 * done // max(total, 1)}%)"
        click.echo(f"\r{line} {info}".ljust(79), err=True, nl=done >= total)

    return report
