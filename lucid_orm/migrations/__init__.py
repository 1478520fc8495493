"""Migrations: ``BaseSchema`` (a migration file's class) and the ``Migrator`` that runs them
(``run``, ``rollback``, ``reset``, ``refresh``, ``fresh``, ``status``)."""

from ..errors import MigrationError
from .migrator import (
    MigratedFile,
    MigrationEvent,
    MigrationFile,
    MigrationResult,
    MigrationStatus,
    Migrator,
)
from .schema import BaseSchema

__all__ = [
    "BaseSchema",
    "MigratedFile",
    "MigrationError",
    "MigrationEvent",
    "MigrationFile",
    "MigrationResult",
    "MigrationStatus",
    "Migrator",
]
