"""The ``lucid-orm`` command line (Lucid's ace commands, Python spelling): ``make:*`` file
generators, ``migration:*``, ``db:*`` and ``schema:generate`` commands. ``main()`` is the
console script; ``python -m lucid_orm`` runs it too."""

from __future__ import annotations

from . import database, make, migration, schema
from .app import CliState, cli

__all__ = ["CliState", "cli", "main"]


def _register_commands() -> None:
    for module in (make, migration, database, schema):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main() -> None:
    """Run the command line (the ``lucid-orm`` console script)."""
    cli(prog_name="lucid-orm")
