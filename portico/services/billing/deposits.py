"""The signing page's "Pay deposit": the open deposit invoice of the approved request a signing
link opens. The link is looked up the one way every signing page does
(portico/services/signing_links.py), so an expired or unknown token opens nothing here either."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.ledger import PAYABLE
from portico.models import Invoice
from portico.services.billing.links import pay_url
from portico.services.signing_links import open_link
from portico.settings import Settings


async def deposit_url_for_signing_token(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], token: str
) -> str | None:
    """The pay_url of an open deposit invoice linked to the request a signing link opens."""
    found = await open_link(sessions, token)
    if found is None:
        return None
    approval = found.approver.approval
    if approval.status != "approved":
        return None
    async with sessions() as session:
        invoice = await session.scalar(
            select(Invoice)
            .where(
                or_(
                    Invoice.approval_id == approval.id,
                    Invoice.document_id == approval.document_id,
                ),
                Invoice.status.in_(PAYABLE),
            )
            .order_by(Invoice.id)
            .limit(1)
        )
    return pay_url(settings, invoice) if invoice is not None else None
