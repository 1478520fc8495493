"""``migration:run``, ``rollback``, ``reset``, ``refresh``, ``fresh``, ``status`` and
``unlock``: the ``Migrator`` with a progress line per file, and ``after_migrate``, the hook
every command that changed the schema calls last."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from .app import (
    CliState,
    connection_option,
    force_option,
    format_ms,
    pass_state,
    traceback_option,
)
from .database import run_seeders
from .schema import no_schema_generate_option, regenerate_after_migrate

if TYPE_CHECKING:
    from rich.status import Status
    from rich.table import Table

    from ..migrations import MigrationEvent, MigrationResult, MigrationStatus, Migrator

# The migrator (and Alembic under it) is imported when a command runs, not for `make:*`,
# `--help` or a refused command: each `lucid-orm` call starts faster.


async def after_migrate(state: CliState, connection: str | None, result: MigrationResult) -> None:
    """Called by every migration command that changed the schema (never in a dry run), after
    the migrations (and before ``--seed``), while the connections are still open.

    Regenerates the schema classes (``SCHEMA_OUTPUT``) from the migrated connection, unless
    ``SCHEMA_GENERATE = False`` or ``--no-schema-generate`` (declared by ``schema_changing``).
    """
    await regenerate_after_migrate(state, connection)


def migration_command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """Declare a ``migration:*`` command with the options they all take (``--connection``,
    ``--traceback``)."""

    def decorate(func: Callable[..., Any]) -> click.Command:
        return click.command(name)(traceback_option(connection_option(func)))

    return decorate


def schema_changing(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that changes the schema (all but ``migration:status``):
    ``--force`` for production and ``--no-schema-generate``."""
    return no_schema_generate_option(force_option(func))


