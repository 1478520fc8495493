"""``schema:generate`` and the regeneration the migration commands run afterwards
(``SCHEMA_GENERATE``, ``--no-schema-generate``): the typed schema classes of
``SCHEMA_OUTPUT``, read from the database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import LucidError
from .app import CliState, connection_option, pass_state

if TYPE_CHECKING:
    from ..schema.generator import GeneratedSchema

# Set by --no-schema-generate on the running command (click's shared ``ctx.meta``), so the
# migration commands take the option without each declaring a parameter for it.
_SKIP = "lucid_orm.no_schema_generate"

F = TypeVar("F", bound=Callable[..., Any])


def no_schema_generate_option(func: F) -> F:
    """``--no-schema-generate``: don't regenerate ``SCHEMA_OUTPUT`` after this command."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[_SKIP] = True

    return click.option(
        "--no-schema-generate",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="Don't regenerate the schema classes (SCHEMA_OUTPUT) afterwards.",
    )(func)


async def generate(
    state: CliState, connection: str | None, output: Path | None = None
) -> GeneratedSchema:
    """Write the schema module (``output``, default ``SCHEMA_OUTPUT``) from ``connection``, with
    ``SCHEMA_RULES``; the configured migrations table is always left out."""
    from ..schema.generator import SchemaRules, generate_schema

    config = state.config
    rules = SchemaRules.from_config(config.schema_rules)
    table = config.migrations_table
    rules.exclude = [*rules.exclude, table, f"{table}_lock"]
    result = await generate_schema(
        connection=connection, output=output or config.schema_output, rules=rules
    )
    path = result.path or config.schema_output
    count = f"{len(result.classes)} schema class{'es' if len(result.classes) != 1 else ''}"
    if result.changed:
        state.success(f"wrote {state.relative(path)} ({count})")
    else:
        state.info(f"{state.relative(path)} unchanged ({count})")
    return result


async def regenerate_after_migrate(state: CliState, connection: str | None) -> None:
    """Regenerate ``SCHEMA_OUTPUT`` after a migration command changed the schema, unless
    ``SCHEMA_GENERATE = False`` or ``--no-schema-generate``."""
    ctx = click.get_current_context(silent=True)
    if not state.config.schema_generate or (ctx is not None and ctx.meta.get(_SKIP)):
        return
    try:
        await generate(state, connection)
    except LucidError as exc:
        raise LucidError(
            f"The migrations ran, but regenerating {state.relative(state.config.schema_output)} "
            f"failed (run `lucid-orm schema:generate` once it is fixed): {exc}",
            code=exc.code,
            status=exc.status,
        ) from exc


@click.command("schema:generate")
@connection_option
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The module to write (default: SCHEMA_OUTPUT, database/schema.py).",
)
@pass_state
def schema_generate(state: CliState, connection: str | None, output: Path | None) -> None:
    """Write the typed schema classes of every table to a Python module.

    One abstract class per table (PostsSchema for posts) for the models to extend; SCHEMA_RULES
    maps types, excludes tables or limits PostgreSQL schemas. The migration commands run this
    after they change the schema.
    """
    path = None if output is None else (Path.cwd() / output)
    state.run(lambda: generate(state, connection, path))


COMMANDS = [schema_generate]
