"""Photos of jobs (bookings of kind `job`).

Revision ID: 0014_booking_photos
Revises: 0013_webhooks
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014_booking_photos"
# The lead re-chains this onto the migration before it at merge (0014, 0015 land in parallel).
down_revision: str | Sequence[str] | None = "0013_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("caption", sa.String(length=500), nullable=True),
        sa.Column("portal_visible", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("file_path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("thumbnail_path", sa.String(length=500), nullable=False),
        sa.Column("uploaded_by", sa.String(length=360), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_photos_booking_id_bookings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_photos")),
    )
    op.create_index(
        op.f("ix_booking_photos_booking_id"), "booking_photos", ["booking_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_booking_photos_booking_id"), table_name="booking_photos")
    op.drop_table("booking_photos")
