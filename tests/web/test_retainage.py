"""Retainage (CONTRACT §12) through the staff API, the portal and the exports: an invoice holds
back a percent of its total and asks for the rest; the project shows what is held; one release
invoice bills all of it, exactly once even when several releases run at once (on SQLite and on
PostgreSQL); webhook events and invoices.csv carry it."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from portico.models import Invoice, WebhookEvent
from tests.conftest import Stack, start_stack
from tests.support.helpers import wait_until
from tests.support.portal_support import create_invoice, mails_to, seed_client, sign_in
from workflows.invoice import InvoiceWorkflow

ODD = [{"description": "Extra outlets", "quantity": 1, "unit_price_cents": 10005}]


def release_path(project_id: int) -> str:
    return f"/projects/{project_id}/retainage/release"


async def test_retainage_held_due_paid_and_released_once(stack):
    _, project = await seed_client(stack)
    first = await create_invoice(stack, project["id"], retainage_percent="10")
    assert (first["total_cents"], first["retainage_cents"], first["due_cents"]) == (
        120000,
        12000,
        108000,
    )
    assert first["retainage_percent"] == "10" and first["retainage_status"] == "held"
    assert first["balance_cents"] == 108000
    # 10% of $100.05 is 1000.5 cents: half up to 1001
    second = await create_invoice(
        stack, project["id"], number="INV-1002", retainage_percent=10, line_items=ODD
    )
    assert (second["retainage_cents"], second["due_cents"]) == (1001, 9004)
    plain = await create_invoice(stack, project["id"], number="INV-1003")
    assert plain["retainage_cents"] == 0 and plain["retainage_status"] is None
    assert plain["due_cents"] == plain["total_cents"]

    # the due part pays the invoice; the retainage cannot be paid on it
    paid = await stack.api(
        "POST",
        f"/invoices/{first['id']}/payments",
        201,
        json={"amount_cents": 108000, "method": "check", "reference": "#1"},
    )
    assert paid["invoice"]["status"] == "paid" and paid["invoice"]["balance_cents"] == 0
    # its workflow learns it is paid, so no reminder asks for the retainage
    handle = stack.temporal.get_workflow_handle_for(InvoiceWorkflow.run, first["workflow_id"])

    async def workflow_paid():
        return (await handle.query(InvoiceWorkflow.state)).status == "paid"

    await wait_until(workflow_paid)
    error = await stack.api(
        "POST",
        f"/invoices/{second['id']}/payments",
        409,
        json={"amount_cents": 10005, "method": "check", "reference": "#2"},
    )
    assert error["error"]["code"] == "overpayment"

    shown = await stack.api("GET", f"/projects/{project['id']}", 200)
    assert shown["name"] == project["name"]
    assert shown["retainage_held_cents"] == 13001 and shown["retainage_released_cents"] == 0
    assert shown["retainage_held"] == [{"currency": "USD", "cents": 13001}]

    release = await stack.api(
        "POST", release_path(project["id"]), 201, json={"due_date": "2031-06-30"}
    )
    assert release["total_cents"] == 13001 and release["due_cents"] == 13001
    assert release["retainage_cents"] == 0 and release["status"] == "open"
    assert release["number"] == f"RET-{project['id']}-{second['id']}"
    assert [line["unit_price_cents"] for line in release["line_items"]] == [12000, 1001]
    assert "INV-1001 (10%)" in release["line_items"][0]["description"]

    # a second release releases nothing new
    again = await stack.api(
        "POST", release_path(project["id"]), 409, json={"due_date": "2031-06-30"}
    )
    assert again["error"]["code"] == "no_retainage_held"
    for original in (first, second):
        after = await stack.api("GET", f"/invoices/{original['id']}", 200)
        assert after["retainage_status"] == "released"
        assert after["retainage_released_by"] == release["id"]
    assert (await stack.api("GET", f"/invoices/{first['id']}", 200))["status"] == "paid"
    shown = await stack.api("GET", f"/projects/{project['id']}", 200)
    assert shown["retainage_held_cents"] == 0 and shown["retainage_released_cents"] == 13001

    # emailed like any invoice (by its workflow)
    async def release_mailed():
        return [
            m for m in await mails_to(stack, "dana@client.test") if release["number"] in m.subject
        ]

    mail = await wait_until(release_mailed)
    assert release["pay_url"] in mail[0].body

    # the first invoice's email said what was held and what was due
    issued = [m for m in await mails_to(stack, "dana@client.test") if "INV-1001" in m.subject]
    assert "($1,080.00)" in issued[0].subject
    assert "Retainage held: $120.00" in issued[0].body and "Due now: $1,080.00" in issued[0].body


async def test_bad_retainage_and_unknown_projects(stack):
    _, project = await seed_client(stack)
    for bad in ("50.5", "-1", "abc", 51, True, "10.12345"):
        body = {
            "project_id": project["id"],
            "number": "INV-X",
            "due_date": "2031-01-31",
            "line_items": ODD,
            "retainage_percent": bad,
        }
        await stack.api("POST", "/invoices", 422, json=body)
    fifty = await create_invoice(stack, project["id"], retainage_percent="50", line_items=ODD)
    assert (fifty["retainage_cents"], fifty["due_cents"]) == (5003, 5002)  # 5002.5 up
    await stack.api("GET", "/projects/999999", 404)
    await stack.api("POST", release_path(999999), 404, json={"due_date": "2031-01-31"})
    await stack.api("POST", release_path(project["id"]), 422, json={})
    _, empty = await seed_client(stack, name="Sam", email="sam@client.test", project="Deck")
    error = await stack.api("POST", release_path(empty["id"]), 409, json={"due_date": "2031-01-31"})
    assert error["error"]["code"] == "no_retainage_held"

    # one release invoice cannot bill two currencies: refused, and nothing is released
    await create_invoice(stack, empty["id"], number="EUR-1", currency="EUR", retainage_percent=5)
    await create_invoice(stack, empty["id"], number="USD-1", retainage_percent=5)
    error = await stack.api("POST", release_path(empty["id"]), 409, json={"due_date": "2031-01-31"})
    assert error["error"]["code"] == "mixed_currencies"
    shown = await stack.api("GET", f"/projects/{empty['id']}", 200)
    assert shown["retainage_held"] == [
        {"currency": "EUR", "cents": 6000},
        {"currency": "USD", "cents": 6000},
    ]


async def test_a_void_release_invoice_holds_the_retainage_again(stack):
    _, project = await seed_client(stack)
    held = await create_invoice(stack, project["id"], retainage_percent="5")
    release = await stack.api(
        "POST", release_path(project["id"]), 201, json={"due_date": "2031-06-30"}
    )
    error = await stack.api("POST", f"/invoices/{held['id']}/void", 409, json={})
    assert error["error"]["code"] == "retainage_released"  # void the release invoice instead
    await stack.api("POST", f"/invoices/{release['id']}/void", 200, json={})
    shown = await stack.api("GET", f"/projects/{project['id']}", 200)
    assert shown["retainage_held_cents"] == 6000
    again = await stack.api(
        "POST",
        release_path(project["id"]),
        201,
        json={"due_date": "2031-06-30", "number": "RET-AGAIN"},
    )
    assert again["total_cents"] == 6000 and again["number"] == "RET-AGAIN"


async def test_concurrent_releases_bill_the_held_sum_once(stack):
    _, project = await seed_client(stack)
    invoices = [
        await create_invoice(stack, project["id"], number=f"INV-{n}", retainage_percent=f"{n}.5")
        for n in range(1, 4)
    ]
    held = sum(i["retainage_cents"] for i in invoices)

    async def release():
        response = await stack.http.post(
            f"/api/v1{release_path(project['id'])}",
            json={"due_date": "2031-06-30"},
            headers=stack.auth,
        )
        return response.status, await response.json()

    answers = await asyncio.gather(*(release() for _ in range(6)))
    assert sorted(status for status, _ in answers) == [201] + [409] * 5
    made = next(body for status, body in answers if status == 201)
    assert made["total_cents"] == held
    for status, body in answers:
        if status == 409:
            assert body["error"]["code"] == "no_retainage_held"
    async with stack.sessions() as session:
        rows = list(
            await session.scalars(select(Invoice).where(Invoice.project_id == project["id"]))
        )
    releases = [r for r in rows if r.number.startswith("RET-")]
    assert [r.id for r in releases] == [made["id"]]
    originals = [r for r in rows if r.id != made["id"]]
    assert {(r.retainage_status, r.retainage_released_by) for r in originals} == {
        ("released", made["id"])
    }


async def test_portal_shows_retainage_held(stack):
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"], retainage_percent="10")
    browser = await sign_in(stack, "dana@client.test")
    try:
        status, html, _ = await browser.get(f"/portal/invoices/{invoice['id']}")
        assert status == 200
        assert "Retainage held (10%)" in html and "$120.00" in html
        assert "Due on this invoice" in html and "$1,080.00" in html
        status, html, _ = await browser.get(f"/portal/projects/{project['id']}")
        assert status == 200 and "Retainage held" in html and "$120.00" in html
        await stack.api("POST", release_path(project["id"]), 201, json={"due_date": "2031-06-30"})
        status, html, _ = await browser.get(f"/portal/projects/{project['id']}")
        assert "Retainage held" not in html  # nothing held any more
        status, html, _ = await browser.get(f"/portal/invoices/{invoice['id']}")
        assert "billed on its release invoice" in html
    finally:
        await browser.close()


@pytest.fixture
async def hooked(settings, sessions, dev_env) -> AsyncIterator[Stack]:
    """A stack that accepts a webhook endpoint on loopback."""
    allowed = settings.model_copy(update={"webhooks_allow_private": True})
    async for s in start_stack(allowed, sessions, dev_env.client):
        yield s


async def test_exports_and_webhook_events_carry_retainage(hooked):
    stack = hooked
    endpoint = await stack.api(
        "POST",
        "/webhooks",
        201,
        json={"url": "http://127.0.0.1:9/hook", "events": ["invoice.sent", "invoice.paid"]},
    )
    _, project = await seed_client(stack)
    invoice = await create_invoice(stack, project["id"], retainage_percent="10")
    await stack.api(
        "POST",
        f"/invoices/{invoice['id']}/payments",
        201,
        json={"amount_cents": invoice["due_cents"], "method": "cash", "reference": None},
    )
    await stack.api("DELETE", f"/webhooks/{endpoint['id']}", 204)
    async with stack.sessions() as session:
        events = {
            e.type: e.data
            for e in await session.scalars(
                select(WebhookEvent).where(WebhookEvent.type.in_(["invoice.sent", "invoice.paid"]))
            )
        }
    assert events["invoice.sent"]["retainage_cents"] == 12000
    assert events["invoice.sent"]["due_cents"] == 108000
    assert events["invoice.sent"]["retainage_status"] == "held"
    assert events["invoice.paid"]["status"] == "paid"
    assert events["invoice.paid"]["paid_cents"] == events["invoice.paid"]["due_cents"] == 108000

    response = await stack.http.get("/api/v1/exports/invoices.csv", headers=stack.auth)
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    mine = [r for r in rows if r["InvoiceNo"] == invoice["number"]]
    assert mine[-1]["ItemDescription"] == "Retainage held (10%)"
    assert mine[-1]["ItemAmount"] == "-120.00" and mine[-1]["ItemRate"] == "-120.00"
    total = sum(round(float(r["ItemAmount"]) * 100) for r in mine)
    assert total == invoice["due_cents"]  # what the invoice asks for now
