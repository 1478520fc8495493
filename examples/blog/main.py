"""The blog example, end to end on an embedded SQLite database (``make demo``):

1. migrates a fresh database (``tmp/blog.db``), a line per migration;
2. regenerates ``database/schema.py``, the schema classes most models extend, from it;
3. seeds it with the seeders and factories (Faker is seeded: the same data on every run);
4. walks through the relationship features, printing what each call returns.

Run it from any directory: ``python examples/blog/main.py [--database PATH] [--check]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from lucid_orm import QueryEvent, db
from lucid_orm.factories import Factory
from lucid_orm.migrations import MigrationEvent, Migrator
from lucid_orm.schema.generator import generate_schema
from lucid_orm.seeders import SeedsRunner

# Run as a script, this folder is first on sys.path: `app`, `database` and the modules next to
# this file import from it.
from report import line, section

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE / "database" / "schema.py"
TABLES = ["countries", "users", "profiles", "posts", "comments", "tags", "post_tags", "likes"]


async def migrate() -> None:
    section("1. Migrations (database/migrations)")

    def progress(event: MigrationEvent) -> None:
        if event.phase == "done":
            line(f"✓ {event.name}", f"{event.duration_ms:6.1f} ms")
        elif event.phase == "error":
            line(f"✗ {event.name}", event.error)

    result = await Migrator(HERE / "database" / "migrations", on_event=progress).run()
    line(f"batch {result.batch}: {len(result.migrated)} migrations run")


async def generate_schema_classes(check: bool) -> None:
    section("2. Schema classes (database/schema.py)")
    generated = await generate_schema(output=None)
    current = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    if generated.text == current:
        line("database/schema.py is up to date with the migrations")
    elif check:
        raise SystemExit(
            "database/schema.py does not match the migrations: run `make demo` to regenerate it"
        )
    else:
        SCHEMA_FILE.write_text(generated.text, encoding="utf-8")
        line("database/schema.py regenerated: the migrations changed it")
    for table, class_name in generated.classes.items():
        line(table, class_name)
    # Imported once the file is up to date: most models extend its classes.
    from app import models

    for model in (models.User, models.Post, models.Comment, models.Tag):
        line(f"  class {model.__name__}({model.__mro__[1].__name__})")


async def seed() -> None:
    section("3. Seeders (database/seeders, Faker seeded with 2024)")
    Factory.seed(2024)
    results = await SeedsRunner(HERE / "database" / "seeders", environment="development").run()
    for result in results:
        mark = {"completed": "✓", "ignored": "-", "failed": "✗"}[result.status]
        line(f"{mark} {result.name}", result.reason or result.status)
        if result.error is not None:
            raise result.error
    counts = [f"{table} {await db.from_(table).count_rows()}" for table in TABLES]
    line("rows: " + ", ".join(counts))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        type=Path,
        default=HERE / "tmp" / "blog.db",
        help="the SQLite file to create (deleted first; default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail when database/schema.py is out of date instead of rewriting it (tests)",
    )
    args = parser.parse_args()
    path: Path = args.database.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)

    started = time.perf_counter()
    statements = 0

    def count(_event: QueryEvent) -> None:
        nonlocal statements
        statements += 1

    print(f"lucid_orm blog example: a fresh SQLite database at {path}")
    db.configure(url=f"sqlite:///{path}")
    db.on_query(count)
    try:
        await migrate()
        await generate_schema_classes(args.check)
        await seed()
        import tour  # the models it imports extend the classes of database/schema.py

        await tour.run()
    finally:
        await db.close()
    took = time.perf_counter() - started
    print(f"\nDone: {statements} SQL statements in {took:.2f} s.")


if __name__ == "__main__":
    asyncio.run(main())
