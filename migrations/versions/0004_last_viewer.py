"""Approvers remember which browser session made their last counted view.

Revision ID: 0004_last_viewer
Revises: 0003_refunds_disputes
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_last_viewer"
down_revision: str | Sequence[str] | None = "0003_refunds_disputes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approvers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_viewer", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvers", schema=None) as batch_op:
        batch_op.drop_column("last_viewer")
