"""The ``l3ae`` command: each subcommand parses, calls one library function, reports."""

from l3ae.cli import build, embed, evaluate, info, recommend, tune  # noqa: F401 (register)
from l3ae.cli._app import cli


def main():
    cli(prog_name="l3ae")
