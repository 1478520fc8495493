"""The blog application."""
