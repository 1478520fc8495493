"""``python -m lucid_orm``: the ``lucid-orm`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
