"""Retainage on invoices (CONTRACT §12), and the hand-off time of payment announcements (the
worker sweeps those never handed off).

Revision ID: 0016_retainage
Revises: 0015_client_language
Create Date: 2026-12-01 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0016_retainage"
down_revision: str | Sequence[str] | None = "0015_client_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the FK makes SQLite copy the table: keep its AUTOINCREMENT (ids name workflows)
    with op.batch_alter_table(
        "invoices", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("retainage_percent", sa.String(length=12), nullable=True))
        batch_op.add_column(
            sa.Column("retainage_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("retainage_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("retainage_released_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_invoices_retainage_released_by_invoices"),
            "invoices",
            ["retainage_released_by"],
            ["id"],
        )
    with op.batch_alter_table("payment_announcements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_announcements", schema=None) as batch_op:
        batch_op.drop_column("handed_off_at")
    # the FK makes SQLite copy the table: keep its AUTOINCREMENT (ids name workflows)
    with op.batch_alter_table(
        "invoices", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_invoices_retainage_released_by_invoices"), type_="foreignkey"
        )
        batch_op.drop_column("retainage_released_by")
        batch_op.drop_column("retainage_status")
        batch_op.drop_column("retainage_cents")
        batch_op.drop_column("retainage_percent")
