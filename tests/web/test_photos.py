"""Photos of jobs through the staff API (CONTRACT §13): uploads are re-encoded without their
metadata, refused with a clear 4xx when they are no image, damaged, a bomb or too large, and
shown in the portal to the job's own client only (never staff-only ones)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import FormData
from sqlalchemy import func, select

from portico.models import BookingPhoto
from tests.support.photos import (
    has_no_metadata,
    opened,
    phone_jpeg,
    png_bomb,
    png_with_metadata,
    text_as_jpeg,
    truncated_jpeg,
    webp_with_metadata,
)
from tests.support.portal_support import seed_client, sign_in

MIB = 1024 * 1024


def photo_form(
    data: bytes,
    filename: str = "IMG_0042.jpg",
    content_type: str = "image/jpeg",
    **fields: str,
) -> FormData:
    form = FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    return form


async def make_booking(stack, client_id: int, kind: str = "job", title: str = "Deck repair"):
    return await stack.api(
        "POST",
        "/bookings",
        201,
        json={
            "client_id": client_id,
            "title": title,
            "kind": kind,
            "date": datetime.now(UTC).date().isoformat(),
            "status": "completed",
            "notes": "Replaced three boards and re-stained.",
        },
    )


def path_of(url: str) -> str:
    assert url.startswith("http://portico.test/"), url
    return url.removeprefix("http://portico.test")


async def staff_get(stack, url: str) -> tuple[int, bytes, str]:
    response = await stack.http.get(path_of(url), headers=stack.auth)
    return response.status, await response.read(), response.content_type


async def stored_files(stack) -> list[Path]:
    root = Path(stack.settings.files_dir) / "photos"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def photo_rows(stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(BookingPhoto)) or 0)


async def test_a_phone_photo_is_stored_upright_without_gps_or_camera_data(stack):
    client, _ = await seed_client(stack)
    job = await make_booking(stack, client["id"])

    made = await stack.api(
        "POST",
        f"/bookings/{job['id']}/photos",
        201,
        data=photo_form(phone_jpeg(600, 300, orientation=6), caption="New boards"),
    )

    assert set(made) >= {"id", "url", "thumbnail_url"}
    assert made["booking_id"] == job["id"] and made["portal_visible"] is True
    assert made["caption"] == "New boards" and made["content_type"] == "image/jpeg"
    assert (made["width"], made["height"]) == (300, 600)  # turned upright
    status, image, content_type = await staff_get(stack, made["url"])
    assert status == 200 and content_type == "image/jpeg"
    assert has_no_metadata(image)
    assert opened(image).getpixel((150, 100))[0] > 150  # the red half is on top
    # What is on disk is the re-encoded photo, nothing else.
    files = await stored_files(stack)
    assert len(files) == 2 and all(has_no_metadata(f.read_bytes()) for f in files)
    assert image in [f.read_bytes() for f in files]
    status, thumbnail, _ = await staff_get(stack, made["thumbnail_url"])
    assert status == 200 and max(opened(thumbnail).size) == 400 and has_no_metadata(thumbnail)
    # Without the staff key, nothing.
    response = await stack.http.get(path_of(made["url"]))
    assert response.status == 401


async def test_png_and_webp_are_taken_and_keep_their_format(stack):
    client, _ = await seed_client(stack)
    job = await make_booking(stack, client["id"])
    png = await stack.api(
        "POST",
        f"/bookings/{job['id']}/photos",
        201,
        data=photo_form(png_with_metadata(), "plan.png", "image/png", portal_visible="false"),
    )
    webp = await stack.api(
        "POST",
        f"/bookings/{job['id']}/photos",
        201,
        data=photo_form(webp_with_metadata(), "after.webp", "image/webp"),
    )
    assert png["content_type"] == "image/png" and png["portal_visible"] is False
    assert webp["content_type"] == "image/webp"
    for made, kind in ((png, "image/png"), (webp, "image/webp")):
        status, data, content_type = await staff_get(stack, made["url"])
        assert status == 200 and content_type == kind and has_no_metadata(data)
    listed = await stack.api("GET", f"/bookings/{job['id']}/photos", 200)
    assert [p["id"] for p in listed["items"]] == [png["id"], webp["id"]]


async def test_refusals_store_nothing(stack):
    client, _ = await seed_client(stack)
    job = await make_booking(stack, client["id"])
    visit = await make_booking(stack, client["id"], kind="visit", title="Survey")
    upload = f"/bookings/{job['id']}/photos"

    async def refused(status: int, form: FormData, path: str = upload) -> dict[str, Any]:
        body = await stack.api("POST", path, status, data=form)
        return body["error"]

    # The extension and the declared type are not what decides.
    assert (await refused(422, photo_form(text_as_jpeg())))["code"] == "invalid_image"
    assert (await refused(422, photo_form(truncated_jpeg())))["code"] == "invalid_image"
    bomb = await refused(413, photo_form(png_bomb(), "bomb.png", "image/png"))
    assert bomb["code"] == "too_many_pixels" and "million pixels" in bomb["message"]
    big = phone_jpeg() + bytes(16 * MIB)
    too_large = await refused(413, photo_form(big))
    assert too_large["code"] == "too_large" and "15 MB" in too_large["message"]
    not_a_job = await refused(409, photo_form(phone_jpeg()), f"/bookings/{visit['id']}/photos")
    assert not_a_job["code"] == "not_a_job"
    assert await refused(404, photo_form(phone_jpeg()), "/bookings/999999/photos")
    await stack.api("GET", f"/bookings/{visit['id']}/photos", 409)
    await stack.api("GET", "/bookings/999999/photos", 404)
    no_file = FormData(default_to_multipart=True)
    no_file.add_field("caption", "Forgot the file")
    assert (await refused(422, no_file))["code"] == "invalid_image"
    caption = await refused(422, photo_form(phone_jpeg(), caption="x" * 501))
    assert "caption" in caption["message"]
    await refused(422, photo_form(phone_jpeg(), portal_visible="maybe"))
    await refused(422, photo_form(phone_jpeg(), location="51.5N"))  # no such field
    await stack.api("POST", upload, 422, json={"caption": "JSON is no upload"})

    assert await photo_rows(stack) == 0 and await stored_files(stack) == []


async def test_staff_change_and_delete_a_photo(stack):
    client, _ = await seed_client(stack)
    job = await make_booking(stack, client["id"])
    made = await stack.api(
        "POST", f"/bookings/{job['id']}/photos", 201, data=photo_form(phone_jpeg())
    )
    changed = await stack.api(
        "PATCH", f"/photos/{made['id']}", 200, json={"caption": "Before", "portal_visible": False}
    )
    assert changed["caption"] == "Before" and changed["portal_visible"] is False
    again = await stack.api("PATCH", f"/photos/{made['id']}", 200, json={"caption": None})
    assert again["caption"] is None and again["portal_visible"] is False
    await stack.api("PATCH", f"/photos/{made['id']}", 422, json={"portal_visible": None})
    assert (await stack.api("GET", f"/photos/{made['id']}", 200))["id"] == made["id"]

    # The same picture twice: deleting one keeps the files the other still shows.
    twin = await stack.api(
        "POST", f"/bookings/{job['id']}/photos", 201, data=photo_form(phone_jpeg())
    )
    await stack.api("DELETE", f"/photos/{made['id']}", 204)
    assert len(await stored_files(stack)) == 2
    assert (await staff_get(stack, twin["url"]))[0] == 200
    await stack.api("DELETE", f"/photos/{twin['id']}", 204)
    assert await stored_files(stack) == []
    await stack.api("GET", f"/photos/{made['id']}", 404)
    await stack.api("DELETE", f"/photos/{made['id']}", 404)
    assert (await staff_get(stack, made["url"]))[0] == 404


def portal_urls(photo: dict[str, Any]) -> tuple[str, str]:
    return f"/portal/photos/{photo['id']}", f"/portal/photos/{photo['id']}/thumbnail"


THUMBNAIL = re.compile(r'<img src="(/portal/photos/(\d+)/thumbnail)"[^>]*alt="([^"]*)"')


async def test_the_portal_shows_a_jobs_photos_to_its_client_only(stack):
    dana, _ = await seed_client(stack, "Dana", "dana@client.test")
    await seed_client(stack, "Eve", "eve@other.test", "Garage")
    job = await make_booking(stack, dana["id"])
    upload = f"/bookings/{job['id']}/photos"
    captioned = await stack.api(
        "POST", upload, 201, data=photo_form(phone_jpeg(), caption="New boards, stained")
    )
    plain = await stack.api("POST", upload, 201, data=photo_form(webp_with_metadata()))
    hidden = await stack.api(
        "POST", upload, 201, data=photo_form(png_with_metadata(), portal_visible="false")
    )

    browser = await sign_in(stack, "dana@client.test")
    try:
        status, html, _ = await browser.get(f"/portal/bookings/{job['id']}")
        assert status == 200
        assert "Deck repair" in html and "Completed" in html
        assert "Replaced three boards and re-stained." in html
        shown = THUMBNAIL.findall(html)
        assert [int(photo_id) for _, photo_id, _ in shown] == [captioned["id"], plain["id"]]
        assert [alt for _, _, alt in shown] == ["New boards, stained", "Photo 2 of job Deck repair"]
        assert f'href="/portal/photos/{captioned["id"]}"' in html  # full size on click
        for photo in (captioned, plain):
            for path in (
                f"/portal/photos/{photo['id']}",
                f"/portal/photos/{photo['id']}/thumbnail",
            ):
                status, _, response = await browser.get(path)
                assert status == 200 and response.content_type == photo["content_type"], path
        # The staff-only photo is not there at all, not even by its id.
        assert f"/portal/photos/{hidden['id']}" not in html
        for path in portal_urls(hidden):
            assert (await browser.get(path))[0] == 404
    finally:
        await browser.close()

    intruder = await sign_in(stack, "eve@other.test")
    try:
        status, html, _ = await intruder.get(f"/portal/bookings/{job['id']}")
        assert status == 404 and "New boards" not in html
        for photo in (captioned, plain, hidden):
            for path in (
                f"/portal/photos/{photo['id']}",
                f"/portal/photos/{photo['id']}/thumbnail",
            ):
                status, _, response = await intruder.get(path)
                assert status == 404 and "image" not in response.content_type, path
        assert (await intruder.get("/portal/photos/999999"))[0] == 404
    finally:
        await intruder.close()


async def test_the_portal_photo_urls_need_a_session(stack):
    dana, _ = await seed_client(stack, "Dana", "dana@client.test")
    job = await make_booking(stack, dana["id"])
    made = await stack.api(
        "POST", f"/bookings/{job['id']}/photos", 201, data=photo_form(phone_jpeg())
    )
    response = await stack.http.get(f"/portal/photos/{made['id']}", allow_redirects=False)
    assert response.status in (303, 401, 404) and "image" not in response.content_type


async def test_the_openapi_document_describes_the_photo_calls(stack):
    response = await stack.http.get("/api/v1/openapi.json")
    doc = await response.json()
    upload = doc["paths"]["/bookings/{id}/photos"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"]["contentMediaType"] == "image/jpeg"
    assert {"201", "404", "409", "413", "422"} <= set(upload["responses"])
    answer = doc["components"]["schemas"]["PhotoOut"]
    assert {"id", "url", "thumbnail_url"} <= set(answer["required"])
    assert set(doc["paths"]["/photos/{id}"]) == {"get", "patch", "delete"}
    image = doc["paths"]["/photos/{id}/image"]["get"]["responses"]["200"]["content"]
    assert set(image) == {"image/jpeg", "image/png", "image/webp"}
    assert "get" in doc["paths"]["/bookings/{id}/photos"]
