"""The example app (``examples/blog``, what ``make demo`` runs), as a subprocess on a fresh
SQLite file: it must exit cleanly, print each section's key results and keep
``database/schema.py`` in step with its migrations. SQLite only: the app embeds its database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("faker", reason="the example's seeders need the `factories` extra")

MAIN = Path(__file__).resolve().parents[1] / "examples" / "blog" / "main.py"

# Lines (with runs of spaces collapsed to one) the demo must print; the data comes from a
# seeded Faker, so only what does not depend on Faker's version is checked.
EXPECTED = [
    # 1. migrations, 2. schema classes, 3. seeders
    "✓ 1732190400001_create_countries_table",
    "✓ 1732190400006_create_tags_table",
    "batch 1: 7 migrations run",
    "database/schema.py is up to date with the migrations",
    "posts PostsSchema",
    "class Post(PostsSchema)",
    "✓ 01_country_seeder completed",
    "✓ 04_discussion_seeder completed",
    "✓ 05_like_seeder completed",
    "rows: countries 5, users 12, profiles 10,",
    # 4. preload
    'Relation "author" of "Post" is not loaded: use preload("author")',
    "3 users and 6 relations: 7 queries User → Country → Profile → Post → Tag → Comment → User",
    'preload("post.author"), a dotted path: 3 queries',
    # 5. has family
    "users with posts",
    "WHERE (SELECT count(*) AS count FROM posts WHERE posts.user_id = users.id) >= ? [4]",
    # 6. aggregates
    "12 users with 4 aggregates each: 1 query",
    "Ada Lovelace",
    # 7. belongs_to
    'related("author").dissociate() user_id=None, author=None',
    "in the database user_id=None (the post is kept)",
    # 8. has_many / has_one
    'post.related("comments").create_many([...]) 3 rows',
    "post_id set on each True",
    # 9. many_to_many
    "attach({sql: 5, orm: 3}) orm(3), sql(5)",
    "sync({orm: 4, python: 2}) orm(4), python(2)",
    "sync([testing], detach=False) orm(4), python(2), testing(1)",
    "detach([python]) orm(4), testing(1)",
    'where_pivot("relevance", ">=", 3) orm',
    "pivot_query(): rows, timestamps set 2 rows, True",
    # 10. has_many_through
    "5 countries, post counts, top 2 posts: 2 queries",
    "New Zealand 0 posts -",
    # 11. pagination
    '"per_page": 4,',
    '"current_page": 2,',
    '"next_page_url": "/posts?page=3",',
    # 12. serialization
    '"full_name": "Ada Lovelace",',
    '"initials": "AL"',
    '"password" in ada.serialize() False',
    # 13. transactions
    'rolled back on "changed my mind": Ada\'s posts 6 (was 6)',
    "votes restored True",
    "create_many with a NULL body IntegrityError, 0 rows written",
    # 14. polymorphic
    "6 likes, their users and targets: 6 queries Like → User → Post → User → Comment → Post",
    'post.related("likes").first_or_create(...) post #',
    "associate(comment): stored type and id comment #",
]


def test_the_blog_example_runs_and_prints_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LUCID_ENV": "development"}
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(MAIN), "--database", str(tmp_path / "blog.db"), "--check"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )
    took = time.perf_counter() - started
    assert run.returncode == 0, f"exit code {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stderr, run.stderr
    out = re.sub(r" +", " ", run.stdout)
    missing = [text for text in EXPECTED if text not in out]
    assert not missing, f"missing from the output: {missing}\n{run.stdout}"
    headers = re.findall(r"^(\d+)\. ", run.stdout, flags=re.M)
    assert headers == [str(n) for n in range(1, 15)]
    assert re.search(r"^Done: \d+ SQL statements in [\d.]+ s\.$", run.stdout, flags=re.M)
    assert took < 60, f"the demo took {took:.1f} s"
