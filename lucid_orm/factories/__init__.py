"""Model factories (Lucid's factories): fake model instances — unsaved, stubbed or created
with their relations in one transaction. Fake data comes from Faker (``lucid-orm[factories]``)::

    from lucid_orm.factories import Factory

    UserFactory = Factory.define(User, lambda faker: {"email": faker.email()}).build()
    users = await UserFactory.create_many(3)
"""

from .factory_builder import FactoryBuilder, FactoryBuilderQuery
from .factory_context import FactoryContext
from .factory_model import FactoryModel
from .main import Factory
from .relations import FactoryRelation

__all__ = [
    "Factory",
    "FactoryBuilder",
    "FactoryBuilderQuery",
    "FactoryContext",
    "FactoryModel",
    "FactoryRelation",
]
