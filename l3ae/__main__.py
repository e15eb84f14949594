"""``python -m l3ae``: the same command line as the ``l3ae`` script."""

from l3ae.cli import main

main()
