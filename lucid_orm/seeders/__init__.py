"""Seeders (Lucid's seeders): files of ``BaseSeeder`` subclasses that write seed data, run in
name order by ``SeedsRunner``."""

from .base_seeder import BaseSeeder
from .runner import SeederStatus, SeedsRunner

__all__ = ["BaseSeeder", "SeederStatus", "SeedsRunner"]
