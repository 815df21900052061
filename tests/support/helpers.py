"""Small builders the API, page and end-to-end tests share."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portico import pdf
from portico.models import OutboundMessage

T = TypeVar("T")
LINK = re.compile(r"https?://[^\s\"<>]+/s/([A-Za-z0-9_\-]+)")


async def added(session: AsyncSession, row: T) -> T:
    """`row` added to `session` and flushed, so its id is set (rows written straight to SQL)."""
    session.add(row)
    await session.flush()
    return row


async def seed_document(stack: Any, **overrides: Any) -> dict[str, Any]:
    """A client, a project and a rendered change order, through the API."""
    client = await stack.api(
        "POST",
        "/clients",
        201,
        json={"name": "Dana Client", "email": "dana@client.test", "company": "Client Co"},
    )
    project = await stack.api(
        "POST", "/projects", 201, json={"client_id": client["id"], "name": "Kitchen remodel"}
    )
    body = {
        "project_id": project["id"],
        "kind": "change_order",
        "title": "Extra outlets",
        "number": "CO-17",
        "line_items": [
            {"description": "Outlet", "quantity": 4, "unit_price_cents": 12500},
            {"description": "Labour", "quantity": 1.5, "unit_price_cents": 9000},
        ],
        **overrides,
    }
    return await stack.api("POST", "/documents", 201, json=body)


def approvers(n: int, phones: bool = False) -> list[dict[str, str]]:
    people = []
    for i in range(1, n + 1):
        person = {"name": f"Approver {i}", "email": f"a{i}@client.test"}
        if phones:
            person["phone"] = f"+1555010000{i}"
        people.append(person)
    return people


async def create_approval(stack: Any, document_id: int, **body: Any) -> dict[str, Any]:
    payload = {
        "document_id": document_id,
        "approvers": approvers(body.pop("n", 1)),
        "routing": "sequential",
        "expires_in_days": 14,
        "channels": ["email"],
        **body,
    }
    return await stack.api("POST", "/approvals", 201, json=payload)


async def outbox(sessions: Any, to: str | None = None) -> list[OutboundMessage]:
    async with sessions() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if to:
            query = query.where(OutboundMessage.to == to)
        return list(await session.scalars(query))


async def wait_until(check: Any, timeout: float = 30.0) -> Any:
    """Poll an async check until it returns something truthy.

    The timeout only bounds a failure: it is generous because a loaded CI machine can take many
    seconds for a workflow to get through its activities."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def token_of(url: str) -> str:
    match = LINK.search(url)
    assert match, url
    return match.group(1)


def sample_pdf(title: str = "Sample document") -> bytes:
    """A small valid PDF whose text contains `title` (for uploads)."""
    data, _ = pdf.render_line_items_pdf(
        company_name="Client Co",
        kind="change_order",
        title=title,
        number="CO-17",
        client_name="Dana",
        project_name="Kitchen",
        currency="USD",
        line_items=[{"description": "x", "quantity": 1, "unit_price_cents": 1}],
        issued_on=date(2026, 11, 1),
    )
    return data
