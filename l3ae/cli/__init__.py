"""The ``l3ae`` command: each subcommand parses, calls one library function, reports."""

from l3ae.cli import (add_items, build, embed, evaluate, info, recommend,  # noqa: F401
                      tune)  # (register)
from l3ae.cli._app import cli


def main():
    cli(prog_name="l3ae")
