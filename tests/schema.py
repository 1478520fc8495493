"""The SQLAlchemy Core schema every database test runs against, created once per dialect.

The tables are FK-free (so tests may insert rows in any order) except ``memberships``, which
exists to provoke foreign-key violations.
"""

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()


def _pk() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


# MySQL's DATETIME drops microseconds unless asked for them; keep them so values round-trip.
_DateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _timestamps() -> list[Column[Any]]:
    return [
        Column("created_at", _DateTime, nullable=True),
        Column("updated_at", _DateTime, nullable=True),
    ]


countries = Table("countries", metadata, _pk(), Column("name", String(255)))

users = Table(
    "users",
    metadata,
    _pk(),
    Column("country_id", Integer, nullable=True),
    Column("username", String(100), nullable=True),
    Column("email", String(255), nullable=True),
    Column("is_active", Boolean, nullable=True, default=False, server_default=false()),
    Column("points", Integer, nullable=True, default=0, server_default=text("0")),
    Column("meta", JSON, nullable=True),
    *_timestamps(),
)

profiles = Table(
    "profiles",
    metadata,
    _pk(),
    Column("user_id", Integer, nullable=True),
    Column("display_name", String(255), nullable=True),
    Column("bio", Text, nullable=True),
    *_timestamps(),
)

posts = Table(
    "posts",
    metadata,
    _pk(),
    Column("user_id", Integer, nullable=True),
    Column("title", String(255), nullable=True),
    Column("body", Text, nullable=True),
    Column("is_published", Boolean, nullable=True),
    Column("score", Integer, nullable=True),
    *_timestamps(),
)

comments = Table(
    "comments",
    metadata,
    _pk(),
    Column("post_id", Integer, nullable=True),
    Column("user_id", Integer, nullable=True),
    Column("body", Text, nullable=True),
    *_timestamps(),
)

tags = Table("tags", metadata, _pk(), Column("name", String(100)))

post_tags = Table(
    "post_tags",
    metadata,
    Column("post_id", Integer),
    Column("tag_id", Integer),
    Column("created_at", _DateTime, nullable=True),
)

skills = Table("skills", metadata, _pk(), Column("name", String(100)), *_timestamps())

skill_user = Table(
    "skill_user",
    metadata,
    _pk(),
    Column("user_id", Integer),
    Column("skill_id", Integer),
    Column("proficiency", String(50), nullable=True),
    *_timestamps(),
)

identities = Table(
    "identities",
    metadata,
    _pk(),
    Column("user_id", Integer, nullable=True),
    Column("provider", String(50), nullable=True),
)

gadgets = Table(
    "gadgets",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("name", String(100)),
    Column("price", Numeric(10, 2), nullable=True),
    Column("is_enabled", Boolean, nullable=True),
    Column("released_on", Date, nullable=True),
    Column("payload", JSON, nullable=True),
)

# Integrity-error tests: a unique column and a NOT NULL one.
things = Table(
    "things",
    metadata,
    _pk(),
    Column("name", String(100), nullable=False, unique=True),
    Column("amount", Integer, nullable=True),
)

# The one foreign key of the schema, for FK-violation tests.
memberships = Table(
    "memberships",
    metadata,
    _pk(),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("role", String(50), nullable=True),
)

# many_to_many: a pivot with foreign keys (attaching unknown ids must fail and attach nothing).
skill_user_strict = Table(
    "skill_user_strict",
    metadata,
    _pk(),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("skill_id", Integer, ForeignKey("skills.id"), nullable=False),
    Column("proficiency", String(50), nullable=True),
)

# many_to_many: a self-referencing pivot (users <-> users).
user_friends = Table(
    "user_friends",
    metadata,
    _pk(),
    Column("user_id", Integer),
    Column("friend_id", Integer),
    Column("created_at", _DateTime, nullable=True),
)

# many_to_many with every key customised: teams.code <-> players.uid through team_players
# (no id column, custom timestamp name).
m2m_teams = Table(
    "m2m_teams", metadata, _pk(), Column("code", Integer), Column("name", String(100))
)

m2m_players = Table(
    "m2m_players", metadata, _pk(), Column("uid", Integer), Column("name", String(100))
)

m2m_team_players = Table(
    "m2m_team_players",
    metadata,
    Column("team_code", Integer),
    Column("player_uid", Integer),
    Column("role", String(50), nullable=True),
    Column("joined_at", _DateTime, nullable=True),
    Column("score", Integer, nullable=True),
    Column("fee", Numeric(10, 2), nullable=True),
)

