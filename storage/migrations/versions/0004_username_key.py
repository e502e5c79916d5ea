"""case-insensitive usernames

Adds ``users.username_key`` (NFKC, case folded), unique. Existing users whose
names collide on the key (``demo`` and ``Demo``) are not merged — they own
different orders and cash — the oldest keeps its name and each later one is
renamed ``<name>#<id>`` (``#`` is not allowed in new usernames, so the new name
cannot collide with anyone); it signs in with that name from now on.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table(
    "users",
    sa.column("id", sa.BigInteger()),
    sa.column("username", sa.String()),
    sa.column("username_key", sa.String()),
)


def _key(username: str) -> str:
    # Frozen copy of storage.models.username_key as of this revision.
    return unicodedata.normalize("NFKC", username).casefold()


def upgrade() -> None:
    # Added NOT NULL with a placeholder default and made unique by an index, so
    # that SQLite needs no table rebuild: rebuilding ``users`` drops it, which
    # the foreign keys of every table that points at it refuse.
    op.add_column(
        "users",
        sa.Column("username_key", sa.String(length=64), nullable=False, server_default=""),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id))
    taken: set[str] = set()
    for user_id, username in rows.all():
        key = _key(username)
        if key in taken:
            username = f"{username}#{user_id}"
            key = _key(username)
        taken.add(key)
        connection.execute(
            users.update().where(users.c.id == user_id).values(username=username, username_key=key)
        )
    if connection.dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("users", "username_key", server_default=None)
    op.create_index(op.f("ix_users_username_key"), "users", ["username_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_username_key"), table_name="users")
    op.drop_column("users", "username_key")
