"""Seeders (Lucid's ``seeders_runner``/``seeders_source`` specs): files found under a
directory and run in name order, environment filters, failures that stop the run, file
selection."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import ClassVar

import pytest

from lucid_orm import LucidError
from lucid_orm.database import Database
from lucid_orm.seeders import BaseSeeder, SeederStatus, SeedsRunner


def seeder(name: str, body: str = "", *, attributes: str = "", imports: str = "") -> str:
    """A seeder file whose ``run`` inserts a tag named ``name``, then runs ``body``."""
    lines = [
        imports,
        "from lucid_orm.seeders import BaseSeeder",
        "",
        "",
        "class Seeder(BaseSeeder):",
    ]
    lines += ["    " + line for line in textwrap.dedent(attributes).splitlines()]
    lines += [
        "    async def run(self) -> None:",
        f"        await self.client.table('tags').insert({{'name': {name!r}}})",
    ]
    lines += ["        " + line for line in textwrap.dedent(body).splitlines()]
    return "\n".join(lines) + "\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


async def tags(database: Database) -> list[str]:
    return [r["name"] for r in await database.from_("tags").order_by("id")]


def statuses(results: list[SeederStatus]) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in results]


class TestRun:
    async def test_runs_every_file_in_name_order(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path / "seeders",
            {
                "b_users.py": seeder("b"),
                "a_countries.py": seeder("a"),
                "nested/c_more.py": seeder("c"),
                "__init__.py": "raise RuntimeError('never imported')\n",
                "_helpers.py": "raise RuntimeError('never imported')\n",
                "notes.txt": "not python",
            },
        )
        runner = SeedsRunner(root)
        assert runner.get_list() == ["a_countries", "b_users", "nested/c_more"]
        results = await runner.run()
        assert statuses(results) == [
            ("a_countries", "completed"),
            ("b_users", "completed"),
            ("nested/c_more", "completed"),
        ]
        assert all(r.reason is None and r.error is None for r in results)
        assert await tags(database) == ["a", "b", "c"]

    async def test_client_is_the_connection_client(
        self, database: Database, tmp_path: Path
    ) -> None:
        root = write(
            tmp_path,
            {
                "check.py": seeder(
                    "x",
                    "assert isinstance(self.client, QueryClient)\n"
                    f"assert self.client.connection_name == {database.primary_connection_name!r}",
                    imports="from lucid_orm.database import QueryClient",
                )
            },
        )
        results = await SeedsRunner(root, connection=database.primary_connection_name).run()
        assert statuses(results) == [("check", "completed")], results[0].reason

    async def test_models_inside_a_seeder(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path,
            {
                "users.py": textwrap.dedent(
                    """
                    from lucid_orm import BaseModel, column
                    from lucid_orm.seeders import BaseSeeder


                    class SeededUser(BaseModel):
                        table = "users"
                        id: int = column(is_primary=True)
                        email: str | None = column()


                    class UserSeeder(BaseSeeder):
                        async def run(self) -> None:
                            await SeededUser.create_many(
                                [{"email": "a@x.io"}, {"email": "b@x.io"}], client=self.client
                            )
                    """
                )
            },
        )
        assert statuses(await SeedsRunner(root).run()) == [("users", "completed")]
        assert await database.from_("users").count_rows() == 2

    async def test_sync_run_is_accepted(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path,
            {
                "noop.py": (
                    "from lucid_orm.seeders import BaseSeeder\n\n"
                    "class Noop(BaseSeeder):\n    def run(self):\n        pass\n"
                )
            },
        )
        assert statuses(await SeedsRunner(root).run()) == [("noop", "completed")]

    async def test_missing_directory(self, database: Database, tmp_path: Path) -> None:
        runner = SeedsRunner(tmp_path / "nope")
        with pytest.raises(LucidError) as info:
            await runner.run()
        assert info.value.code == "E_SEEDERS_NOT_FOUND"
        assert "does not exist" in str(info.value)

    async def test_unknown_connection(self, database: Database, tmp_path: Path) -> None:
        root = write(tmp_path, {"a.py": seeder("a")})
        with pytest.raises(LucidError) as info:
            await SeedsRunner(root, connection="nope").run()
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"

    def test_default_path(self) -> None:
        assert SeedsRunner().path == Path("database/seeders")


class TestEnvironment:
    async def test_ignored_outside_its_environments(
        self, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("LUCID_ENV", raising=False)
        root = write(
            tmp_path,
            {
                "a_prod.py": seeder("prod", attributes='environment = ["production"]'),
                "b_any.py": seeder("any"),
                "c_dev.py": seeder("dev", attributes='environment = ["development", "testing"]'),
            },
        )
        runner = SeedsRunner(root)
        assert runner.environment == "development"
        results = await runner.run()
        assert statuses(results) == [
            ("a_prod", "ignored"),
            ("b_any", "completed"),
            ("c_dev", "completed"),
        ]
        assert results[0].reason == ('Disabled in "development" environment (runs in: production)')
        assert results[0].error is None
        assert await tags(database) == ["any", "dev"]

    async def test_environment_argument(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path, {"prod.py": seeder("prod", attributes='environment = ["production"]')}
        )
        results = await SeedsRunner(root, environment="production").run()
        assert statuses(results) == [("prod", "completed")]

    async def test_environment_variable(
        self, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("LUCID_ENV", "testing")
        root = write(
            tmp_path,
            {
                "a.py": seeder("a", attributes='environment = ["testing"]'),
                "b.py": seeder("b", attributes="development_only = True"),
            },
        )
        runner = SeedsRunner(root)
        assert runner.environment == "testing"
        results = await runner.run()
        assert statuses(results) == [("a", "completed"), ("b", "ignored")]
        assert results[1].reason == 'Disabled in "testing" environment (development_only)'
        # An explicit environment wins over the variable.
        assert SeedsRunner(root, environment="development").environment == "development"

    def test_disabled_reason(self) -> None:
        class Anywhere(BaseSeeder):
            pass

        class Nowhere(BaseSeeder):
            environment: ClassVar[list[str] | None] = []

        assert Anywhere.disabled_reason("production") is None
        assert Nowhere.disabled_reason("development") == (
            'Disabled in "development" environment (runs in: none)'
        )


class TestFailure:
    async def test_failure_stops_the_run(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path,
            {
                "a.py": seeder("a"),
                "b.py": seeder("b", "raise ValueError('bad seed data')"),
                "c.py": seeder("c"),
            },
        )
        results = await SeedsRunner(root).run()
        assert statuses(results) == [("a", "completed"), ("b", "failed")]
        failed = results[1]
        assert isinstance(failed.error, ValueError)
        assert failed.reason == "bad seed data"
        # Seeders run without an implicit transaction (as Lucid): b's insert stays.
        assert await tags(database) == ["a", "b"]

    async def test_database_error(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path,
            {"a.py": seeder("a", "await self.client.table('no_such_table').insert({'x': 1})")},
        )
        (result,) = await SeedsRunner(root).run()
        assert result.status == "failed"
        assert isinstance(result.error, LucidError) and result.error.code == "E_QUERY_FAILED"

    async def test_bad_files(self, database: Database, tmp_path: Path) -> None:
        root = write(
            tmp_path,
            {
                "a_syntax.py": "class (:\n",
                "b_empty.py": "x = 1\n",
                "c_two.py": seeder("c") + "\n\nclass Other(BaseSeeder):\n    pass\n",
            },
        )
        (syntax,) = await SeedsRunner(root).run()
        assert syntax.status == "failed" and isinstance(syntax.error, SyntaxError)
        (empty,) = await SeedsRunner(root).run(["b_empty"])
        assert (empty.status, empty.reason) == (
            "failed",
            'Seeder file "b_empty" must define one BaseSeeder subclass, found no BaseSeeder '
            "subclass",
        )
        (two,) = await SeedsRunner(root).run(["c_two"])
        assert two.status == "failed" and "found 2 BaseSeeder subclasses" in (two.reason or "")
        assert await tags(database) == []


class TestFiles:
    async def test_selected_files(
        self, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        root = write(
            tmp_path / "database" / "seeders",
            {"a.py": seeder("a"), "b.py": seeder("b"), "sub/c.py": seeder("c")},
        )
        monkeypatch.chdir(tmp_path)
        runner = SeedsRunner()
        results = await runner.run(["sub/c", "a.py", "database/seeders/b.py", str(root / "a.py")])
        assert statuses(results) == [
            ("sub/c", "completed"),
            ("a", "completed"),
            ("b", "completed"),
            ("a", "completed"),
        ]
        assert await tags(database) == ["c", "a", "b", "a"]

    async def test_unknown_file_runs_nothing(self, database: Database, tmp_path: Path) -> None:
        root = write(tmp_path, {"a.py": seeder("a")})
        with pytest.raises(LucidError) as info:
            await SeedsRunner(root).run(["a", "nope"])
        assert info.value.code == "E_SEEDERS_NOT_FOUND"
        assert "'nope'" in str(info.value) and "available: a" in str(info.value)
        assert await tags(database) == []
