"""has_one_through (Eloquent's ``hasOneThrough``): ``Mechanic`` → ``Car.mechanic_id`` →
``CarOwner.car_id``, ``mechanic.car_owner`` one row or ``None``. Keys and boot errors, set
relations, preload (one query, callbacks, nesting, dotted paths), ``load()``, the related
query, the ``has`` family, ``with_count``/``with_aggregate``/``load_count``, ``on_query``
flags, refused writes and serialization — asserted on rows, errors and statement counts on
every dialect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    RelationNotLoadedError,
    belongs_to,
    column,
    has_one_through,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations.has_one_through import (
    HasOneThroughQueryBuilder,
    HasOneThroughSubQueryBuilder,
)
from lucid_orm.relations import BelongsTo, HasOneThrough
from tests import models
from tests.helpers import count_queries


class CarOwner(BaseModel):
    id: int = column(is_primary=True)
    car_id: int | None = column()
    name: str | None = column()
    age: int | None = column()

    car: BelongsTo[Car] = belongs_to(lambda: Car)


class Car(BaseModel):
    id: int = column(is_primary=True)
    mechanic_id: int | None = column()
    model: str | None = column()


class Mechanic(BaseModel):
    id: int = column(is_primary=True)
    name: str | None = column()

    car_owner: HasOneThrough[CarOwner] = has_one_through((lambda: CarOwner, lambda: Car))
    # The keyword form, every key spelt out.
    owner: HasOneThrough[CarOwner] = has_one_through(
        lambda: CarOwner,
        through=lambda: Car,
        local_key="id",
        foreign_key="mechanic_id",
        through_local_key="id",
        through_foreign_key="car_id",
        serialize_as="client",
    )


# -- data ----------------------------------------------------------------------------------------
@dataclass
class Garage:
    mechanics: dict[str, int]
    cars: dict[str, int]
    owners: dict[str, int]


async def seed(database: Database) -> Garage:
    """Ana services a Civic (owner Laurie), Bo a Golf (owners Sam and Kim), Cy nothing; an
    orphan car has an owner no mechanic reaches. Ids are read back by name."""
    await database.table("mechanics").multi_insert([{"name": n} for n in ("Ana", "Bo", "Cy")])
    mechanics = {r["name"]: r["id"] for r in await database.from_("mechanics").select("id", "name")}
    await database.table("cars").multi_insert(
        [
            {"model": "Civic", "mechanic_id": mechanics["Ana"]},
            {"model": "Golf", "mechanic_id": mechanics["Bo"]},
            {"model": "Orphan", "mechanic_id": None},
        ]
    )
    cars = {r["model"]: r["id"] for r in await database.from_("cars").select("id", "model")}
    await database.table("car_owners").multi_insert(
        [
            {"name": "Laurie", "age": 30, "car_id": cars["Civic"]},
            {"name": "Sam", "age": 40, "car_id": cars["Golf"]},
            {"name": "Kim", "age": 25, "car_id": cars["Golf"]},
            {"name": "Nobody", "age": 50, "car_id": cars["Orphan"]},
        ]
    )
    owners = {r["name"]: r["id"] for r in await database.from_("car_owners").select("id", "name")}
    return Garage(mechanics, cars, owners)


def name_of(owner: CarOwner | None) -> str | None:
    return None if owner is None else owner.name


# -- boot ----------------------------------------------------------------------------------------
class TestHasOneThroughBoot:
    def test_computes_default_keys(self) -> None:
        relation = Mechanic.get_relation("car_owner")
        relation.boot()
        assert isinstance(relation, HasOneThrough)
        assert relation.type == "hasOneThrough"
        assert relation.related_model() is CarOwner and relation.through_model() is Car
        assert (relation.local_key, relation.foreign_key) == ("id", "mechanic_id")
        assert (relation.through_local_key, relation.through_foreign_key) == ("id", "car_id")
        assert [h.table.name for h in relation.hops] == ["cars", "car_owners"]

    def test_keyword_form_equals_the_tuple_form(self) -> None:
        a, b = Mechanic.get_relation("car_owner"), Mechanic.get_relation("owner")
        a.boot()
        b.boot()
        assert (a.local_key, a.foreign_key, a.through_local_key, a.through_foreign_key) == (
            b.local_key,
            b.foreign_key,
            b.through_local_key,
            b.through_foreign_key,
        )
        assert b.serialize_as == "client"

    def test_the_spec_list_pair_is_the_tuple_form(self) -> None:
        class Shop(BaseModel):
            table = "mechanics"
            id: int = column(is_primary=True)
            owner: HasOneThrough[CarOwner] = has_one_through(
                [lambda: CarOwner, lambda: Car], foreign_key="mechanic_id"
            )

        relation = Shop.get_relation("owner")
        relation.boot()
        assert relation.related_model() is CarOwner and relation.through_model() is Car
        assert [(h.table.name, h.back, h.key) for h in relation.hops] == [
            ("cars", "id", "mechanic_id"),
            ("car_owners", "id", "car_id"),
        ]
        with pytest.raises(LucidError) as three:
            has_one_through([lambda: CarOwner, lambda: Car, lambda: Car])
        assert str(three.value) == (
            "has_one_through takes (related, through) or related with through="
        )

    def test_declaration_needs_both_models(self) -> None:
        with pytest.raises(LucidError) as exc:
            has_one_through(lambda: CarOwner)
        assert str(exc.value) == "has_one_through needs the through model: through=lambda: Model"
        with pytest.raises(LucidError) as both:
            has_one_through((lambda: CarOwner, lambda: Car), through=lambda: Car)
        assert str(both.value) == (
            "has_one_through takes (related, through) or related with through="
        )

    def test_missing_key_raises_at_boot(self) -> None:
        class Shop(BaseModel):
            table = "mechanics"
            id: int = column(is_primary=True)
            owner: HasOneThrough[CarOwner] = has_one_through(
                (lambda: CarOwner, lambda: Car),
                foreign_key="mechanic_id",
                through_foreign_key="vehicle_id",
            )
            # Without foreign_key, the default (``shop_id``) is missing on Car first.
            other: HasOneThrough[CarOwner] = has_one_through((lambda: CarOwner, lambda: Car))

        with pytest.raises(LucidError) as exc:
            Shop.get_relation("owner").boot()
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == (
            '"Shop.owner" expects "vehicle_id" to exist on "CarOwner" model, but is missing'
        )
        with pytest.raises(LucidError) as other:
            Shop.get_relation("other").boot()
        assert str(other.value) == (
            '"Shop.other" expects "shop_id" to exist on "Car" model, but is missing'
        )

    def test_reading_an_unloaded_relation_raises(self) -> None:
        with pytest.raises(RelationNotLoadedError):
            Mechanic(name="Ana").car_owner

    async def test_writes_are_refused(self, database: Database) -> None:
        mechanic = Mechanic(id=1, name="Ana")
        client = mechanic.related("car_owner")
        for method in ("save", "create", "first_or_create", "update_or_create", "associate"):
            assert not hasattr(client, method), method
        with pytest.raises(LucidError) as exc:
            Mechanic.get_relation("car_owner").hydrate_for_persistence(mechanic, CarOwner())
        assert exc.value.code == "E_RUNTIME_EXCEPTION"
        assert str(exc.value) == (
            'Cannot persist through a hasOneThrough relationship "(car_owner)": create the rows '
            "through the intermediate model"
        )

    def test_the_factory_refuses_it(self) -> None:
        from lucid_orm.factories.relations import make_relation

        with pytest.raises(LucidError) as exc:
            make_relation(Mechanic.get_relation("car_owner"), lambda: None)  # type: ignore[arg-type,return-value]
        assert exc.value.code == "E_INVALID_FACTORY"


# -- set relations -------------------------------------------------------------------------------
class TestHasOneThroughSetRelations:
    def test_set_related_takes_one_instance(self) -> None:
        relation = Mechanic.get_relation("car_owner")
        mechanic, owner = Mechanic(), CarOwner()
        relation.set_related(mechanic, owner)
        assert mechanic.car_owner is owner
        relation.set_related(mechanic, None)
        assert mechanic.car_owner is None
        with pytest.raises(LucidError) as exc:
            relation.set_related(mechanic, [owner])
        assert str(exc.value) == (
            '"Mechanic.car_owner" cannot reference more than one instance of "CarOwner" model'
        )

    def test_set_related_for_many_keeps_the_first_match(self) -> None:
        relation = Mechanic.get_relation("car_owner")
        mechanics = [Mechanic(id=1), Mechanic(id=2), Mechanic(id=3)]
        owners = [CarOwner(name="a"), CarOwner(name="b"), CarOwner(name="c")]
        for owner, through in zip(owners, [2, 1, 2], strict=True):
            owner.extras["through_mechanic_id"] = through
        relation.set_related_for_many(mechanics, owners)
        assert [name_of(m.car_owner) for m in mechanics] == ["b", "a", None]


# -- preload ---------------------------------------------------------------------------------------
class TestHasOneThroughPreload:
    async def test_preload_runs_one_query(self, database: Database) -> None:
        garage = await seed(database)
        with count_queries() as q:
            mechanics = await (
                Mechanic.query()
                .preload("car_owner", lambda o: o.order_by("age", "desc"))
                .order_by("id")
            )
        assert q.count == 2
        assert "JOIN cars ON cars.id = car_owners.car_id" in q.sqls[1]
        assert [(m.name, name_of(m.car_owner)) for m in mechanics] == [
            ("Ana", "Laurie"),
            ("Bo", "Sam"),
            ("Cy", None),
        ]
        ana = mechanics[0].car_owner
        assert isinstance(ana, CarOwner) and ana.is_persisted
        assert ana.extras == {"through_mechanic_id": garage.mechanics["Ana"]}

    async def test_callback_order_picks_the_row(self, database: Database) -> None:
        await seed(database)
        mechanics = await (
            Mechanic.query().preload("owner", lambda o: o.order_by("age")).order_by("id")
        )
        assert [name_of(m.owner) for m in mechanics] == ["Laurie", "Kim", None]
        filtered = await (
            Mechanic.query()
            .preload("owner", lambda o: o.where("cars.model", "Civic"))
            .order_by("id")
        )
        assert [name_of(m.owner) for m in filtered] == ["Laurie", None, None]

    async def test_nested_and_dotted_preloads(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            mechanics = await Mechanic.query().preload("car_owner.car").order_by("id")
        assert q.count == 3
        owner = mechanics[0].car_owner
        assert owner is not None and owner.car is not None and owner.car.model == "Civic"
        with count_queries() as q:
            nested = await (
                Mechanic.query()
                .preload("car_owner", lambda o: o.preload("car").order_by("age"))
                .order_by("id")
            )
        assert q.count == 3
        bo = nested[1].car_owner
        assert bo is not None and bo.car is not None and bo.car.model == "Golf"
        assert nested[2].car_owner is None

    async def test_load_on_an_instance(self, database: Database) -> None:
        garage = await seed(database)
        ana = await Mechanic.find_or_fail(garage.mechanics["Ana"])
        with count_queries() as q:
            await ana.load("car_owner")
        assert q.count == 1
        assert name_of(ana.car_owner) == "Laurie"
        cy = await Mechanic.find_or_fail(garage.mechanics["Cy"])
        await cy.load("car_owner")
        assert cy.car_owner is None

    async def test_no_query_without_parents(self, database: Database) -> None:
        with count_queries() as q:
            assert await Mechanic.query().preload("car_owner") == []
        assert q.count == 1

    async def test_group_limit_and_paginate_are_refused(self, database: Database) -> None:
        garage = await seed(database)
        with pytest.raises(LucidError) as exc:
            await Mechanic.query().preload("car_owner", lambda o: o.group_limit(1))
        assert str(exc.value) == (
            "Cannot apply group_limit or group_order_by on a hasOneThrough relationship "
            '"(car_owner)"'
        )
        ana = await Mechanic.find_or_fail(garage.mechanics["Ana"])
        with pytest.raises(LucidError) as page:
            await ana.related("car_owner").query().paginate(1)
        assert str(page.value) == 'Cannot paginate a hasOneThrough relationship "(car_owner)"'


# -- related query ---------------------------------------------------------------------------------
class TestHasOneThroughQuery:
    async def test_first_row_of_the_parent(self, database: Database) -> None:
        garage = await seed(database)
        bo = await Mechanic.find_or_fail(garage.mechanics["Bo"])
        query = bo.related("car_owner").query()
        assert isinstance(query, HasOneThroughQueryBuilder)
        assert (query.is_related_query, query.is_related_sub_query) == (True, False)
        with count_queries() as q:
            youngest = await query.order_by("age").first()
        assert q.count == 1
        assert youngest is not None and youngest.name == "Kim"
        assert youngest.extras == {"through_mechanic_id": garage.mechanics["Bo"]}
        rows = await bo.related("car_owner").query().order_by("name")
        assert [r.name for r in rows] == ["Kim", "Sam"]
        cy = await Mechanic.find_or_fail(garage.mechanics["Cy"])
        assert await cy.related("car_owner").query().first() is None

    async def test_or_where_cannot_escape(self, database: Database) -> None:
        garage = await seed(database)
        ana = await Mechanic.find_or_fail(garage.mechanics["Ana"])
        rows = await (
            ana.related("car_owner").query().where("name", "Sam").or_where("name", "Nobody")
        )
        assert rows == []

    async def test_update_touches_only_the_parent_row(self, database: Database) -> None:
        garage = await seed(database)
        ana = await Mechanic.find_or_fail(garage.mechanics["Ana"])
        assert await ana.related("car_owner").query().update({"age": 31}) == 1
        ages = {r["name"]: r["age"] for r in await database.from_("car_owners")}
        assert ages == {"Laurie": 31, "Sam": 40, "Kim": 25, "Nobody": 50}


# -- has family and aggregates ---------------------------------------------------------------------
class TestHasOneThroughHas:
    async def test_has_and_doesnt_have(self, database: Database) -> None:
        await seed(database)

        async def names(query: Any) -> list[str]:
            return [m.name for m in await query.order_by("id")]

        assert await names(Mechanic.query().has("car_owner")) == ["Ana", "Bo"]
        assert await names(Mechanic.query().doesnt_have("car_owner")) == ["Cy"]
        assert await names(Mechanic.query().has("car_owner", ">", 1)) == ["Bo"]
        assert await names(
            Mechanic.query().where_has("car_owner", lambda o: o.where("age", "<", 35))
        ) == ["Ana", "Bo"]
        assert await names(
            Mechanic.query().where_has("car_owner", lambda o: o.where("cars.model", "Golf"))
        ) == ["Bo"]
        assert await names(Mechanic.query().where("name", "Cy").or_has("car_owner", ">=", 2)) == [
            "Bo",
            "Cy",
        ]
        assert await names(
            Mechanic.query().where_doesnt_have("car_owner", lambda o: o.where("age", ">", 35))
        ) == ["Ana", "Cy"]

    async def test_with_count_and_aggregate(self, database: Database) -> None:
        garage = await seed(database)
        with count_queries() as q:
            mechanics = await (
                Mechanic.query()
                .with_count("car_owner")
                .with_aggregate("car_owner", lambda o: o.max("age").as_("oldest"))
                .order_by("id")
            )
        assert q.count == 1
        assert [(int(m.extras["car_owner_count"]), m.extras["oldest"]) for m in mechanics] == [
            (1, 30),
            (2, 40),
            (0, None),
        ]
        bo = await Mechanic.find_or_fail(garage.mechanics["Bo"])
        await bo.load_count("car_owner", lambda o: o.where("age", ">", 30))
        assert int(bo.extras["car_owner_count"]) == 1

    async def test_on_query_flags_and_filtering(self, database: Database) -> None:
        garage = await seed(database)
        calls: list[tuple[str, bool, bool, bool]] = []

        def on_query(query: Any) -> None:
            calls.append(
                (
                    type(query).__name__,
                    query.is_related_query,
                    query.is_related_preload_query,
                    query.is_related_sub_query,
                )
            )
            query.where("age", ">=", 30)

        class Workshop(BaseModel):
            table = "mechanics"
            id: int = column(is_primary=True)
            name: str | None = column()
            adult_owner: HasOneThrough[CarOwner] = has_one_through(
                (lambda: CarOwner, lambda: Car), foreign_key="mechanic_id", on_query=on_query
            )

        shops = await Workshop.query().preload("adult_owner", lambda o: o.order_by("age"))
        assert calls == [("HasOneThroughQueryBuilder", True, True, False)]
        assert {s.name: name_of(s.adult_owner) for s in shops} == {
            "Ana": "Laurie",
            "Bo": "Sam",
            "Cy": None,
        }
        calls.clear()
        bo = await Workshop.find_or_fail(garage.mechanics["Bo"])
        assert name_of(await bo.related("adult_owner").query().first()) == "Sam"
        assert calls == [("HasOneThroughQueryBuilder", True, False, False)]
        calls.clear()
        counted = await Workshop.query().with_count("adult_owner").has("adult_owner", ">", 0)
        assert sorted((s.name, int(s.extras["adult_owner_count"])) for s in counted) == [
            ("Ana", 1),
            ("Bo", 1),
        ]
        assert calls == [("HasOneThroughSubQueryBuilder", False, False, True)] * 2
        sub = Workshop.get_relation("adult_owner").sub_query(database.connection())
        assert isinstance(sub, HasOneThroughSubQueryBuilder)


# -- serialization -------------------------------------------------------------------------------
class TestHasOneThroughSerialize:
    async def test_serialize(self, database: Database) -> None:
        garage = await seed(database)
        mechanics = await (
            Mechanic.query()
            .preload("owner", lambda o: o.select("id", "name").order_by("age", "desc"))
            .order_by("id")
        )
        assert [m.serialize() for m in mechanics] == [
            {
                "id": garage.mechanics["Ana"],
                "name": "Ana",
                "client": {"id": garage.owners["Laurie"], "name": "Laurie"},
            },
            {
                "id": garage.mechanics["Bo"],
                "name": "Bo",
                "client": {"id": garage.owners["Sam"], "name": "Sam"},
            },
            {"id": garage.mechanics["Cy"], "name": "Cy", "client": None},
        ]


# The Country/User tables through has_one_through: one user's profile reached from a country.
class Country(models.Country):
    first_profile: HasOneThrough[models.Profile] = has_one_through(
        (lambda: models.Profile, lambda: models.User)
    )


class TestHasOneThroughOverSharedTables:
    async def test_preload_with_a_through_filter(self, database: Database) -> None:
        await database.table("countries").multi_insert([{"name": "India"}, {"name": "Peru"}])
        ids = {r["name"]: r["id"] for r in await database.from_("countries")}
        await database.table("users").multi_insert(
            [{"username": "virk", "country_id": ids["India"]}]
        )
        user = (await database.from_("users").first())["id"]
        await database.table("profiles").insert({"user_id": user, "display_name": "Virk"})
        countries = await Country.query().preload("first_profile").order_by("id")
        assert [
            None if c.first_profile is None else c.first_profile.display_name for c in countries
        ] == ["Virk", None]
