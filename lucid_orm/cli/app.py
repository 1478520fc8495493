"""The ``lucid-orm`` command group and what its commands share: the loaded configuration,
rich consoles, error reporting (a message and exit code 1 for a ``LucidError``; its traceback
only with ``--traceback``), the production guard and running a coroutine against ``db``."""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from ..config import LucidConfig, load_config
from ..database import db
from ..errors import LucidError, QueryError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Rich wraps at 80 columns when the output is not a terminal: keep piped lines whole.
_PIPE_WIDTH = 1000


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


class CliState:
    """What every command receives (``@pass_state``): the configuration, loaded on first use
    so that ``--help`` works even when the configuration is broken, and the consoles."""

    def __init__(self, config_path: Path | None, *, show_traceback: bool = False) -> None:
        self.config_path = config_path
        # --traceback: a failure prints its full traceback (causes included) before the message.
        self.show_traceback = show_traceback
        self._config: LucidConfig | None = None
        self.out = _console()
        self.err = _console(stderr=True)

    @property
    def config(self) -> LucidConfig:
        if self._config is None:
            self._config = load_config(path=self.config_path)
        return self._config

    def relative(self, path: Path) -> str:
        """``path`` relative to the project root when it lies inside it (for messages)."""
        root = self.config.root
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    def success(self, message: str) -> None:
        self.out.print(f"[green]✓[/green] {escape(message)}")

    def info(self, message: str) -> None:
        self.out.print(escape(message))

    def failure(self, message: str) -> None:
        """A progress line for a step that failed (the error itself goes to ``error``)."""
        self.out.print(f"[red]✗[/red] {escape(message)}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]![/yellow] {escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]✗ {escape(message)}[/red]")

    def fail(self, message: str) -> NoReturn:
        """Print ``message`` to stderr and exit with code 1."""
        self.error(message)
        raise click.exceptions.Exit(1)

    def print_traceback(self, exc: BaseException) -> None:
        """With ``--traceback``: the traceback of ``exc`` and of its causes, on stderr."""
        if self.show_traceback:
            self.err.print(escape("".join(traceback.format_exception(exc)).rstrip()))

    def require_consent(self, force: bool, action: str) -> None:
        """Refuse a destructive ``action`` in production unless ``--force`` was given."""
        if self.config.is_production and not force:
            self.fail(
                f'Refusing to {action} in the "production" environment '
                f"({_environment_source(self.config)}): pass --force to run it anyway"
            )

    def run(self, body: Callable[[], Awaitable[T]]) -> T:
        """Configure ``db`` from the configuration, run ``body()`` and close every
        connection, whatever happens."""
        config = self.config

        async def main() -> T:
            config.configure_db()
            try:
                return await body()
            finally:
                await db.close()

        return asyncio.run(main())


pass_state = click.make_pass_decorator(CliState)


def _environment_source(config: LucidConfig) -> str:
    if os.environ.get("LUCID_ENV"):
        return "LUCID_ENV"
    return f"ENVIRONMENT in {config.source.name}" if config.source else "the configuration"


def _cause(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` was raised from, else the one it was raised while handling."""
    if exc.__cause__ is None and not exc.__suppress_context__:
        return exc.__context__
    return exc.__cause__


def describe_error(exc: BaseException) -> str:
    """The message of ``exc``, then those of its causes that add something, and the SQL of
    a ``QueryError`` among them."""
    parts = [str(exc) or type(exc).__name__]
    seen = [parts[0]]
    sql: str | None = None
    current: BaseException | None = exc
    steps = 0
    while current is not None and steps < 10:  # a bounded walk: chains can loop
        steps += 1
        if isinstance(current, QueryError) and current.sql and sql is None:
            sql = " ".join(current.sql.split())
        cause = _cause(current)
        if cause is not None:
            text = str(cause).strip()
            if text and not any(text in m or m in text for m in seen):
                parts.append(f"{type(cause).__name__}: {text}")
            if text:
                seen.append(text)
        current = cause
    if sql:
        parts.append(f"SQL: {sql}")
    return "\n  ".join(parts)


class LucidGroup(click.Group):
    """A click group that turns ``LucidError`` (and file-system errors) into a message on
    stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LucidError, OSError) as exc:
            state = ctx.find_object(CliState) or CliState(None)
            state.print_traceback(exc)
            state.fail(describe_error(exc))


def traceback_option(func: F) -> F:
    """``--traceback`` on a command (as well as on ``lucid-orm`` itself)."""

    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        state = ctx.find_object(CliState)
        if value and state is not None:
            state.show_traceback = True

    return click.option(
        "--traceback",
        is_flag=True,
        expose_value=False,
        callback=enable,
        help="Show the full traceback of a failure (a migration's or seeder's error).",
    )(func)


def connection_option(func: F) -> F:
    """``--connection/-c NAME``: the configured connection a command works on."""
    return click.option(
        "--connection",
        "-c",
        metavar="NAME",
        default=None,
        help="The connection to use (default: the configuration's default connection).",
    )(func)


def force_option(func: F) -> F:
    """``--force``: run a destructive command in the production environment."""
    return click.option(
        "--force",
        is_flag=True,
        help="Run even when the environment is production.",
    )(func)


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """``with timer() as elapsed: ...`` — ``elapsed()`` gives the milliseconds so far."""
    start = time.perf_counter()
    yield lambda: (time.perf_counter() - start) * 1000


def format_ms(duration_ms: float | None) -> str:
    if duration_ms is None:
        return ""
    if duration_ms >= 1000:
        return f" ({duration_ms / 1000:.2f} s)"
    return f" ({duration_ms:.0f} ms)"


@click.group(cls=LucidGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="LUCID_CONFIG",
    help="The configuration file: a lucid_config.py module or a pyproject.toml with "
    "[tool.lucid-orm] (default: ./lucid_config.py, then ./pyproject.toml).",
)
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help="Show the full traceback of a failure (a migration's or seeder's error), not only "
    "its message.",
)
@click.version_option(package_name="lucid-orm", prog_name="lucid-orm")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, show_traceback: bool) -> None:
    """Lucid's ace commands for lucid_orm: generate models, migrations, seeders and
    factories; run migrations and seeders; wipe or truncate the database.

    The database is the configuration's (lucid_config.py, or [tool.lucid-orm] in
    pyproject.toml), else LUCID_DATABASE_URL, else DATABASE_URL.
    """
    ctx.obj = CliState(config_path, show_traceback=show_traceback)
