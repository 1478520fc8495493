"""Configuration of the ``lucid-orm`` command line for the example: run it from this folder,
e.g. ``python -m lucid_orm migration:status``. Same database as the app: ``DATABASE_URL``,
else ``tmp/app.db``."""

import os

DATABASE = {"url": os.environ.get("DATABASE_URL") or "sqlite:///tmp/app.db"}
