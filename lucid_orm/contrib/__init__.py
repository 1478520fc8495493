"""Integrations with other libraries, one module each (``lucid_orm.contrib.fastapi``, …),
imported only when used: ``import lucid_orm`` never imports them. Each module needs its extra
(``pip install 'lucid-orm[fastapi]'``) and raises a ``LucidError`` naming it when it is missing."""
