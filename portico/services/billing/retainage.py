"""Retainage of a project (CONTRACT §12, docs/invoices.md): what its invoices hold back, and the
release invoice that bills all of it once.

A release claims the held invoices with one `UPDATE ... WHERE retainage_status = 'held'
RETURNING`, the first statement of its transaction: on PostgreSQL a concurrent release waits
on those row locks and then finds none held, on SQLite it waits for the write lock and finds
the same. So however many releases run at once, each held cent is billed by exactly one
release invoice; the others answer 409 `no_retainage_held`. If the release invoice's workflow
cannot start, the invoice is forgotten and its retainage is held again (503)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import i18n
from portico.errors import Conflict, NotFound
from portico.i18n import gettext as _
from portico.models import Client, Invoice, Project
from portico.portal_schemas import (
    InvoiceOut,
    ProjectRetainageOut,
    RetainageHeldOut,
    RetainageReleaseIn,
)
from portico.services.approvals import project_out
from portico.services.billing.invoices import Invoices, percent_text
from portico.services.billing.shown import invoice_out
from portico.settings import Settings

HELD = "held"
RELEASED = "released"


def release_line(number: str, percent: str | None, cents: int) -> dict[str, object]:
    rate = f" ({percent_text(Decimal(percent))}%)" if percent else ""
    return {
        "description": f"Retainage released: invoice {number}{rate}",
        "quantity": "1",
        "unit_price_cents": cents,
    }


class Retainage:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        invoices: Invoices,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.invoices = invoices

    async def held(self, session: AsyncSession, project_id: int) -> dict[str, int]:
        """Cents held per currency on the project's invoices, not yet released."""
        rows = await session.execute(
            select(Invoice.currency, func.sum(Invoice.retainage_cents))
            .where(Invoice.project_id == project_id, Invoice.retainage_status == HELD)
            .group_by(Invoice.currency)
        )
        return {currency: int(cents or 0) for currency, cents in rows}

    async def project(self, project_id: int) -> ProjectRetainageOut:
        """GET /projects/{id}: the project and its retainage."""
        async with self.sessions() as session:
            project = await session.get(Project, project_id)
            if project is None:
                raise NotFound(f"Project {project_id} does not exist.")
            held = await self.held(session, project_id)
            released = await session.scalar(
                select(func.sum(Invoice.retainage_cents)).where(
                    Invoice.project_id == project_id, Invoice.retainage_status == RELEASED
                )
            )
        return ProjectRetainageOut(
            **project_out(project).model_dump(),
            retainage_held_cents=sum(held.values()),
            retainage_held=[RetainageHeldOut(currency=c, cents=n) for c, n in sorted(held.items())],
            retainage_released_cents=int(released or 0),
        )

    async def release(self, project_id: int, data: RetainageReleaseIn) -> InvoiceOut:
        """Bill all retainage held on the project with one new invoice, emailed like any."""
        async with self.sessions() as session:
            project = await session.get(Project, project_id)
            if project is None:
                raise NotFound(f"Project {project_id} does not exist.")
            client = await session.get(Client, project.client_id)
            assert client is not None
        try:
            async with self.sessions() as session, session.begin():
                claimed = list(
                    await session.execute(
                        update(Invoice)
                        .where(Invoice.project_id == project_id, Invoice.retainage_status == HELD)
                        .values(retainage_status=RELEASED)
                        .returning(
                            Invoice.id,
                            Invoice.number,
                            Invoice.retainage_percent,
                            Invoice.retainage_cents,
                            Invoice.currency,
                        )
                    )
                )
                if not claimed:
                    raise Conflict(
                        "No retainage is held on this project (it was released already, or "
                        "none was held).",
                        code="no_retainage_held",
                    )
                if len({row.currency for row in claimed}) > 1:
                    raise Conflict(  # rolls the claim back
                        "Retainage is held in several currencies on this project; one release "
                        "invoice cannot bill them.",
                        code="mixed_currencies",
                    )
                claimed.sort(key=lambda row: row.id)
                currency = claimed[0].currency
                number = data.number or f"RET-{project_id}-{claimed[-1].id}"
                with i18n.use(self.invoices.reader_locale(client)):
                    note = _("Retainage held on earlier invoices of this project, now due.")
                rendered = self.invoices.render(
                    project,
                    client,
                    number=number,
                    currency=currency,
                    due_date=data.due_date,
                    items=[
                        release_line(row.number, row.retainage_percent, row.retainage_cents)
                        for row in claimed
                    ],
                    tax_rate=None,
                    retainage_percent=None,
                    notes=note,
                )
                invoice = await self.invoices.insert(
                    session,
                    rendered,
                    project_id=project_id,
                    number=number,
                    currency=currency,
                    due_date=data.due_date,
                    tax_rate=None,
                    retainage_percent=None,
                    notes=None,
                    remind_every_days=7,
                )
                await session.execute(
                    update(Invoice)
                    .where(Invoice.id.in_([row.id for row in claimed]))
                    .values(retainage_released_by=invoice.id)
                )
        except IntegrityError as err:
            raise Conflict(f"Invoice number {number} is already used.", code="duplicate") from err
        await self.invoices.start_workflow(invoice, data.notify_client)
        return invoice_out(self.settings, invoice, [])
