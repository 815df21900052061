"""Service agreements through the staff API, the portal and the console (CONTRACT section 13),
with a real worker on the dev server: validation, the first visit booked and reminded at once
when it is near, a completed booking counting its visit (also when its signal was lost), the
staff updates, portal isolation and the section switch, and the console's cancel button."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update

from portico.models import Booking
from portico.schedule import add_months
from portico.services.agreements import Agreements
from portico.services.gateway import TemporalGateway
from tests.support.console_support import post_form, staff_sign_in
from tests.support.helpers import wait_until
from tests.support.portal_support import mails_to, seed_client, sign_in
from workflows import search_attributes as sa


def today() -> date:
    return datetime.now(ZoneInfo("America/New_York")).date()  # the tests' business zone


async def create(stack, client_id: int, **body: Any) -> dict[str, Any]:
    payload = {
        "client_id": client_id,
        "title": "HVAC maintenance",
        "starts_on": today().isoformat(),
        "every": "quarter",
        "visits": 4,
        **body,
    }
    return await stack.api("POST", "/agreements", 201, json=payload)


async def shown(stack, agreement_id: int, check) -> dict[str, Any]:
    """The agreement as GET shows it, once `check(it)` holds."""

    async def probe() -> dict[str, Any] | None:
        found = await stack.api("GET", f"/agreements/{agreement_id}", 200)
        return found if check(found) else None

    return await wait_until(probe)


async def test_invalid_agreements_are_422_and_change_nothing(stack):
    client, project = await seed_client(stack)
    other, other_project = await seed_client(stack, "Sam Other", "sam@client.test", "Deck")
    good = {
        "client_id": client["id"],
        "title": "Lawn care",
        "starts_on": today().isoformat(),
        "every": "month",
        "visits": 12,
    }
    for changes in (
        {"every": "fortnight"},
        {"visits": 0},
        {"visits": 121},
        {"visits": True},
        {"remind_days_before": 31},
        {"remind_days_before": -1},
        {"starts_on": (today() - timedelta(days=1)).isoformat()},
        {"starts_on": "2027-02-30"},
        {"starts_on": (today() + timedelta(days=6 * 366)).isoformat()},
        {"title": ""},
        {"title": None},
        {"colour": "blue"},
    ):
        answer = await stack.api("POST", "/agreements", 422, json={**good, **changes})
        assert answer["error"]["code"] == "invalid", changes
    await stack.api("POST", "/agreements", 404, json={**good, "client_id": 999_999})
    await stack.api("POST", "/agreements", 404, json={**good, "project_id": 999_999})
    answer = await stack.api(
        "POST", "/agreements", 409, json={**good, "project_id": other_project["id"]}
    )
    assert answer["error"]["code"] == "project_of_another_client"
    assert (await stack.api("GET", "/agreements", 200))["items"] == []
    await stack.api("GET", "/agreements?client_id=", 422)
    await stack.api("GET", "/agreements/999999", 404)
    await stack.api("POST", "/agreements/999999/cancel", 404)


async def test_create_books_and_reminds_the_first_visit_and_counts_it_when_completed(stack):
    client, project = await seed_client(stack)
    created = await create(stack, client["id"], project_id=project["id"])
    assert created["status"] == "active"
    assert created["workflow_id"] == f"agreement-{created['id']}"
    assert created["visits_total"] == 4 and created["visits_done"] == 0
    start = today()
    assert [(v["n"], v["date"]) for v in created["visits"]] == [
        (1, start.isoformat()),
        (2, _months(start, 3)),
        (3, _months(start, 6)),
        (4, _months(start, 9)),
    ]
    assert {v["status"] for v in created["visits"]} <= {"scheduled", "booked"}

    # The first visit is within 14 days: booked now, as a job; its reminder is due already.
    found = await shown(stack, created["id"], lambda a: a["visits"][0]["booking_id"])
    booking_id = found["visits"][0]["booking_id"]
    bookings = (await stack.api("GET", f"/bookings?client_id={client['id']}", 200))["items"]
    assert [(b["id"], b["kind"], b["date"]) for b in bookings] == [
        (booking_id, "job", start.isoformat())
    ]
    assert bookings[0]["title"] == "HVAC maintenance (visit 1 of 4)"
    mail = await wait_until(lambda: mails_to(stack, client["email"]))
    assert "visit 1 of 4 of HVAC maintenance" in mail[0].subject
    assert found["visits"][1]["booking_id"] is None  # three months away: not booked yet

    await stack.api("PATCH", f"/bookings/{booking_id}", 200, json={"status": "completed"})
    done = await shown(stack, created["id"], lambda a: a["visits_done"] == 1)
    assert done["visits"][0]["status"] == "done" and done["visits"][0]["done_at"]
    assert done["next_visit"] == _months(start, 3)
    # Operators filter agreements in the Temporal UI by these, kept current by the workflow.
    described = await stack.temporal.get_workflow_handle(created["workflow_id"]).describe()
    attributes = described.typed_search_attributes
    assert attributes.get(sa.STATUS) == "active"
    assert attributes.get(sa.CLIENT) == client["company"]
    assert attributes.get(sa.AGREEMENT_EVERY) == "quarter"
    assert attributes.get(sa.VISITS_DONE) == 1
    assert attributes.get(sa.NEXT_VISIT).date().isoformat() == _months(start, 3)
    listed = await stack.api("GET", f"/agreements?client_id={client['id']}", 200)
    assert [a["id"] for a in listed["items"]] == [created["id"]]
    assert (await stack.api("GET", f"/agreements?client_id={client['id'] + 1}", 200))["items"] == []


def _months(start: date, months: int) -> str:
    return add_months(start, months).isoformat()


async def test_staff_updates_move_visits_change_the_lead_and_cancel(stack):
    client, _ = await seed_client(stack)
    created = await create(stack, client["id"], starts_on=(today() + timedelta(days=3)).isoformat())
    agreement_id = created["id"]
    booked = await shown(stack, agreement_id, lambda a: a["visits"][0]["booking_id"])

    new_date = (today() + timedelta(days=5)).isoformat()
    moved = await stack.api(
        "POST", f"/agreements/{agreement_id}/visits/1/move", 200, json={"date": new_date}
    )
    assert moved["visits"][0]["date"] == new_date
    booking = (await stack.api("GET", f"/bookings?client_id={client['id']}", 200))["items"][0]
    assert booking["id"] == booked["visits"][0]["booking_id"] and booking["date"] == new_date
    yesterday = (today() - timedelta(days=1)).isoformat()
    await stack.api(
        "POST", f"/agreements/{agreement_id}/visits/1/move", 422, json={"date": yesterday}
    )
    await stack.api(
        "POST", f"/agreements/{agreement_id}/visits/9/move", 404, json={"date": new_date}
    )

    changed = await stack.api(
        "PATCH", f"/agreements/{agreement_id}", 200, json={"remind_days_before": 5}
    )
    assert changed["remind_days_before"] == 5
    await stack.api("PATCH", f"/agreements/{agreement_id}", 422, json={"remind_days_before": 31})
    await stack.api("PATCH", f"/agreements/{agreement_id}", 422, json={})

    cancelled = await stack.api(
        "POST", f"/agreements/{agreement_id}/cancel", 200, json={"reason": "Sold the house"}
    )
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "Sold the house"
    assert {v["status"] for v in cancelled["visits"]} == {"cancelled"}
    booking = (await stack.api("GET", f"/bookings?client_id={client['id']}", 200))["items"][0]
    assert booking["status"] == "cancelled"  # its open booking went with it
    again = await stack.api("POST", f"/agreements/{agreement_id}/cancel", 409)
    assert again["error"]["code"] == "agreement_closed"
    await stack.api("PATCH", f"/agreements/{agreement_id}", 409, json={"remind_days_before": 1})
    ended = await shown(stack, agreement_id, lambda a: a["ended_at"])
    assert ended["status"] == "cancelled"


async def test_a_completion_whose_signal_was_lost_is_counted_by_the_sweep(stack):
    client, _ = await seed_client(stack)
    created = await create(stack, client["id"], visits=2)
    found = await shown(stack, created["id"], lambda a: a["visits"][0]["booking_id"])
    booking_id = found["visits"][0]["booking_id"]
    # Completed in SQL, but the web process died before it told the workflow.
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(Booking).where(Booking.id == booking_id).values(status="completed")
        )
    agreements = Agreements(
        stack.settings, stack.sessions, TemporalGateway(stack.settings, stack.temporal)
    )
    assert await agreements.sweep() >= 1
    done = await shown(stack, created["id"], lambda a: a["visits_done"] == 1)
    assert done["visits"][0]["status"] == "done"
    assert await agreements.sweep() == 0  # nothing left to tell


async def test_the_portal_shows_a_clients_own_agreements_only(stack):
    dana, _ = await seed_client(stack)
    sam, _ = await seed_client(stack, "Sam Other", "sam@client.test", "Deck")
    created = await create(stack, dana["id"], visits=12, every="month")
    found = await shown(stack, created["id"], lambda a: a["visits"][0]["booking_id"])
    await stack.api(
        "PATCH", f"/bookings/{found['visits'][0]['booking_id']}", 200, json={"status": "completed"}
    )
    await shown(stack, created["id"], lambda a: a["visits_done"] == 1)

    browser = await sign_in(stack, dana["email"])
    status, html, _ = await browser.get("/portal")
    assert status == 200
    assert re.search(r'<h2 id="agreements-h">Agreements</h2>', html)
    assert "HVAC maintenance" in html and "1 of 12 visits" in html
    assert 'href="/portal/agreements"' in html  # in the navigation
    status, html, _ = await browser.get(f"/portal/agreements/{created['id']}")
    assert status == 200
    assert "1 of 12 visits" in html and "Schedule" in html and "Next visit" in html
    assert html.count("<tr") == 13  # the header and a row per visit
    status, html, _ = await browser.get("/portal/agreements")
    assert status == 200 and f"/portal/agreements/{created['id']}" in html

    other = await sign_in(stack, sam["email"])
    status, html, _ = await other.get(f"/portal/agreements/{created['id']}")
    assert status == 404 and "HVAC maintenance" not in html
    status, html, _ = await other.get("/portal/agreements")
    assert status == 200 and "HVAC maintenance" not in html
    status, html, _ = await other.get("/portal")
    assert "HVAC maintenance" not in html

    settings = await stack.api("PATCH", "/portal/settings", 200, json={"show_agreements": False})
    assert settings["sections"]["agreements"] is False
    status, html, _ = await browser.get("/portal")
    assert 'id="agreements-h"' not in html and 'href="/portal/agreements"' not in html
    status, _, _ = await browser.get(f"/portal/agreements/{created['id']}")
    assert status == 404
    await browser.close()
    await other.close()


async def test_the_console_lists_a_clients_agreements_and_cancels_one(stack):
    client, _ = await seed_client(stack)
    created = await create(stack, client["id"], title="Monthly lawn care", every="month")
    staff = await staff_sign_in(stack)
    page = f"/staff/clients/{client['id']}"
    status, html, _ = await staff.get(page)
    assert status == 200
    assert "Monthly lawn care" in html and "0 of 4 visits" in html
    assert "Cancel agreement" in html and "Invoices" in html
    assert "&lt;Macro" not in html and 'role="alert"' not in html  # no stray error box

    status, html = await post_form(staff, page, f"/staff/agreements/{created['id']}/cancel", {})
    assert status == 200 and "The agreement was cancelled" in html
    assert f"/staff/agreements/{created['id']}/cancel" not in html  # no button any more
    shown_ = await stack.api("GET", f"/agreements/{created['id']}", 200)
    assert shown_["status"] == "cancelled"

    status, html, _ = await staff.get("/staff/settings")
    assert 'name="show_agreements"' in html
    await staff.close()


async def test_a_visits_booking_is_moved_or_cancelled_through_its_agreement(stack):
    """The bookings API cannot move or cancel a visit behind the agreement's back: the client
    would still be reminded of it. It says which agreement call does it; notes still change."""
    client, _ = await seed_client(stack)
    created = await create(stack, client["id"])
    found = await shown(stack, created["id"], lambda a: a["visits"][0]["booking_id"])
    booking_id = found["visits"][0]["booking_id"]
    later = (today() + timedelta(days=3)).isoformat()

    moved = await stack.api("PATCH", f"/bookings/{booking_id}", 409, json={"date": later})
    assert moved["error"]["code"] == "agreement_visit"
    assert f"/agreements/{created['id']}/visits/1/move" in moved["error"]["message"]
    cancelled = await stack.api(
        "PATCH", f"/bookings/{booking_id}", 409, json={"status": "cancelled"}
    )
    assert f"/agreements/{created['id']}/cancel" in cancelled["error"]["message"]
    booking = next(
        b
        for b in (await stack.api("GET", f"/bookings?client_id={client['id']}", 200))["items"]
        if b["id"] == booking_id
    )
    assert booking["status"] != "cancelled" and booking["date"] == today().isoformat()

    noted = await stack.api("PATCH", f"/bookings/{booking_id}", 200, json={"notes": "Gate code 12"})
    assert noted["notes"] == "Gate code 12"


async def test_a_french_client_is_reminded_in_french_by_email_and_text(stack):
    """CONTRACT section 10: the reminder (email and SMS) is in the client's language, its
    date written for it."""
    client, _ = await seed_client(stack)
    await stack.api(
        "PATCH", f"/clients/{client['id']}", 200, json={"locale": "fr", "phone": "+15145550123"}
    )
    await create(stack, client["id"])
    mail = await wait_until(lambda: mails_to(stack, client["email"]))
    assert mail[0].subject.startswith("Rappel : la visite 1 sur 4 de HVAC maintenance")
    texts = await wait_until(lambda: mails_to(stack, "+15145550123"))
    assert "rappel, la visite 1 sur 4 de « HVAC maintenance »" in texts[0].body
    assert " 2026" in texts[0].body or " 2027" in texts[0].body  # the day, in French order


async def test_a_workflow_id_temporal_already_has_is_409_and_books_nothing(stack):
    client, _ = await seed_client(stack)
    first = await create(stack, client["id"])
    # Ids come from the database's sequence, one by one: the next agreement will be first + 1.
    squatter = await stack.temporal.start_workflow(
        "NoSuchWorkflow",
        id=f"agreement-{first['id'] + 1}",
        task_queue=f"{stack.settings.task_queue}-void",
    )
    try:
        payload = {
            "client_id": client["id"],
            "title": "Gutters",
            "starts_on": today().isoformat(),
            "every": "year",
            "visits": 2,
        }
        error = await stack.api("POST", "/agreements", 409, json=payload)
        assert error["error"]["code"] == "workflow_exists"
        assert "nothing was booked" in error["error"]["message"]
        items = (await stack.api("GET", "/agreements", 200))["items"]
        assert [item["id"] for item in items] == [first["id"]]
    finally:
        await squatter.terminate()