# many_to_many to a model keyed by a UUID (``gadgets.uuid``).
m2m_gadget_user = Table(
    "m2m_gadget_user",
    metadata,
    _pk(),
    Column("user_id", Integer),
    Column("gadget_uuid", String(36)),
    Column("color", String(20), nullable=True),
)

# Self-referencing belongs_to / has_one (``User.parent`` / ``User.child`` via users.parent_id).
if "parent_id" not in users.c:
    users.append_column(Column("parent_id", Integer, nullable=True))

# has_many many-write atomicity tests (``User.tasks``): a unique, NOT NULL ``name`` per row.
hm_tasks = Table(
    "hm_tasks",
    metadata,
    _pk(),
    Column("user_id", Integer, nullable=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("points", Integer, nullable=True),
)

# -- polymorphic relations (morph_to, morph_one, morph_many, morph_to_many) ---------------------
# ``Post``/``Video`` own ``morph_comments`` and ``morph_images`` by (``*_type``, ``*_id``);
# ``taggables`` is the typed pivot between ``tags`` and posts or videos.
videos = Table(
    "videos",
    metadata,
    _pk(),
    Column("user_id", Integer, nullable=True),
    Column("title", String(255), nullable=True),
)

morph_comments = Table(
    "morph_comments",
    metadata,
    _pk(),
    Column("commentable_type", String(50), nullable=True),
    Column("commentable_id", Integer, nullable=True),
    Column("body", String(255), nullable=True),
    Column("points", Integer, nullable=True),
)

morph_images = Table(
    "morph_images",
    metadata,
    _pk(),
    Column("imageable_type", String(50), nullable=True),
    Column("imageable_id", Integer, nullable=True),
    Column("url", String(255), nullable=True),
)

taggables = Table(
    "taggables",
    metadata,
    _pk(),
    Column("tag_id", Integer),
    Column("taggable_id", Integer),
    Column("taggable_type", String(50)),
    Column("note", String(100), nullable=True),
)

# -- has_one_through and deep through chains ---------------------------------------------------
# Eloquent's has-one-through example: a mechanic → the car they service (cars.mechanic_id) →
# its owner (car_owners.car_id). The deep chains go over the tables above (countries → users →
# posts → comments; users → skill_user → skills; posts → post_tags → tags).
mechanics = Table("mechanics", metadata, _pk(), Column("name", String(100), nullable=True))

cars = Table(
    "cars",
    metadata,
    _pk(),
    Column("mechanic_id", Integer, nullable=True),
    Column("model", String(100), nullable=True),
)

car_owners = Table(
    "car_owners",
    metadata,
    _pk(),
    Column("car_id", Integer, nullable=True),
    Column("name", String(100), nullable=True),
    Column("age", Integer, nullable=True),
)

# -- composite keys (tests/relations/test_composite_keys.py) -----------------------------------
# A multi-tenant shape: every table is keyed by (tenant_id, id); relations carry the tenant.
ck_accounts = Table(
    "ck_accounts",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=True),
)

ck_profiles = Table(
    "ck_profiles",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account_id", Integer, nullable=True),
    Column("bio", String(100), nullable=True),
)

ck_orders = Table(
    "ck_orders",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account_id", Integer, nullable=True),
    Column("total", Integer, nullable=True),
)

ck_lines = Table(
    "ck_lines",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", Integer, nullable=True),
    Column("sku", String(20), nullable=True),
)

ck_codes = Table(
    "ck_codes",
    metadata,
    Column("region", String(10), primary_key=True),
    Column("code", String(20), primary_key=True),
    Column("label", String(100), nullable=True),
)

ck_tags = Table(
    "ck_tags",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=True),
)

# The pivot of accounts and tags: one tenant column shared by both keys.
ck_account_tags = Table(
    "ck_account_tags",
    metadata,
    Column("tenant_id", Integer),
    Column("account_id", Integer),
    Column("tag_id", Integer),
    Column("weight", Integer, nullable=True),
)

# The pivot of accounts and codes: every key component has its own column.
ck_account_codes = Table(
    "ck_account_codes",
    metadata,
    Column("tenant_id", Integer),
    Column("account_id", Integer),
    Column("code_region", String(10)),
    Column("code_code", String(20)),
)
