"""desk: roles and routing (DESK-12, PAY-7): engineers' visibility option, first-reply assignment,
default responsibles of contacts and objects, the ticket of each activity entry, permission grants

Revision ID: desk_0005_roles
Revises: desk_0004_client
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "desk_0005_roles"
down_revision: str | Sequence[str] | None = "desk_0004_client"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("engineers_see_all", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("first_reply_assigns", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    for table in ("contacts", "service_objects"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("default_responsible_id", ID, nullable=True))
            batch_op.create_foreign_key(
                f"fk_{table}_default_responsible_id_employees",
                "employees",
                ["default_responsible_id"],
                ["id"],
                ondelete="SET NULL",
            )
    with op.batch_alter_table("activity_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ticket_id", ID, nullable=True))
    op.create_table(
        "permission_grants",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("permission", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("employee_id", ID, nullable=True),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("permission_grants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_permission_grants_account_permission", ["account_id", "permission"], unique=False
        )
        batch_op.create_index("ix_permission_grants_employee_id", ["employee_id"], unique=False)
    _backfill()


def _backfill() -> None:
    """Dispatchers kept the refund decision they had by role; feed entries learn their ticket."""
    op.execute(
        "INSERT INTO permission_grants (account_id, permission, role, created_at) "
        "SELECT id, 'refunds', 'dispatcher', CURRENT_TIMESTAMP FROM accounts"
    )
    op.execute("UPDATE activity_entries SET ticket_id = ref_id WHERE kind IN ('ticket', 'rating')")
    op.execute(
        "UPDATE activity_entries SET ticket_id = (SELECT invoices.ticket_id FROM invoices "
        "WHERE invoices.id = activity_entries.ref_id) WHERE kind LIKE 'invoice%'"
    )
    op.execute(
        "UPDATE activity_entries SET ticket_id = (SELECT refunds.ticket_id FROM refunds "
        "WHERE refunds.id = activity_entries.ref_id) WHERE kind LIKE 'refund%'"
    )


def downgrade() -> None:
    with op.batch_alter_table("permission_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_permission_grants_employee_id")
        batch_op.drop_index("ix_permission_grants_account_permission")
    op.drop_table("permission_grants")
    with op.batch_alter_table("activity_entries", schema=None) as batch_op:
        batch_op.drop_column("ticket_id")
    for table in ("service_objects", "contacts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_default_responsible_id_employees", type_="foreignkey")
            batch_op.drop_column("default_responsible_id")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("first_reply_assigns")
        batch_op.drop_column("engineers_see_all")
