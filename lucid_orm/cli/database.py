"""``db:seed``, ``db:wipe`` and ``db:truncate``."""

from __future__ import annotations

from collections.abc import Sequence

import click

from ..seeders import SeedsRunner
from ..seeders.runner import select_seeders
from .app import (
    CliState,
    connection_option,
    describe_error,
    force_option,
    format_ms,
    pass_state,
    timer,
    traceback_option,
)
from .tables import drop_all_tables, truncate_all_tables


def _seeder_names(state: CliState, runner: SeedsRunner, files: Sequence[str]) -> list[str]:
    """The seeders to run: every one, or those ``files`` names (as listed, with or without
    ``.py``, or as paths); unknown names are refused before anything runs."""
    available = runner.get_list()
    if not files:
        return available
    return select_seeders(runner.path, files, available, shown=state.relative(runner.path))


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
            if result.error is not None:
                state.print_traceback(result.error)
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
@traceback_option
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
