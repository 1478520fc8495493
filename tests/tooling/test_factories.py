"""Model factories (Lucid's ``factory_builder``/``factory_model`` specs and the per-relation
factory specs): define, states, merge, make / make_stubbed / create and their many-forms,
``with_`` for every relation kind (nested, pivot attributes), hooks, clients, seeding, and one
transaction per call — all or nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    IntegrityError,
    LucidError,
    belongs_to,
    column,
    has_many,
    has_many_through,
    has_one,
    many_to_many,
)
from lucid_orm.database import Database
from lucid_orm.factories import (
    Factory,
    FactoryBuilder,
    FactoryBuilderQuery,
    FactoryContext,
    FactoryModel,
)
from lucid_orm.relations import BelongsTo, HasMany, HasManyThrough, HasOne, ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Skill


class Country(models.Country):
    posts: HasManyThrough[Post] = has_many_through(lambda: Post, through=lambda: User)


class Profile(models.Profile):
    user: BelongsTo[User] = belongs_to(lambda: User)


class Comment(models.Comment):
    user_id: int | None = column()


class Post(models.Post):
    body: str | None = column()
    is_published: bool | None = column()
    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")
    comments: HasMany[Comment] = has_many(lambda: Comment)


class Task(BaseModel):
    table = "hm_tasks"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    name: str = column()


class User(models.User):
    email: str | None = column()
    profile: HasOne[Profile] = has_one(lambda: Profile)
    posts: HasMany[Post] = has_many(lambda: Post)
    tasks: HasMany[Task] = has_many(lambda: Task)
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill, pivot_columns=["proficiency"], pivot_timestamps=True
    )


UserFactory: FactoryBuilderQuery[User]  # defined below; the lambdas refer to it

SkillFactory = Factory.define(Skill, lambda faker: {"name": faker.word()}).build()
CommentFactory = Factory.define(Comment, lambda faker: {"body": faker.sentence()}).build()
ProfileFactory = (
    Factory.define(Profile, lambda faker: {"display_name": faker.name()})
    .relation("user", lambda: UserFactory)
    .build()
)
PostFactory = (
    Factory.define(Post, lambda faker: {"title": faker.sentence(), "is_published": False})
    .state("published", lambda post: post.merge({"is_published": True}))
    .relation("author", lambda: UserFactory)
    .relation("comments", lambda: CommentFactory)
    .build()
)
TaskFactory = Factory.define(Task, lambda faker: {"name": faker.uuid4()}).build()
UserFactory = (
    Factory.define(User, lambda faker: {"email": faker.email(), "points": 0})
    .state("rich", lambda user: user.merge({"points": 100}))
    .state("named", lambda user, ctx: user.merge({"username": ctx.faker.user_name()}))
    .relation("profile", lambda: ProfileFactory)
    .relation("posts", lambda: PostFactory)
    .relation("tasks", lambda: TaskFactory)
    .relation("skills", lambda: SkillFactory)
    .build()
)


@pytest.fixture(autouse=True)
def reset_factory_state() -> Iterator[None]:
    yield
    Factory.stub_id(None)


async def count(model: type[BaseModel]) -> int:
    return await model.query().count_rows()


# -- define, states, merge, make ---------------------------------------------------------------
class TestMake:
    def test_make_returns_an_unsaved_instance(self) -> None:
        with count_queries() as log:
            user = UserFactory.make()
        assert log.count == 0
        assert isinstance(user, User)
        assert not user.is_persisted
        assert "@" in (user.email or "")
        assert user.points == 0
        assert user.id is None

    def test_build_and_builder_types(self) -> None:
        model = Factory.define(User, lambda: {})
        assert isinstance(model, FactoryModel)
        built = model.build()
        assert isinstance(built, FactoryBuilderQuery)
        assert built.model is User
        assert isinstance(built.merge({}), FactoryBuilder)
        assert built.query() is not built.query()  # a fresh builder per call

    def test_define_without_faker_parameter_and_with_ctx(self) -> None:
        seen: list[Any] = []

        def define(faker: Any, ctx: FactoryContext) -> dict[str, Any]:
            seen.append(ctx)
            return {"email": faker.email()}

        assert Factory.define(User, lambda: {"email": "x@y.z"}).build().make().email == "x@y.z"
        Factory.define(User, define).build().make()
        assert isinstance(seen[0], FactoryContext)
        assert seen[0].is_stubbed is False and seen[0].trx is None

    def test_define_may_return_an_instance(self) -> None:
        factory = Factory.define(User, lambda: User(email="inst@x.io")).build()
        assert factory.make().email == "inst@x.io"

    def test_define_must_return_attributes(self) -> None:
        factory = Factory.define(User, lambda: ["nope"]).build()  # type: ignore[arg-type, return-value]
        with pytest.raises(LucidError, match='factory of "User" must return a mapping'):
            factory.make()

    def test_merge_overrides_define(self) -> None:
        user = UserFactory.merge({"email": "ada@x.io", "username": "ada"}).make()
        assert (user.email, user.username, user.points) == ("ada@x.io", "ada", 0)

    def test_merge_list_per_row(self) -> None:
        users = UserFactory.merge([{"username": "a"}, {"username": "b"}]).make_many(3)
        assert [u.username for u in users] == ["a", "b", None]

    def test_merge_list_uses_first_row_for_single_make(self) -> None:
        assert UserFactory.merge([{"username": "a"}, {"username": "b"}]).make().username == "a"

    def test_merge_unknown_attribute(self) -> None:
        with pytest.raises(LucidError) as info:
            UserFactory.merge({"nope": 1}).make()
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"

    def test_merge_rejects_bad_input(self) -> None:
        with pytest.raises(LucidError, match="expects a mapping of attributes or a list"):
            UserFactory.merge("email")  # type: ignore[arg-type]

    def test_apply_states(self) -> None:
        user = UserFactory.apply("rich", "named").make()
        assert user.points == 100
        assert user.username

    def test_states_run_after_merge(self) -> None:
        assert UserFactory.merge({"points": 5}).apply("rich").make().points == 100

    def test_state_applied_twice_runs_once(self) -> None:
        calls: list[int] = []
        factory = (
            Factory.define(User, lambda: {}).state("count", lambda user: calls.append(1)).build()
        )
        factory.apply("count").apply("count", "count").make()
        assert calls == [1]

    def test_state_receives_builder(self) -> None:
        seen: list[Any] = []
        factory = (
            Factory.define(User, lambda: {})
            .state("spy", lambda user, ctx, builder: seen.append((ctx, builder)))
            .build()
        )
        builder = factory.apply("spy")
        builder.make()
        assert seen[0][1] is builder
        assert isinstance(seen[0][0], FactoryContext)

    def test_undefined_state(self) -> None:
        with pytest.raises(LucidError) as info:
            UserFactory.apply("nope")
        assert str(info.value) == (
            'Cannot apply undefined state "nope". Double check the model factory'
        )

    def test_make_many(self) -> None:
        users = UserFactory.make_many(3)
        assert len(users) == 3
        assert len({u.email for u in users}) == 3
        assert UserFactory.make_many(0) == []
        with pytest.raises(LucidError, match="expects a count"):
            UserFactory.make_many(-1)

    def test_make_ignores_relations(self) -> None:
        user = UserFactory.with_("posts", 2).make()
        assert "posts" not in user.preloaded

    def test_tap(self) -> None:
        user = UserFactory.apply("rich").tap(lambda u: u.merge({"points": 1})).make()
        assert user.points == 1  # taps run last

    def test_custom_new_up_and_merge(self) -> None:
        def new_up(attrs: Any, ctx: Any, model: type[User], builder: Any) -> User:
            user = model(**attrs)
            user.extras["made_by"] = "new_up"
            return user

        def merge(user: User, attrs: dict[str, Any]) -> None:
            user.merge({k: v.upper() for k, v in attrs.items()})

        factory = Factory.define(User, lambda: {"email": "a"}).new_up(new_up).merge(merge).build()
        user = factory.merge({"username": "ada"}).make()
        assert user.extras == {"made_by": "new_up"}
        assert (user.email, user.username) == ("a", "ADA")

    def test_async_callbacks_are_refused(self) -> None:
        async def define() -> dict[str, Any]:
            return {}

        with pytest.raises(LucidError, match="define callback of a factory must be synchronous"):
            Factory.define(User, define).build().make()  # type: ignore[arg-type]

        async def state(user: User) -> None:
            pass

        factory = Factory.define(User, lambda: {}).state("later", state).build()
        with pytest.raises(LucidError, match='"later" state callback'):
            factory.apply("later").make()

    def test_after_make_hook(self) -> None:
        seen: list[Any] = []
        factory = (
            Factory.define(User, lambda: {})
            .after("make", lambda builder, user, ctx: seen.append((builder, user, ctx)))
            .build()
        )
        builder = factory.query()
        user = builder.make()
        assert seen[0][0] is builder and seen[0][1] is user
        assert isinstance(seen[0][2], FactoryContext)

    def test_unknown_hook_event(self) -> None:
        with pytest.raises(LucidError, match='Unknown factory hook "before:make"'):
            Factory.define(User, lambda: {}).before("make", lambda: None)  # type: ignore[arg-type]


class TestDefinitionErrors:
    def test_define_needs_a_model(self) -> None:
        with pytest.raises(LucidError, match="expects a model class"):
            Factory.define(dict, lambda: {})  # type: ignore[type-var]

    def test_relation_must_exist_on_model(self) -> None:
        with pytest.raises(LucidError) as info:
            Factory.define(User, lambda: {}).relation("nope", lambda: PostFactory)
        assert str(info.value) == (
            'Cannot define "nope" relationship. The relationship must exist on the "User" '
            "model first"
        )

    def test_has_many_through_has_no_persistence(self) -> None:
        with pytest.raises(LucidError) as info:
            Factory.define(Country, lambda: {}).relation("posts", lambda: PostFactory)
        assert str(info.value) == (
            'Cannot define "posts" relationship. "hasManyThrough" relationship does not have '
            "any persistence API"
        )

    def test_with_an_unregistered_relation(self) -> None:
        factory = Factory.define(Post, lambda: {}).build()
        with pytest.raises(LucidError) as info:
            factory.with_("author")
        assert str(info.value) == (
            'Cannot reference "author" relationship. Make sure to setup the relationship '
            "within the factory"
        )

    def test_relation_factory_must_be_built(self) -> None:
        factory = (
            Factory.define(Post, lambda: {})
            .relation("author", lambda: Factory.define(User, lambda: {}))  # type: ignore[arg-type, return-value]
            .build()
        )
        with pytest.raises(LucidError, match="must be a built factory"):
            factory.with_("author").make_stubbed()


class TestMakeStubbed:
    def test_assigns_ids(self) -> None:
        first, second = UserFactory.make_stubbed_many(2)
        assert isinstance(first.id, int) and second.id == first.id + 1
        assert not first.is_persisted

    def test_custom_stub_id(self) -> None:
        Factory.stub_id(lambda counter, model: f"{type(model).__name__}-{counter}")
        Factory.seed(1)
        assert UserFactory.make_stubbed().id == "User-1"  # type: ignore[comparison-overlap]

    def test_keeps_an_explicit_id(self) -> None:
        assert UserFactory.merge({"id": 500}).make_stubbed().id == 500

    def test_relations_are_stubbed(self) -> None:
        user = (
            UserFactory.with_("posts", 2, lambda p: p.with_("comments", 2))
            .with_("profile")
            .with_("skills", 2)
            .make_stubbed()
        )
        assert len(user.posts) == 2
        assert all(p.user_id == user.id and p.id is not None for p in user.posts)
        assert all(c.post_id == p.id for p in user.posts for c in p.comments)
        assert user.profile is not None and user.profile.user_id == user.id
        assert len(user.skills) == 2
        assert not any(s.is_persisted for s in user.skills)

    def test_belongs_to_is_stubbed(self) -> None:
        post = PostFactory.with_("author", lambda a: a.apply("rich")).make_stubbed()
        assert post.author is not None
        assert post.user_id == post.author.id
        assert post.author.points == 100

    def test_stubbed_hooks(self) -> None:
        events: list[str] = []
        factory = (
            Factory.define(User, lambda: {})
            .after("make", lambda: events.append("after:make"))
            .before("make_stubbed", lambda b, user: events.append(f"before:{user.id}"))
            .after("make_stubbed", lambda b, user, ctx: events.append(f"after:{ctx.is_stubbed}"))
            .build()
        )
        factory.merge({"id": 7}).make_stubbed()
        assert events == ["after:make", "before:7", "after:True"]


class TestSeed:
    def test_seed_repeats_the_data(self) -> None:
        Factory.seed(42)
        first = [u.email for u in UserFactory.make_many(3)]
        ids = [u.id for u in UserFactory.make_stubbed_many(2)]
        Factory.seed(42)
        assert [u.email for u in UserFactory.make_many(3)] == first
        assert [u.id for u in UserFactory.make_stubbed_many(2)] == ids == [1, 2]
        Factory.seed(43)
        assert [u.email for u in UserFactory.make_many(3)] != first

    def test_use_faker(self) -> None:
        from faker import Faker

        previous = Factory.faker()
        try:
            Factory.use_faker(Faker("fr_FR"))
            assert Factory.faker() is not previous
            Factory.seed(1)
            assert UserFactory.make().email
        finally:
            Factory.use_faker(previous)

    def test_missing_faker(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(Factory, "_faker", None)
        monkeypatch.setitem(sys.modules, "faker", None)
        with pytest.raises(LucidError) as info:
            UserFactory.make()
        assert info.value.code == "E_MISSING_DEPENDENCY"
        assert 'pip install "lucid-orm[factories]"' in str(info.value)
        # A factory that takes no faker needs none.
        assert Factory.define(User, lambda: {"email": "a"}).build().make().email == "a"


# -- create ------------------------------------------------------------------------------------
class TestCreate:
    async def test_create(self, database: Database) -> None:
        with count_queries() as log:
            user = await UserFactory.apply("rich").create()
        assert log.count == 1
        assert user.is_persisted and user.id is not None
        assert user.trx is None  # the factory's transaction is over
        fresh = await User.find_or_fail(user.id)
        assert (fresh.email, fresh.points) == (user.email, 100)

    async def test_create_many(self, database: Database) -> None:
        with count_queries() as log:
            users = await UserFactory.merge([{"username": "a"}, {"username": "b"}]).create_many(3)
        assert log.count == 3
        assert all(e.in_transaction for e in log.events)
        assert [u.username for u in users] == ["a", "b", None]
        assert await count(User) == 3
        assert await UserFactory.create_many(0) == []

    async def test_hooks(self, database: Database) -> None:
        events: list[Any] = []

        async def after_create(builder: Any, user: User, ctx: FactoryContext) -> None:
            assert ctx.trx is not None and user.trx is ctx.trx
            # The hook runs inside the factory's transaction.
            events.append(await User.query(client=ctx.trx).where("id", user.id).count_rows())

        factory = (
            Factory.define(User, lambda: {"email": "a@x.io"})
            .after("make", lambda b, user: events.append("make"))
            .before("create", lambda b, user: events.append(user.is_persisted))
            .after("create", after_create)
            .build()
        )
        await factory.create()
        assert events == ["make", False, 1]

    async def test_failing_create_leaves_nothing(self, database: Database) -> None:
        calls = {"n": 0}

        def boom(user: User) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await UserFactory.tap(boom).create_many(3)
        assert await count(User) == 0

    async def test_failing_hook_leaves_nothing(self, database: Database) -> None:
        async def fail(builder: Any, user: User) -> None:
            raise RuntimeError("after create failed")

        factory = Factory.define(User, lambda: {}).after("create", fail).build()
        with pytest.raises(RuntimeError):
            await factory.create()
        assert await count(User) == 0

    async def test_unknown_attribute_writes_nothing(self, database: Database) -> None:
        with count_queries() as log, pytest.raises(LucidError) as info:
            await UserFactory.merge({"nope": 1}).create()
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert log.count == 0

    async def test_client_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        user = await UserFactory.client(trx).create()
        assert user.trx is trx  # handed over by the factory's savepoint
        assert await User.query(client=trx).count_rows() == 1
        assert await count(User) == 0  # not committed
        # A failure inside rolls back only the factory's savepoint.
        with pytest.raises(IntegrityError):
            await (
                UserFactory.client(trx)
                .with_("tasks", 2, lambda t: t.merge({"name": "same"}))
                .create()
            )
        assert await User.query(client=trx).count_rows() == 1
        await trx.rollback()
        assert await count(User) == 0

    async def test_connection(self, database: Database) -> None:
        name = database.primary_connection_name
        user = await UserFactory.connection(name).create()
        assert await User.find(user.id) is not None
        with pytest.raises(LucidError) as info:
            await UserFactory.connection("nope").create()
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"


# -- relations ---------------------------------------------------------------------------------
class TestWithBelongsTo:
    async def test_creates_the_parent_first(self, database: Database) -> None:
        with count_queries() as log:
            post = await PostFactory.with_("author").create()
        assert log.count == 2
        assert "users" in log.sqls[0] and "posts" in log.sqls[1]
        assert post.author is not None and post.author.is_persisted
        assert post.user_id == post.author.id
        fresh = await Post.query().preload("author").where("id", post.id).first_or_fail()
        assert fresh.author is not None and fresh.author.email == post.author.email

    async def test_callback_configures_the_parent(self, database: Database) -> None:
        post = await PostFactory.with_("author", lambda a: a.apply("rich")).create()
        assert post.author is not None and post.author.points == 100

    async def test_create_many_makes_one_parent_each(self, database: Database) -> None:
        posts = await PostFactory.with_("author").create_many(2)
        assert len({p.user_id for p in posts}) == 2
        assert await count(User) == 2

    async def test_failure_after_the_parent_rolls_it_back(self, database: Database) -> None:
        def late() -> None:
            raise RuntimeError("late")

        factory = (
            Factory.define(Profile, lambda: {})
            .relation("user", lambda: UserFactory)
            .after("create", late)
            .build()
        )
        with pytest.raises(RuntimeError, match="late"):
            await factory.with_("user").create()
        assert await count(User) == 0
        assert await count(Profile) == 0


class TestWithHasOne:
    async def test_create(self, database: Database) -> None:
        with count_queries() as log:
            user = await UserFactory.with_("profile", 5).create()  # count is ignored
        assert log.count == 2
        assert user.profile is not None and user.profile.user_id == user.id
        assert await count(Profile) == 1

    async def test_merge_cannot_override_the_foreign_key(self, database: Database) -> None:
        user = await UserFactory.with_(
            "profile", lambda p: p.merge({"user_id": 999, "bio": "hi"})
        ).create()
        assert user.profile is not None
        assert (user.profile.user_id, user.profile.bio) == (user.id, "hi")


class TestWithHasMany:
    async def test_create(self, database: Database) -> None:
        with count_queries() as log:
            user = await UserFactory.with_("posts", 3).create()
        assert log.count == 4
        assert len(user.posts) == 3
        assert all(p.is_persisted and p.user_id == user.id for p in user.posts)
        loaded = await User.query().preload("posts").where("id", user.id).first_or_fail()
        assert sorted(p.id for p in loaded.posts) == sorted(p.id for p in user.posts)

    async def test_callback_merge_and_states(self, database: Database) -> None:
        user = await (
            UserFactory.with_("posts", 2, lambda p: p.apply("published").merge([{"title": "a"}]))
            .with_("posts", 1)
            .create()
        )
        assert [p.title for p in user.posts][:1] == ["a"]
        assert [p.is_published for p in user.posts] == [True, True, False]
        assert await Post.query().where("user_id", user.id).count_rows() == 3

    async def test_nested(self, database: Database) -> None:
        with count_queries() as log:
            user = await UserFactory.with_(
                "posts", 2, lambda post: post.with_("comments", 3, lambda c: c.merge({"body": "b"}))
            ).create()
        assert log.count == 1 + 2 + 6
        assert await count(Comment) == 6
        for post in user.posts:
            assert [c.post_id for c in post.comments] == [post.id] * 3
            assert all(c.body == "b" for c in post.comments)

    async def test_builder_parent(self, database: Database) -> None:
        def title(post: Post, ctx: FactoryContext, builder: FactoryBuilder[Post]) -> None:
            parent = builder.parent
            assert isinstance(parent, User)
            post.merge({"title": f"by {parent.email}"})

        user = await UserFactory.with_("posts", 1, lambda p: p.tap(title)).create()
        assert user.posts[0].title == f"by {user.email}"

    async def test_merge_recursive(self, database: Database) -> None:
        user = await (
            UserFactory.merge_recursive({"body": "shared", "username": "rec"})
            .with_("posts", 1, lambda p: p.with_("comments", 2))
            .create()
        )
        assert user.username == "rec"  # applied where the column exists
        assert user.posts[0].body == "shared"
        assert [c.body for c in user.posts[0].comments] == ["shared", "shared"]

    async def test_failure_rolls_everything_back(self, database: Database) -> None:
        await UserFactory.create()  # a row from before stays
        with pytest.raises(IntegrityError):
            await (
                UserFactory.with_("posts", 2)
                .with_("tasks", 2, lambda t: t.merge({"name": "dup"}))
                .create()
            )
        assert await count(User) == 1
        assert await count(Post) == 0
        assert await count(Task) == 0


class TestWithManyToMany:
    async def test_create(self, database: Database) -> None:
        with count_queries() as log:
            user = await UserFactory.with_("skills", 2).create()
        assert log.count == 4  # user, 2 skills, one pivot insert
        assert len(user.skills) == 2 and all(s.is_persisted for s in user.skills)
        rows = await user.related("skills").pivot_query().order_by("skill_id")
        assert [r["skill_id"] for r in rows] == sorted(s.id for s in user.skills)
        assert all(r["created_at"] is not None for r in rows)

    async def test_pivot_attributes(self, database: Database) -> None:
        user = await UserFactory.with_(
            "skills",
            2,
            lambda s: s.merge([{"name": "dancing"}, {"name": "coding"}]).pivot_attributes(
                {"proficiency": "master"}
            ),
        ).create()
        skills = await user.related("skills").query().order_by("name")
        assert [(s.name, s.extras["pivot_proficiency"]) for s in skills] == [
            ("coding", "master"),
            ("dancing", "master"),
        ]

    async def test_pivot_attributes_per_row(self, database: Database) -> None:
        user = await UserFactory.with_(
            "skills",
            3,
            lambda s: s.pivot_attributes([{"proficiency": "a"}, {"proficiency": "b"}]),
        ).create()
        by_id = {s.id: s.extras["pivot_proficiency"] for s in await user.related("skills").query()}
        assert [by_id[s.id] for s in user.skills] == ["a", "b", None]

    async def test_failure_leaves_no_pivot_rows(self, database: Database) -> None:
        with pytest.raises(LucidError):
            await UserFactory.with_("skills", 1, lambda s: s.pivot_attributes({"nope": 1})).create()
        assert await count(User) == 0
        assert await count(Skill) == 0
        assert await database.from_("skill_user").count_rows() == 0


def test_factory_relation_kinds() -> None:
    model: FactoryModel[User] = UserFactory.factory
    assert {name: type(r).__name__ for name, r in model.relations.items()} == {
        "profile": "FactoryHasOne",
        "posts": "FactoryHasMany",
        "tasks": "FactoryHasMany",
        "skills": "FactoryManyToMany",
    }


def test_context() -> None:
    ctx = FactoryContext(True, None)
    assert ctx.trx is None and ctx.is_stubbed
    assert ctx.faker is Factory.faker()
