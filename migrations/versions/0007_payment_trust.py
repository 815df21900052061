"""Stripe payments are checked against the Checkout Session Portico created; events that do
not match are flagged for staff.

Revision ID: 0007_payment_trust
Revises: 0006_portal_evidence
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_payment_trust"
down_revision: str | Sequence[str] | None = "0006_portal_evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_checkouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=120), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_stripe_checkouts_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_checkouts")),
        sa.UniqueConstraint("ref", name=op.f("uq_stripe_checkouts_ref")),
        sa.UniqueConstraint("session_id", name=op.f("uq_stripe_checkouts_session_id")),
    )
    op.create_index(
        op.f("ix_stripe_checkouts_invoice_id"), "stripe_checkouts", ["invoice_id"], unique=False
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_checkout_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_stripe_checkout_id"), ["stripe_checkout_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_stripe_checkout_id_stripe_checkouts"),
            "stripe_checkouts",
            ["stripe_checkout_id"],
            ["id"],
        )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("amount_cents", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("payment_intent_id", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_stripe_events_outcome"), ["outcome"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stripe_events_outcome"))
        batch_op.drop_column("payment_intent_id")
        batch_op.drop_column("currency")
        batch_op.drop_column("amount_cents")
        batch_op.drop_column("detail")
        batch_op.drop_column("reason")
        batch_op.drop_column("outcome")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_payments_stripe_checkout_id_stripe_checkouts"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_payments_stripe_checkout_id"), type_="unique")
        batch_op.drop_column("stripe_checkout_id")
    op.drop_index(op.f("ix_stripe_checkouts_invoice_id"), table_name="stripe_checkouts")
    op.drop_table("stripe_checkouts")
