"""``python -m modbias``: the command line (see :mod:`modbias.cli`)."""

from modbias.cli import main

main()
