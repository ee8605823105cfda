"""api: text search over descriptions and public comments; the ticket list sorted by last change

Revision ID: desk_0006_search
Revises: desk_0005_roles
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "desk_0006_search"
down_revision: str | Sequence[str] | None = "desk_0005_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGRAM = (
    ("ix_tickets_description_trgm", "tickets", "description"),
    ("ix_ticket_comments_body_trgm", "ticket_comments", "body"),
)


def _has_trigrams() -> bool:
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        return False
    return True


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    # Substring search (ILIKE '%text%') uses a trigram GIN index on PostgreSQL. A B-tree cannot hold
    # long texts there, so without pg_trgm the search scans instead of failing inserts.
    trigrams = postgresql and _has_trigrams()
    for name, table, column in _TRIGRAM:
        if trigrams:
            op.create_index(
                name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"}
            )
        elif not postgresql:
            op.create_index(name, table, [column])
    op.create_index("ix_tickets_account_updated_id", "tickets", ["account_id", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_account_updated_id", table_name="tickets")
    for name, _, _ in _TRIGRAM:
        op.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
