"""Approvers' signing tokens are derived (PORTICO_SECRET_KEY, id, nonce), so no raw link has to
travel through Temporal: the nonce is stored.

Revision ID: 0008_secret_free
Revises: 0007_payment_trust
Create Date: 2026-12-02 10:12:40.118230
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_secret_free"
down_revision: str | Sequence[str] | None = "0007_payment_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approvers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_nonce", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvers", schema=None) as batch_op:
        batch_op.drop_column("link_nonce")
