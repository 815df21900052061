"""Payments are announced by the invoice's workflow: what a payment change must announce is
committed with it (payment_announcements), an invoice-scoped audit chain
(invoice_audit_events), and manual payments take an Idempotency-Key.

Revision ID: 0012_payment_audit
Revises: 0011_staff_console
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012_payment_audit"
down_revision: str | Sequence[str] | None = "0011_staff_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_payment_announcements_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_announcements")),
        sa.UniqueConstraint("key", name=op.f("uq_payment_announcements_key")),
    )
    op.create_index(
        op.f("ix_payment_announcements_invoice_id"),
        "payment_announcements",
        ["invoice_id"],
        unique=False,
    )
    op.create_table(
        "invoice_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=120), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_audit_events_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_audit_events")),
        sa.UniqueConstraint(
            "invoice_id", "event_key", name=op.f("uq_invoice_audit_events_invoice_id_event_key")
        ),
        sa.UniqueConstraint(
            "invoice_id", "seq", name=op.f("uq_invoice_audit_events_invoice_id_seq")
        ),
    )
    op.create_index(
        op.f("ix_invoice_audit_events_invoice_id"),
        "invoice_audit_events",
        ["invoice_id"],
        unique=False,
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_idempotency_key"), ["idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_payments_idempotency_key"), type_="unique")
        batch_op.drop_column("idempotency_key")
    op.drop_index(op.f("ix_invoice_audit_events_invoice_id"), table_name="invoice_audit_events")
    op.drop_table("invoice_audit_events")
    op.drop_index(op.f("ix_payment_announcements_invoice_id"), table_name="payment_announcements")
    op.drop_table("payment_announcements")
