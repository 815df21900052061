"""The client's language (CONTRACT section 10): a client's time zone, an approver's locale.

(A client's `locale` came with 0011_staff_console.)

Revision ID: 0015_client_language
Revises: 0014_booking_photos
Create Date: 2026-12-01 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0015_client_language"
down_revision: str | Sequence[str] | None = "0014_booking_photos"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("approvers") as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvers") as batch_op:
        batch_op.drop_column("locale")
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("timezone")
