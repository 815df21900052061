"""Messages: each client's thread with the business, and the portal switch for it.

Revision ID: 0017_client_messages
Revises: 0016_retainage
Create Date: 2027-01-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0017_client_messages"
down_revision: str | Sequence[str] | None = "0016_retainage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("author", sa.String(length=400), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("dedupe_key", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_client_messages_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_client_messages_dedupe_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("client_messages", schema=None) as batch_op:
        batch_op.create_index("ix_client_messages_client_id_id", ["client_id", "id"], unique=False)
    with op.batch_alter_table("portal_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("show_messages", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("portal_settings", schema=None) as batch_op:
        batch_op.drop_column("show_messages")
    op.drop_table("client_messages")
