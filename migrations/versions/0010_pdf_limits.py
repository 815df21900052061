"""Approvals remember why their signed PDF could not be built (signed_pdf_error).

Revision ID: 0010_pdf_limits
Revises: 0009_outbox
Create Date: 2026-12-01 09:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010_pdf_limits"
down_revision: str | Sequence[str] | None = "0009_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_pdf_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("signed_pdf_error")
