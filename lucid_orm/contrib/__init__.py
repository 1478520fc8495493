"""Integrations with other libraries: FastAPI, OpenTelemetry."""
