"""Any number of keys (issue 12, item 8): every API that takes a list of keys works with
40,000 of them on every dialect — above PostgreSQL's 32,767 bound parameters and SQLite's
default 32,766 variables. PostgreSQL and SQLite receive the keys as one parameter (an array
compared with ``= ANY``, a JSON text read by ``json_each``): one statement, one binding. MySQL
interpolates them client-side (40,000 keys are far below ``max_allowed_packet``). Writes
with many keys run in one transaction: a failure in their last batch leaves nothing written.

Rows are made server-side (``INSERT … SELECT`` over a number series) to keep each test quick.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lucid_orm import QueryError, db, many_to_many
from lucid_orm.database import Database, QueryEvent
from lucid_orm.relations import ManyToMany
from tests import models
from tests.helpers import QueryLog, count_queries
from tests.models import Gadget, Skill, Thing

N = 40_000
ONE_PARAMETER = ("postgresql", "sqlite")


class User(models.User):
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill, pivot_columns=["proficiency"])


class StrictUser(models.BaseUser):
    """``skill_user_strict`` has foreign keys to ``users`` and ``skills``."""

    table = "users"
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill, pivot_table="skill_user_strict", pivot_foreign_key="user_id"
    )


# -- helpers -----------------------------------------------------------------------------------
async def series(table: str, columns: dict[str, str | int | None], start: int, stop: int) -> None:
    """Insert one row per ``n`` in ``start..stop`` into ``table``, server-side. A column's spec
    is ``"n"`` (the number), a text prefix (``"u"`` → ``"u<n>"``), or a constant int/None."""
    dialect = db.dialect_name()
    exprs: list[str] = []
    for spec in columns.values():
        if spec == "n":
            exprs.append("n")
        elif isinstance(spec, str):
            assert spec.isidentifier()
            exprs.append(f"concat('{spec}', n)" if dialect == "mysql" else f"'{spec}' || n")
        else:
            exprs.append("null" if spec is None else str(int(spec)))
    head = f"insert into {table} ({', '.join(columns)}) "
    body = f"select {', '.join(exprs)} from "
    if dialect == "postgresql":
        sql = head + body + "generate_series(cast(? as integer), cast(? as integer)) as s(n)"
        await db.raw_query(sql, [start, stop])
    elif dialect == "sqlite":
        cte = "with recursive s(n) as (select ? union all select n + 1 from s where n < ?) "
        await db.raw_query(head + cte + body + "s", [start, stop])
    else:
        # MariaDB's sequence engine: the table seq_<a>_to_<b> holds a..b.
        await db.raw_query(head + body + f"(select seq as n from seq_{start}_to_{stop}) as s")


async def ids_of(table: str, **where: Any) -> list[int]:
    rows = await db.from_(table).where(where).select("id").order_by("id")
    return [r["id"] for r in rows]


async def linked(table: str, user_id: int) -> list[int]:
    rows = await db.from_(table).where("user_id", user_id).select("skill_id").order_by("skill_id")
    return [r["skill_id"] for r in rows]


def selects(log: QueryLog) -> list[str]:
    return [s for s in log.sqls if s.lstrip().upper().startswith("SELECT")]


def one_parameter(log: QueryLog | list[QueryEvent], dialect: str, keys: int = N) -> None:
    """Each statement of ``log`` carried its keys as one binding (PostgreSQL, SQLite) or one
    binding per key (MySQL)."""
    events = log.events if isinstance(log, QueryLog) else log
    assert events
    for event in events:
        if dialect in ONE_PARAMETER:
            assert len(event.bindings) <= 3, (event.sql, len(event.bindings))
        else:
            assert len(event.bindings) >= keys


# ----------------------------------------------------------------------------------------------
class TestWhereInOnDatabaseQueries:
    async def test_where_in_and_where_not_in(self, fast_paths: bool, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N + 3)
        ids = await ids_of("users")
        keys = ids[:N]
        with count_queries() as log:
            rows = await db.from_("users").select("id").where_in("id", keys)
        assert sorted(r["id"] for r in rows) == keys
        assert log.count == 1
        one_parameter(log, dialect)

        with count_queries() as log:
            rows = await db.from_("users").select("id").where_not_in("id", keys).order_by("id")
        assert [r["id"] for r in rows] == ids[N:]
        assert log.count == 1
        one_parameter(log, dialect)

        # or_where_in / or_where_not_in inside the same query, with other bindings around them.
        with count_queries() as log:
            q = (
                db.from_("users")
                .select("id")
                .where("points", ">", N + 1)
                .or_where_in("id", keys[:5])
                .or_where_not_in("id", ids[5:])
                .order_by("id")
            )
            rows = await q
        assert [r["id"] for r in rows] == [*ids[:5], *ids[N + 1 :]]
        assert log.count == 1

        # where(col, "in", keys) is the same where_in.
        assert await db.from_("users").where("id", "in", keys).count_rows() == N
        assert await db.from_("users").where("id", "not in", keys).count_rows() == 3

    async def test_text_keys(self, fast_paths: bool, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N)
        names = [f"u{i}" for i in range(1, N + 1)]
        with count_queries() as log:
            got = await db.from_("users").where_in("username", [*names, "nobody"]).count_rows()
        assert got == N
        one_parameter(log, dialect)
        assert await db.from_("users").where_not_in("username", names[1:]).count_rows() == 1

    async def test_null_keys_keep_the_semantics_of_in(self, fast_paths: bool, dialect: str) -> None:
        # IN (…, NULL) matches no NULL row; NOT IN (…, NULL) matches no row at all.
        await series("users", {"username": "u", "country_id": "n"}, 1, N)
        await series("users", {"username": "x", "country_id": None}, 1, 2)
        keys: list[Any] = [*range(1, N, 2), None]
        assert await db.from_("users").where_in("country_id", keys).count_rows() == N // 2
        assert await db.from_("users").where_not_in("country_id", keys).count_rows() == 0
        odd = list(range(1, N, 2))
        assert await db.from_("users").where_not_in("country_id", odd).count_rows() == N // 2

    async def test_two_columns(self, fast_paths: bool, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N)
        pairs: list[list[Any]] = [[f"u{i}", i] for i in range(1, N + 1)]
        # Every tenth pair does not match (points off by one).
        for pair in pairs[::10]:
            pair[1] += 1
        with count_queries() as log:
            got = await db.from_("users").where_in(["username", "points"], pairs).count_rows()
        assert got == N - N // 10
        assert log.count == 1
        one_parameter(log, dialect, 2 * N)
        # NOT IN: SQLite checks each row that is not in the list against the whole list (its
        # row-value NOT IN must tell NULL from false), so only a few rows stay out here.
        exact = [(f"u{i}", i) for i in range(4, N + 1)]
        q = db.from_("users").where_not_in(("username", "points"), exact).order_by("points")
        assert [r["username"] for r in await q] == ["u1", "u2", "u3"]
        assert await db.from_("users").where_in(["username", "points"], pairs[:3]).count_rows() == 2


class TestWhereInOnModelQueries:
    async def test_find_many(self, fast_paths: bool, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N + 1)
        ids = await ids_of("users")
        with count_queries() as log:
            found = await User.find_many(ids[:N])
        assert [u.id for u in found] == sorted(ids[:N], reverse=True)
        assert found[-1].username == "u1"
        assert log.count == 1
        one_parameter(log, dialect)

    async def test_where_in_family(self, fast_paths: bool, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N + 2)
        ids = await ids_of("users")
        keys = ids[:N]
        with count_queries() as log:
            users = await User.query().where_in("id", keys)
        assert sorted(u.id for u in users) == keys
        assert log.count == 1
        one_parameter(log, dialect)
        rest = await User.query().where_not_in("id", keys).order_by("id")
        assert [u.points for u in rest] == [N + 1, N + 2]
        q = User.query().where("points", N + 2).or_where_in("id", keys[:3]).order_by("id")
        assert [u.points for u in await q] == [1, 2, 3, N + 2]
        names = [f"u{n}" for n in range(1, N + 1)]
        assert await User.query().where_in("username", names).count_rows() == N

    async def test_two_columns(self, fast_paths: bool, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N)
        pairs = [(f"u{i}", i if i % 4 else -i) for i in range(1, N + 1)]
        with count_queries() as log:
            got = await User.query().where_in(["username", "points"], pairs).count_rows()
        assert got == N - N // 4
        assert log.count == 1
        one_parameter(log, dialect, 2 * N)
        exact = [(f"u{i}", i) for i in range(1, N - 1)]  # see the database test on NOT IN
        q = User.query().where_not_in(["username", "points"], exact).order_by("points")
        assert [u.username for u in await q] == [f"u{N - 1}", f"u{N}"]

    async def test_text_uuid_keys(self, fast_paths: bool, dialect: str) -> None:
        keys = [uuid.uuid4() for _ in range(40_000)]
        await Gadget.create_many([{"uuid": k, "name": "g"} for k in keys[:20_000]])
        with count_queries() as log:
            found = await Gadget.find_many(keys)
        assert {g.uuid for g in found} == set(keys[:20_000])
        assert log.count == 1
        one_parameter(log, dialect, 40_000)


class TestManyRowUpserts:
    async def test_fetch_or_create_many(self, database: Database, dialect: str) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N // 2)
        payload = [{"username": f"u{i}", "points": -i} for i in range(1, N + 1)]
        with count_queries() as log:
            users = await User.fetch_or_create_many("username", payload)
        assert [u.username for u in users] == [p["username"] for p in payload]
        assert len(selects(log)) == 1
        assert await db.from_("users").count_rows() == N
        # The existing half is fetched as it is, the other half created from the payload.
        assert await db.from_("users").where("points", "<", 0).count_rows() == N // 2
        assert sorted(u.id for u in users) == await ids_of("users")
        assert [u.points for u in users[N // 2 - 1 : N // 2 + 1]] == [N // 2, -(N // 2 + 1)]

    async def test_fetch_or_create_many_on_two_keys(self, database: Database) -> None:
        await series("users", {"username": "u", "points": "n"}, 1, N // 2)
        payload = [{"username": f"u{i}", "points": i} for i in range(1, N + 1)]
        payload[0]["points"] = 0  # ("u1", 0) does not exist: created
        users = await User.fetch_or_create_many(["username", "points"], payload)
        assert len(users) == N
        assert await db.from_("users").count_rows() == N + 1
        assert await db.from_("users").where("username", "u1").count_rows() == 2

    async def test_update_or_create_many(self, database: Database, dialect: str) -> None:
        # 40,000 keys (above PostgreSQL's limit): every existing row is saved on its own, so
        # only a few of them exist here.
        total = 40_000
        await series("users", {"username": "u", "points": "n"}, 1, 5)
        payload = [{"username": f"u{i}", "points": -i} for i in range(1, total + 1)]
        with count_queries() as log:
            users = await User.update_or_create_many("username", payload)
        assert len(selects(log)) == 1
        assert [u.points for u in users[:6]] == [-1, -2, -3, -4, -5, -6]
        assert await db.from_("users").count_rows() == total
        assert await db.from_("users").where("points", "<", 0).count_rows() == total


class TestManyToManyWithManyKeys:
    async def test_attach(self, database: Database, dialect: str) -> None:
        (user,) = await User.create_many([{"username": "virk"}])
        keys = list(range(1, N + 1))
        await user.related("skills").attach(keys)
        assert await linked("skill_user", user.id) == keys
        # The pivot query of the relation takes as many keys.
        q = user.related("skills").pivot_query().where_in_pivot("skill_id", keys[10:])
        assert await q.count_rows() == N - 10

    async def test_detach(self, database: Database, dialect: str) -> None:
        virk, nikk = await User.create_many([{"username": "virk"}, {"username": "nikk"}])
        await series("skill_user", {"user_id": virk.id, "skill_id": "n"}, 1, N + 5)
        await series("skill_user", {"user_id": nikk.id, "skill_id": "n"}, 1, 10)
        with count_queries() as log:
            removed = await virk.related("skills").detach(list(range(1, N + 1)))
        assert removed == N
        assert log.count == 1
        one_parameter(log, dialect)
        assert await linked("skill_user", virk.id) == list(range(N + 1, N + 6))
        assert await linked("skill_user", nikk.id) == list(range(1, 11))

    async def test_sync(self, database: Database, dialect: str) -> None:
        virk, nikk = await User.create_many([{"username": "virk"}, {"username": "nikk"}])
        await series("skill_user", {"user_id": virk.id, "skill_id": "n"}, 1, 60_000)
        await series("skill_user", {"user_id": nikk.id, "skill_id": "n"}, 1, 10)
        wanted = list(range(30_001, 30_001 + N))
        with count_queries() as log:
            await virk.related("skills").sync(wanted)
        assert await linked("skill_user", virk.id) == wanted
        assert await linked("skill_user", nikk.id) == list(range(1, 11))
        assert len(selects(log)) == 1
        kinds = [s.lstrip().split()[0].upper() for s in log.sqls]
        assert kinds.count("DELETE") == 1 and "UPDATE" not in kinds
        # The read takes the parent's pivot rows (no key list); the DELETE the 30,000 stale ids.
        reads = [e for e in log.events if e.sql.lstrip().upper().startswith("SELECT")]
        assert [len(e.bindings) for e in reads] == [1]
        deletes = [e for e in log.events if e.sql.lstrip().upper().startswith("DELETE")]
        one_parameter(deletes, dialect, 30_000)

        # Pivot values: the ids that change to the same values share one UPDATE.
        values = {i: {"proficiency": "expert"} for i in wanted}
        with count_queries() as log:
            await virk.related("skills").sync(values)
        kinds = [s.lstrip().split()[0].upper() for s in log.sqls]
        assert kinds == ["SELECT", "UPDATE"]  # nothing left to detach: no DELETE
        rows = await db.from_("skill_user").where("user_id", virk.id).select("proficiency")
        assert len(rows) == N and {r["proficiency"] for r in rows} == {"expert"}


@pytest.fixture
async def strict_pivot(database: Database) -> AsyncIterator[None]:
    """Empties ``skill_user_strict`` with TRUNCATE on PostgreSQL before the per-test cleanup
    deletes the skills: each deleted skill checks the foreign key by scanning the pivot table,
    which still holds the dead rows of a rolled-back 100,000-row insert until a VACUUM."""
    yield
    if database.dialect_name() == "postgresql":
        await db.raw_query("truncate table skill_user_strict")


@pytest.mark.usefixtures("strict_pivot")
class TestAllOrNothing:
    async def test_attach_with_an_unknown_id_last_writes_nothing(
        self, database: Database, dialect: str
    ) -> None:
        (user,) = await StrictUser.create_many([{"username": "virk"}])
        await series("skills", {"name": "s"}, 1, N)
        skills = await ids_of("skills")
        with pytest.raises(QueryError) as info:
            await user.related("skills").attach([*skills, skills[-1] + 1])
        assert info.value.code == "E_INTEGRITY"
        assert await db.from_("skill_user_strict").count_rows() == 0

    async def test_sync_failing_in_its_last_batch_changes_nothing(
        self, database: Database, dialect: str
    ) -> None:
        (user,) = await StrictUser.create_many([{"username": "virk"}])
        await series("skills", {"name": "s"}, 1, N)
        skills = await ids_of("skills")
        await user.related("skills").attach(skills[:10])
        with pytest.raises(QueryError) as info:
            # Would insert 99,991 links (the last one to no skill), then detach the first ten.
            await user.related("skills").sync([*skills[10:], skills[-1] + 1])
        assert info.value.code == "E_INTEGRITY"
        assert await linked("skill_user_strict", user.id) == skills[:10]

    async def test_fetch_or_create_many_failing_last_writes_nothing(
        self, database: Database
    ) -> None:
        await Thing.create_many([{"name": "old", "amount": 0}])
        payload: list[dict[str, Any]] = [{"amount": i, "name": f"t{i}"} for i in range(1, 40_001)]
        payload[-1]["name"] = "t1"  # unique violation in the last batch
        with pytest.raises(QueryError) as info:
            await Thing.fetch_or_create_many("amount", payload)
        assert info.value.code == "E_INTEGRITY"
        assert await db.from_("things").select("name") == [{"name": "old"}]

    async def test_update_or_create_many_failing_last_writes_nothing(
        self, database: Database
    ) -> None:
        await Thing.create_many([{"name": "old", "amount": 0}])
        payload: list[dict[str, Any]] = [{"amount": 0, "name": "changed"}]
        payload += [{"amount": i, "name": f"t{i}"} for i in range(1, 40_001)]
        payload[-1]["name"] = "changed"  # unique violation in the last batch
        with pytest.raises(QueryError) as info:
            await Thing.update_or_create_many("amount", payload)
        assert info.value.code == "E_INTEGRITY"
        assert await db.from_("things").select("name", "amount") == [{"name": "old", "amount": 0}]
