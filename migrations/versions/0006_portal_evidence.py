"""Portal-minted signing links remember the client and portal session they came from.

Revision ID: 0006_portal_evidence
Revises: 0005_sms_attempts
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_portal_evidence"
down_revision: str | Sequence[str] | None = "0005_sms_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signing_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("portal_session_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_signing_links_client_id_clients"), "clients", ["client_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_signing_links_portal_session_id_portal_sessions"),
            "portal_sessions",
            ["portal_session_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("signing_links", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_signing_links_portal_session_id_portal_sessions"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_signing_links_client_id_clients"), type_="foreignkey"
        )
        batch_op.drop_column("portal_session_id")
        batch_op.drop_column("client_id")
