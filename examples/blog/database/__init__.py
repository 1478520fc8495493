"""Migrations, the generated schema classes, factories and seeders of the blog."""
