"""``Factory``: the entry point of model factories (Lucid's ``factory`` manager) — defines
factories and owns what they share: the Faker instance and the ids of stubbed models."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import LucidError
from ..orm.base_model import BaseModel

if TYPE_CHECKING:
    from faker import Faker

    from .factory_model import FactoryModel

M = TypeVar("M", bound=BaseModel)

StubIdCallback = Callable[[int, BaseModel], Any]


class Factory:
    """Define model factories and configure what they share::

        UserFactory = (
            Factory.define(User, lambda faker: {"email": faker.email()})
            .state("admin", lambda user: user.merge({"is_admin": True}))
            .relation("posts", lambda: PostFactory)
            .build()
        )
        user = await UserFactory.with_("posts", 3).create()

    Fake data comes from one shared ``faker.Faker`` instance (the optional ``factories``
    extra: ``pip install "lucid-orm[factories]"``), imported on first use. ``Factory.seed(n)``
    makes the generated data repeatable.
    """

    _faker: ClassVar[Faker | None] = None
    _stub_counter: ClassVar[int] = 1
    _stub_id: ClassVar[StubIdCallback | None] = None

    @classmethod
    def define(
        cls, model: type[M], callback: Callable[..., Mapping[str, Any] | M]
    ) -> FactoryModel[M]:
        """Start a factory for ``model``. ``callback(faker)`` (or ``callback(faker, ctx)``,
        or ``callback()``) returns the attributes of a new instance — or the instance itself.
        Chain ``.state()``, ``.relation()``, hooks, then ``.build()``."""
        from .factory_model import FactoryModel

        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise LucidError(
                f"Factory.define() expects a model class, got {model!r}", code="E_INVALID_FACTORY"
            )
        if not callable(callback):
            raise LucidError(
                "Factory.define() expects a callback returning the model attributes",
                code="E_INVALID_FACTORY",
            )
        return FactoryModel(model, callback)

    @classmethod
    def faker(cls) -> Faker:
        """The ``Faker`` instance factories use (created on first use)."""
        if cls._faker is None:
            try:
                from faker import Faker
            except ImportError as exc:
                raise LucidError(
                    "Model factories generate data with Faker, which is not installed: "
                    'pip install "lucid-orm[factories]" (or pip install faker)',
                    code="E_MISSING_DEPENDENCY",
                ) from exc
            cls._faker = Faker()
        return cls._faker

    @classmethod
    def use_faker(cls, faker: Faker) -> None:
        """Use ``faker`` from now on (another locale: ``Factory.use_faker(Faker("fr_FR"))``)."""
        cls._faker = faker

    @classmethod
    def seed(cls, seed: int) -> None:
        """Seed the shared Faker instance and restart stub ids at 1: the same factory calls
        then produce the same data."""
        cls.faker().seed_instance(seed)
        cls._stub_counter = 1

    @classmethod
    def stub_id(cls, callback: StubIdCallback | None) -> None:
        """How ``make_stubbed()`` picks primary keys: ``callback(counter, model)``, where
        ``counter`` counts up from 1 (the default id). ``None`` restores the default."""
        cls._stub_id = callback

    @classmethod
    def next_stub_id(cls, model: BaseModel) -> Any:
        """The primary key for the next stubbed ``model``."""
        counter = cls._stub_counter
        cls._stub_counter += 1
        return cls._stub_id(counter, model) if cls._stub_id is not None else counter
