"""Service agreements: agreements, their visits, and the portal's Agreements switch.

Revision ID: 0018_agreements
Revises: 0017_client_messages
Create Date: 2026-12-01 12:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0018_agreements"
down_revision: str | Sequence[str] | None = "0017_client_messages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("portal_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("show_agreements", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("portal_settings", schema=None) as batch_op:
        batch_op.alter_column("show_agreements", server_default=None)
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("every", sa.String(length=10), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("visits_total", sa.Integer(), nullable=False),
        sa.Column("visits_done", sa.Integer(), nullable=False),
        sa.Column("remind_days_before", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("workflow_id", sa.String(length=80), nullable=False),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_agreements_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_agreements_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreements")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agreements_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agreements_project_id"), ["project_id"], unique=False)
    op.create_table(
        "agreement_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name=op.f("fk_agreement_visits_agreement_id_agreements"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_agreement_visits_booking_id_bookings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_visits")),
        sa.UniqueConstraint("agreement_id", "n", name=op.f("uq_agreement_visits_agreement_id_n")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_agreement_visits_booking_id")),
    )
    with op.batch_alter_table("agreement_visits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agreement_visits_agreement_id"), ["agreement_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("agreement_visits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreement_visits_agreement_id"))
    op.drop_table("agreement_visits")
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreements_project_id"))
        batch_op.drop_index(batch_op.f("ix_agreements_client_id"))
    op.drop_table("agreements")
    with op.batch_alter_table("portal_settings", schema=None) as batch_op:
        batch_op.drop_column("show_agreements")
