"""``python -m kmm``: see :mod:`kmm.cli`."""

from kmm.cli import main_entry

main_entry()
