"""The FastAPI example: ``app.main`` (the API), ``app.models`` and ``app.schemas``."""
