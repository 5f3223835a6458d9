"""``python -m tfdefense``: the same as the ``tfdefense`` command."""

from tfdefense.cli import run

run()
