"""lucid_orm's benchmark harness: lucid_orm, the bare drivers and peer ORMs side by side on the
same schema and data (issue #6). Run with ``make bench``; see bench/README.md."""
