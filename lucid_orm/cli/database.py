"""``db:seed``, ``db:wipe`` and ``db:truncate``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from ..errors import LucidError
from ..seeders import SeedsRunner
from .app import (
    CliState,
    connection_option,
    describe_error,
    force_option,
    format_ms,
    pass_state,
    timer,
)
from .tables import drop_all_tables, truncate_all_tables


def _seeder_names(state: CliState, runner: SeedsRunner, files: Sequence[str]) -> list[str]:
    """The seeders to run: every one, or those ``files`` names (as listed, with or without
    ``.py``, or as paths); unknown names are refused before anything runs."""
    available = runner.get_list()
    if not files:
        return available
    folder = runner.path.resolve()
    names: list[str] = []
    unknown: list[str] = []
    for given in files:
        name = Path(given).as_posix().removesuffix(".py").removeprefix("./")
        if name not in available:
            candidate = Path(given).resolve()
            if candidate.is_relative_to(folder):
                name = candidate.relative_to(folder).with_suffix("").as_posix()
        (names if name in available else unknown).append(name if name in available else given)
    if unknown:
        raise LucidError(
            f"Unknown seeder file(s) {', '.join(repr(u) for u in unknown)} in "
            f'"{state.relative(runner.path)}" (available: {", ".join(available) or "none"})',
            code="E_SEEDERS_NOT_FOUND",
        )
    return names


async def run_seeders(state: CliState, connection: str | None, files: Sequence[str] = ()) -> bool:
    """Run the seeders one by one, printing a line for each; ``False`` when one failed (the
    ones after it do not run)."""
    config = state.config
    runner = SeedsRunner(config.seeders_path, connection=connection, environment=config.environment)
    names = _seeder_names(state, runner, files)
    if not names:
        state.info(f'No seeders in "{state.relative(runner.path)}"')
        return True
    for name in names:
        with timer() as elapsed:
            (result,) = await runner.run([name])
        if result.status == "completed":
            state.success(f"completed {name}{format_ms(elapsed())}")
        elif result.status == "ignored":
            state.info(f"- ignored {name}: {result.reason}")
        else:
            state.failure(f"failed {name}{format_ms(elapsed())}")
            detail = describe_error(result.error) if result.error else result.reason
            state.error(f'Seeder "{name}" failed: {detail}')
            return False
    return True


@click.command("db:seed")
@click.option(
    "--files",
    "-f",
    multiple=True,
    metavar="FILE",
    help="Run only this seeder (a name such as user_seeder, or a path); repeatable.",
)
@connection_option
@pass_state
def db_seed(state: CliState, files: tuple[str, ...], connection: str | None) -> None:
    """Run the seeders, in name order.

    Every seeder of SEEDERS_PATH (database/seeders), or only those given with --files; one
    that fails stops the run (exit code 1).
    """
    if not state.run(lambda: run_seeders(state, connection, files)):
        raise click.exceptions.Exit(1)


@click.command("db:wipe")
@connection_option
@force_option
@pass_state
def db_wipe(state: CliState, connection: str | None, force: bool) -> None:
    """Drop every table of the database.

    The migrations table too. Refused in production without --force.
    """
    state.require_consent(force, "wipe the database")
    dropped = state.run(lambda: drop_all_tables(connection))
    if dropped:
        state.success(f"Dropped {len(dropped)} table(s): {', '.join(dropped)}")
    else:
        state.info("No tables to drop")


@click.command("db:truncate")
@connection_option
@force_option
@pass_state
def db_truncate(state: CliState, connection: str | None, force: bool) -> None:
    """Empty every table but the migrations table.

    Identity sequences restart. Refused in production without --force.
    """
    state.require_consent(force, "truncate the database")
    table = state.config.migrations_table
    keep = {table, f"{table}_lock"}  # the Migrator's tables
    truncated = state.run(lambda: truncate_all_tables(connection, keep=keep))
    if truncated:
        state.success(f"Truncated {len(truncated)} table(s): {', '.join(truncated)}")
    else:
        state.info("No tables to truncate")


COMMANDS = [db_seed, db_wipe, db_truncate]
