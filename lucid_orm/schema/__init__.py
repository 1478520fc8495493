"""Schema building for migrations: ``Schema`` (``self.schema``) and its table builders."""

from .builder import ColumnBuilder, Schema, TableBuilder

__all__ = ["ColumnBuilder", "Schema", "TableBuilder"]
