"""A booking's page in the staff console (`/staff/bookings/{id}`): its details and, for a job,
its photos with an upload form and a delete button per photo (CSRF like every console form)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from portico.errors import PorticoError
from portico.models import Booking
from portico.photo_schemas import PhotoMeta
from portico.services.photos import JOB
from web.api.photos import image_response
from web.api.staff import read_multipart
from web.console.common import (
    FieldErrors,
    checked_form,
    csrf_valid,
    path_int,
    render,
    signed_in,
    validated,
)
from web.console.keys import QUERIES
from web.http.portal_keys import PHOTOS

routes = web.RouteTableDef()
NOTICES = {"uploaded": "The photo was added.", "deleted": "The photo was deleted."}


async def booking_page(
    request: web.Request,
    booking_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    booking = await request.app[PHOTOS].booking(booking_id)
    client, _ = await request.app[QUERIES].client(booking.client_id)
    photos = (await request.app[PHOTOS].of_job(booking_id)).photos if booking.kind == JOB else []
    return await render(
        request,
        "booking.html",
        {
            "title": booking.title,
            "section": "clients",
            "booking": booking,
            "client": client,
            "photos": photos,
            "form": form or {"portal_visible": True},
            "errors": errors or {},
            "notice": NOTICES.get(request.query.get("done", "")),
        },
        status=status,
    )


@routes.get("/staff/bookings/{id:\\d+}")
async def show_booking(request: web.Request) -> web.Response:
    await signed_in(request)
    return await booking_page(request, path_int(request))


@routes.post("/staff/bookings/{id:\\d+}/photos")
async def upload_photo(request: web.Request) -> web.Response:
    """The upload form: the file is read within the photo size limit, then the CSRF token is
    checked before anything else is done with it."""
    who = await signed_in(request)
    booking_id = path_int(request)
    photos = request.app[PHOTOS]
    booking: Booking = await photos.job(booking_id)
    try:
        fields, data = await read_multipart(
            request, PhotoMeta, limit=photos.limits.max_bytes, what="photo"
        )
    except PorticoError as err:  # too large, or not a form at all
        return await booking_page(
            request, booking.id, errors={"file": err.message}, status=err.status
        )
    csrf_valid(request, who, str(fields.pop("csrf", "")))
    meta, errors = validated(PhotoMeta, fields)
    if not data:
        errors["file"] = "Choose a photo to upload."
    if meta is None or errors or not data:
        return await booking_page(request, booking.id, form=fields, errors=errors, status=422)
    try:
        await photos.add(booking.id, meta, data, actor=who.actor)
    except PorticoError as err:  # not an image, damaged, too many pixels
        return await booking_page(
            request, booking.id, form=fields, errors={"file": err.message}, status=err.status
        )
    raise web.HTTPSeeOther(f"/staff/bookings/{booking.id}?done=uploaded")


@routes.post("/staff/photos/{id:\\d+}/delete")
async def delete_photo(request: web.Request) -> web.Response:
    who = await signed_in(request)
    await checked_form(request, who)
    photo = await request.app[PHOTOS].delete(path_int(request))
    raise web.HTTPSeeOther(f"/staff/bookings/{photo.booking_id}?done=deleted")


@routes.get("/staff/photos/{id:\\d+}")
async def photo_image(request: web.Request) -> web.Response:
    await signed_in(request)
    return await image_response(request, await request.app[PHOTOS].get(path_int(request)))


@routes.get("/staff/photos/{id:\\d+}/thumbnail")
async def photo_thumbnail(request: web.Request) -> web.Response:
    await signed_in(request)
    photo = await request.app[PHOTOS].get(path_int(request))
    return await image_response(request, photo, thumbnail=True)
