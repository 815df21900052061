"""Approvers remember their last view, so reloads within a short window count once.

Revision ID: 0002_last_viewed_at
Revises: 0001_initial
Create Date: 2026-11-21 07:31:12.942891
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002_last_viewed_at"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approvers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_viewed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvers", schema=None) as batch_op:
        batch_op.drop_column("last_viewed_at")
