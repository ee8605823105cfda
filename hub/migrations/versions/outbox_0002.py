"""outbox: the claim reads due messages in id order through partial indexes of unfinished rows

Revision ID: outbox_0002
Revises: outbox_0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outbox_0002"
down_revision: str | Sequence[str] | None = "outbox_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNFINISHED = sa.text("status IN ('pending', 'delivering')")


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_due")
        for name, columns in (
            ("ix_outbox_messages_unfinished", ["id", "next_attempt_at"]),
            ("ix_outbox_messages_unfinished_key", ["ordering_key", "id"]),
        ):
            batch_op.create_index(
                name, columns, unique=False, postgresql_where=_UNFINISHED, sqlite_where=_UNFINISHED
            )


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_unfinished_key")
        batch_op.drop_index("ix_outbox_messages_unfinished")
        batch_op.create_index("ix_outbox_messages_due", ["status", "next_attempt_at"], unique=False)
