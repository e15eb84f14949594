"""The ``l3ae`` command: each subcommand parses, calls one library function, reports."""

from l3ae.cli._app import cli
from l3ae.cli import build, evaluate, info, recommend  # noqa: F401  (register commands)

try:  # the encoder commands live with the encoder
    from l3ae.cli import embed  # noqa: F401
except ImportError:  # pragma: no cover - only while the embed module is absent
    pass


def main():
    cli(prog_name="l3ae")
