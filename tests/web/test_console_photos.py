"""A job's photos in the staff console: the client's page links its bookings, a job's page
lists its photos with an upload form (labelled fields, CSRF-checked) and a delete button."""

from __future__ import annotations

import io
import re

from aiohttp import FormData
from sqlalchemy import select

from portico.models import BookingPhoto
from tests.support.console_support import staff_sign_in
from tests.support.photos import has_no_metadata, phone_jpeg, text_as_jpeg
from tests.support.portal_support import CSRF, seed_client
from tests.web.test_photos import make_booking


def upload_form(csrf: str, data: bytes, caption: str = "", visible: bool = True) -> FormData:
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("caption", caption)
    form.add_field("portal_visible", "false")  # as the page's hidden field sends it
    if visible:
        form.add_field("portal_visible", "true")
    form.add_field("file", io.BytesIO(data), filename="site.jpg", content_type="image/jpeg")
    return form


async def photos(stack) -> list[BookingPhoto]:
    async with stack.sessions() as session:
        return list(await session.scalars(select(BookingPhoto).order_by(BookingPhoto.id)))


async def test_staff_upload_see_and_delete_a_jobs_photos(stack):
    client, _ = await seed_client(stack)
    job = await make_booking(stack, client["id"])
    visit = await make_booking(stack, client["id"], kind="visit", title="Survey")
    browser = await staff_sign_in(stack)
    try:
        status, html, _ = await browser.get(f"/staff/clients/{client['id']}")
        assert status == 200 and f'href="/staff/bookings/{job["id"]}">Deck repair</a>' in html

        page = f"/staff/bookings/{job['id']}"
        status, html, _ = await browser.get(page)
        assert status == 200 and "<h1>Deck repair</h1>" in html and "No photos yet." in html
        for label in ("Photo", "Caption", "Show in the client's portal"):
            assert re.search(rf'<label for="[a-z-]+">{label}</label>', html), label
        assert ">Upload photo</button>" in html and 'enctype="multipart/form-data"' in html
        csrf = CSRF.search(html).group(1)
        action = f"{page}/photos"

        status, html, _ = await browser.post(action, upload_form(csrf, phone_jpeg(), "Before"))
        assert status == 200 and "The photo was added." in html
        status, html, _ = await browser.post(action, upload_form(csrf, phone_jpeg(), visible=False))
        assert status == 200
        first, second = await photos(stack)
        assert (first.caption, first.portal_visible, first.uploaded_by) == (
            "Before",
            True,
            "staff:office@firm.test",
        )
        assert second.portal_visible is False and second.caption is None
        assert "Shown in portal" in html and "Staff only" in html
        assert 'alt="Before"' in html and 'alt="Photo 2 of job Deck repair"' in html
        async with browser.session.get(f"{browser.base}/staff/photos/{first.id}") as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert has_no_metadata(await response.read())
        status, _, response = await browser.get(f"/staff/photos/{first.id}/thumbnail")
        assert status == 200 and response.content_type == "image/jpeg"

        # Refusals redisplay the form with the message beside the file field; nothing stored.
        status, html, _ = await browser.post(action, upload_form(csrf, text_as_jpeg(), "Notes"))
        assert status == 422 and 'id="err-file"' in html and "not a JPEG" in html
        assert 'value="Notes"' in html
        status, html, _ = await browser.post(action, upload_form("forged", phone_jpeg()))
        assert status == 400
        assert len(await photos(stack)) == 2

        status, html, _ = await browser.post(
            f"/staff/photos/{second.id}/delete", {"csrf": "forged"}
        )
        assert status == 400 and len(await photos(stack)) == 2
        status, html, _ = await browser.post(f"/staff/photos/{second.id}/delete", {"csrf": csrf})
        assert status == 200 and "The photo was deleted." in html
        assert [p.id for p in await photos(stack)] == [first.id]

        # Another kind of booking has no upload form, and refuses one posted anyway.
        status, html, _ = await browser.get(f"/staff/bookings/{visit['id']}")
        assert status == 200 and "Photos can be added to jobs only" in html
        assert "Upload photo" not in html
        status, _, _ = await browser.post(
            f"/staff/bookings/{visit['id']}/photos", upload_form(csrf, phone_jpeg())
        )
        assert status == 409
    finally:
        await browser.close()

    # Signed out, the console's photo URLs show nothing.
    response = await stack.http.get(f"/staff/photos/{first.id}", allow_redirects=False)
    assert response.status == 303 and "image" not in response.content_type
