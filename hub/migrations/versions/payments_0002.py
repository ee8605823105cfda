"""payments: invoices found by the provider's payment and capture ids through an index (PAY-6)

Revision ID: payments_0002
Revises: payments_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "payments_0002"
down_revision: str | Sequence[str] | None = "payments_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_provider_payment", ["payment_account_id", "provider_payment_id"], unique=False
        )
        batch_op.create_index(
            "ix_invoices_provider_capture", ["payment_account_id", "provider_capture_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_provider_capture")
        batch_op.drop_index("ix_invoices_provider_payment")
