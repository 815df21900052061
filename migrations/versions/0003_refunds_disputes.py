"""Payments remember refunds and disputes (charge id, refunded and disputed amounts).

Revision ID: 0003_refunds_disputes
Revises: 0002_last_viewed_at
Create Date: 2026-11-21 08:29:13.844880
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_refunds_disputes"
down_revision: str | Sequence[str] | None = "0002_last_viewed_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_charge_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("refunded_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("disputed_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("dispute_status", sa.String(length=40), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_payments_stripe_charge_id"), ["stripe_charge_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_stripe_charge_id"))
        batch_op.drop_column("dispute_status")
        batch_op.drop_column("disputed_cents")
        batch_op.drop_column("refunded_cents")
        batch_op.drop_column("stripe_charge_id")
