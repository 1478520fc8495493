"""Configuration of the ``lucid-orm`` command line for the blog: run it from this folder, e.g.
``python -m lucid_orm migration:status`` after ``main.py`` made ``tmp/blog.db``."""

DATABASE = {"url": "sqlite:///tmp/blog.db"}
SCHEMA_OUTPUT = "database/schema.py"
