"""The files ``make:*`` writes (Lucid's stubs, in Python): each function returns the source of
one file, formatted as ``ruff format`` would and with imports sorted as isort sorts them."""

from __future__ import annotations


def model(class_name: str, table: str) -> str:
    """A ``BaseModel`` subclass with an id and Lucid's timestamps."""
    return f'''"""The ``{class_name}`` model (table ``{table}``)."""

from datetime import datetime

from lucid_orm import BaseModel, column


class {class_name}(BaseModel):
    id: int = column(is_primary=True)
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime = column.date_time(auto_create=True, auto_update=True)
'''


def _migration(class_name: str, table: str, summary: str, methods: str) -> str:
    """A migration file: its docstring, imports and class, with ``methods`` as its body."""
    return f'''"""{summary}"""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class {class_name}(BaseSchema):
    table_name = "{table}"

{methods}'''


def create_table_migration(class_name: str, table: str) -> str:
    """A migration creating ``table`` (dropping it on rollback)."""
    methods = """    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.timestamp("created_at")
            table.timestamp("updated_at")

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
"""
    return _migration(class_name, table, f"Create the ``{table}`` table.", methods)


def alter_table_migration(class_name: str, table: str) -> str:
    """A migration altering ``table``: both directions are left for the user to fill."""
    methods = '''    async def up(self) -> None:
        def alter(table: TableBuilder) -> None:
            """Add, change or drop columns: ``table.string("name")``."""

        self.schema.alter_table(self.table_name, alter)

    async def down(self) -> None:
        def revert(table: TableBuilder) -> None:
            """Undo what ``up`` did: ``table.drop_column("name")``."""

        self.schema.alter_table(self.table_name, revert)
'''
    return _migration(class_name, table, f"Alter the ``{table}`` table.", methods)


def seeder(class_name: str) -> str:
    """A ``BaseSeeder`` subclass with an empty ``run``."""
    return f'''"""Seed data, written by ``lucid-orm db:seed``."""

from lucid_orm.seeders import BaseSeeder


class {class_name}(BaseSeeder):
    async def run(self) -> None:
        """Write the seed data, on ``self.client``."""
'''


def factory(
    factory_name: str, model_class: str, model_module: str, model_is_first_party: bool
) -> str:
    """A model factory for ``model_module.model_class``.

    ``model_is_first_party`` places the model import as ruff's isort would: in its own
    section when the model's package exists in the project, else among the third-party ones.
    """
    model_import = f"from {model_module} import {model_class}"
    third_party = ["from faker import Faker", "from lucid_orm.factories import Factory"]
    if model_is_first_party:
        imports = "\n".join(third_party) + "\n\n" + model_import
    else:
        imports = "\n".join(sorted([*third_party, model_import], key=_import_key))
    return f'''"""The ``{model_class}`` model factory: ``await {factory_name}.create()``."""

from typing import Any

{imports}


def _attributes(faker: Faker) -> dict[str, Any]:
    """A new instance's attributes, e.g. ``{{"email": faker.email()}}``."""
    return {{}}


{factory_name} = Factory.define({model_class}, _attributes).build()
'''


def _import_key(line: str) -> str:
    return line.split()[1].lower()