def dry_run_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--dry-run``: print the SQL instead of running it."""
    return click.option(
        "--dry-run", is_flag=True, help="Print the SQL each migration would run; change nothing."
    )(func)


# Per direction: the spinner's verb, the infinitive and the past tense.
_VERBS = {
    "up": ("migrating", "migrate", "migrated"),
    "down": ("reverting", "revert", "reverted"),
}


class _Progress:
    """``on_event`` of the ``Migrator``: a spinner while a file runs (on a terminal), then a
    line with ✓ or ✗, the file name and the duration; the SQL below it in a dry run."""

    def __init__(self, state: CliState) -> None:
        self.state = state
        self.status: Status | None = None

    def __call__(self, event: MigrationEvent) -> None:
        doing, do, done = _VERBS[event.direction]
        if event.phase == "start":
            if self.state.out.is_terminal:
                self.status = self.state.out.status(f"{doing} {escape(event.name)}…")
                self.status.start()
            return
        if self.status is not None:
            self.status.stop()
            self.status = None
        took = format_ms(event.duration_ms)
        if event.phase == "error":
            self.state.failure(f"failed to {do} {event.name}{took}")
            return
        if event.dry_run:
            self.state.success(f"{do} {event.name} (dry run)")
            for statement in event.sql:
                lines = [line.rstrip() for line in statement.strip().splitlines()]
                text = "\n".join(f"    {line}" for line in lines)
                self.state.out.print(f"[dim]{escape(text)};[/dim]")
            return
        self.state.success(f"{done} {event.name}{took}")


def _migrator(state: CliState, connection: str | None, dry_run: bool = False) -> Migrator:
    from ..migrations import Migrator

    config = state.config
    return Migrator(
        config.migrations_path,
        connection=connection,
        table=config.migrations_table,
        dry_run=dry_run,
        on_event=_Progress(state),
    )


def _summary(state: CliState, result: MigrationResult, nothing: str) -> None:
    if not result.files:
        state.info(nothing)
        return
    parts = []
    if result.reverted:
        parts.append(f"reverted {len(result.reverted)} migration(s)")
    if result.migrated:
        parts.append(f"migrated {len(result.migrated)} migration(s) in batch {result.batch}")
    text = ", ".join(parts)
    if result.dry_run:
        state.info(f"Dry run: would have {text}; nothing was changed")
    else:
        state.info(f"{text[:1].upper()}{text[1:]}{format_ms(result.duration_ms)}")


def _migrate(
    state: CliState,
    connection: str | None,
    action: Callable[[Migrator], Awaitable[MigrationResult]],
    *,
    dry_run: bool = False,
    seed: bool = False,
    report: Callable[[MigrationResult], None],
) -> None:
    """Run ``action`` on a ``Migrator``, report it, seed if asked, call ``after_migrate``."""

    async def body() -> bool:
        result = await action(_migrator(state, connection, dry_run))
        report(result)
        if dry_run:
            return True
        if result.files or result.dropped_tables:
            await after_migrate(state, connection, result)
        return await run_seeders(state, connection) if seed else True

    if not state.run(body):
        raise click.exceptions.Exit(1)


# Per command: what it asks consent for, and what it reports when no migration ran.
_WORDING = {
    "run": ("run migrations", "Already up to date: no pending migrations"),
    "rollback": ("roll back migrations", "Nothing to roll back"),
    "reset": ("reset migrations", "Nothing to roll back"),
    "refresh": ("refresh migrations", "No migrations to refresh"),
}


def _change(
    state: CliState,
    connection: str | None,
    action: Callable[[Migrator], Awaitable[MigrationResult]],
    command: str,
    *,
    dry_run: bool,
    force: bool,
    seed: bool = False,
) -> None:
    """A schema-changing command: refused in production without ``--force`` (unless a dry
    run), then ``_migrate`` with the usual summary."""
    consent, nothing = _WORDING[command]
    if not dry_run:
        state.require_consent(force, consent)
    _migrate(
        state,
        connection,
        action,
        dry_run=dry_run,
        seed=seed,
        report=lambda r: _summary(state, r, nothing),
    )


@migration_command("migration:run")
@dry_run_option
@schema_changing
@pass_state
def migration_run(state: CliState, connection: str | None, dry_run: bool, force: bool) -> None:
    """Run every pending migration as a new batch."""
    _change(state, connection, lambda m: m.run(), "run", dry_run=dry_run, force=force)


@migration_command("migration:rollback")
@click.option(
    "--batch", type=click.IntRange(min=0), metavar="N", help="Roll back every batch above N."
)
@click.option(
    "--step", type=click.IntRange(min=1), metavar="N", help="Roll back the last N migrations."
)
@dry_run_option
@schema_changing
@pass_state
def migration_rollback(
    state: CliState,
    connection: str | None,
    batch: int | None,
    step: int | None,
    dry_run: bool,
    force: bool,
) -> None:
    """Roll back the last batch of migrations.

    --batch N rolls back every batch above N (--batch 0: everything); --step N the last N
    migrations.
    """
    _change(
        state,
        connection,
        lambda m: m.rollback(batch=batch, step=step),
        "rollback",
        dry_run=dry_run,
        force=force,
    )


@migration_command("migration:reset")
@dry_run_option
@schema_changing
@pass_state
def migration_reset(state: CliState, connection: str | None, dry_run: bool, force: bool) -> None:
    """Roll back every migration."""
    _change(state, connection, lambda m: m.reset(), "reset", dry_run=dry_run, force=force)


@migration_command("migration:refresh")
@click.option("--seed", is_flag=True, help="Run the seeders afterwards.")
@dry_run_option
@schema_changing
@pass_state
def migration_refresh(
    state: CliState, connection: str | None, seed: bool, dry_run: bool, force: bool
) -> None:
    """Roll back every migration, then run them all."""
    _change(
        state,
        connection,
        lambda m: m.refresh(),
        "refresh",
        dry_run=dry_run,
        force=force,
        seed=seed and not dry_run,
    )


@migration_command("migration:fresh")
@click.option("--seed", is_flag=True, help="Run the seeders afterwards.")
@schema_changing
@pass_state
def migration_fresh(state: CliState, connection: str | None, seed: bool, force: bool) -> None:
    """Drop every table, then run every migration.

    The down methods do not run. Refused in production without --force.
    """
    state.require_consent(force, "drop every table (migration:fresh)")
    state.info("Dropping every table, then running every migration")

    def report(result: MigrationResult) -> None:
        if result.dropped_tables:
            names = ", ".join(sorted(result.dropped_tables))
            state.info(f"Dropped {len(result.dropped_tables)} table(s): {names}")
        _summary(state, result, "No migrations to run")

    _migrate(state, connection, lambda m: m.fresh(), seed=seed, report=report)


_STATUS_STYLES = {"completed": "green", "pending": "yellow", "corrupt": "red"}


def _status_table(lines: list[MigrationStatus]) -> Table:
    from rich.table import Table

    table = Table("Name", "Status", "Batch", "Migrated at (UTC)", header_style="bold")
    for line in lines:
        style = _STATUS_STYLES[line.status]
        table.add_row(
            escape(line.name),
            f"[{style}]{line.status}[/{style}]",
            "" if line.batch is None else str(line.batch),
            "" if line.migrated_at is None else line.migrated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


@migration_command("migration:status")
@pass_state
def migration_status(state: CliState, connection: str | None) -> None:
    """List the migrations and their status.

    completed (with its batch), pending, or corrupt: recorded as run but its file is gone.
    """
    from ..migrations import Migrator

    migrator = Migrator(
        state.config.migrations_path, connection=connection, table=state.config.migrations_table
    )
    lines = state.run(migrator.status)
    if not lines:
        state.info(f'No migrations in "{state.relative(state.config.migrations_path)}"')
        return
    state.out.print(_status_table(lines))
    if any(line.status == "corrupt" for line in lines):
        state.warn(
            "Corrupt: recorded in the migrations table, but the file is gone. Restore it "
            "before rolling back."
        )


@migration_command("migration:unlock")
@force_option
@pass_state
def migration_unlock(state: CliState, connection: str | None, force: bool) -> None:
    """Clear a stale migrations lock, left by a runner that crashed or hangs.

    SQLite: deletes the row of the lock table. PostgreSQL and MySQL: ends the database session
    still holding the lock (a crashed runner's lock goes with its session). Only when no runner
    is at work: a live one would be cut off. Refused in production without --force.
    """
    from ..migrations import Migrator

    state.require_consent(force, "clear the migrations lock")
    migrator = Migrator(
        state.config.migrations_path, connection=connection, table=state.config.migrations_table
    )
    cleared = state.run(migrator.unlock)
    if cleared is None:
        state.info(f'No migrations lock held on "{migrator.table_name}": nothing to clear')
    else:
        state.success(f"Unlocked: {cleared}")


COMMANDS = [
    migration_run,
    migration_rollback,
    migration_reset,
    migration_refresh,
    migration_fresh,
    migration_status,
    migration_unlock,
]
