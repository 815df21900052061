"""SMS reply codes checked per sending number (`sms_code_attempts`), for the lockout.

Revision ID: 0005_sms_attempts
Revises: 0004_last_viewer
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_sms_attempts"
down_revision: str | Sequence[str] | None = "0004_last_viewer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_code_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_code_attempts")),
    )
    with op.batch_alter_table("sms_code_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_code_attempts_phone_created_at", ["phone", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_code_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_code_attempts_phone_created_at")
    op.drop_table("sms_code_attempts")
