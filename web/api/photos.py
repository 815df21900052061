"""Staff API routes for photos of jobs (CONTRACT §13): upload to a booking of kind `job`,
list, change, delete, and the image files themselves (bearer key as the rest)."""

from __future__ import annotations

from aiohttp import web

from portico.errors import Invalid
from portico.models import BookingPhoto
from portico.photo_schemas import PhotoMeta, PhotoUpdateIn
from portico.services.photos import photo_json
from web.api.staff import API_ACTOR, body, path_id, read_multipart, validate
from web.http.keys import SETTINGS
from web.http.portal_keys import PHOTOS

routes = web.RouteTableDef()
# revalidated each time: a photo made staff-only, or a signed-out browser, shows nothing stale
CACHE = "private, no-cache"
NO_FILE = "Attach the photo (JPEG, PNG or WebP) as the `file` field."


@routes.post("/api/v1/bookings/{id}/photos")
async def add_photo(request: web.Request) -> web.Response:
    """Multipart `file` (JPEG, PNG or WebP up to 15 MiB), `caption?`, `portal_visible?`: the
    photo is decoded, re-encoded without metadata and thumbnailed before it is stored."""
    photos = request.app[PHOTOS]
    booking_id = path_id(request)
    await photos.job(booking_id)  # 404, or 409 for another kind, before the body is read
    if not request.content_type.startswith("multipart/"):
        raise Invalid("Send the photo as multipart/form-data with a `file` part.")
    fields, data = await read_multipart(
        request, PhotoMeta, limit=photos.limits.max_bytes, what="photo"
    )
    meta = validate(PhotoMeta, fields)
    if not data:
        raise Invalid(NO_FILE, code="invalid_image")
    photo = await photos.add(booking_id, meta, data, actor=API_ACTOR)
    return web.json_response(photo_json(photo, request.app[SETTINGS]), status=201)


@routes.get("/api/v1/bookings/{id}/photos")
async def list_photos(request: web.Request) -> web.Response:
    job = await request.app[PHOTOS].of_job(path_id(request))
    settings = request.app[SETTINGS]
    return web.json_response({"items": [photo_json(p, settings) for p in job.photos]})


@routes.get("/api/v1/photos/{id}")
async def show_photo(request: web.Request) -> web.Response:
    photo = await request.app[PHOTOS].get(path_id(request))
    return web.json_response(photo_json(photo, request.app[SETTINGS]))


@routes.patch("/api/v1/photos/{id}")
async def update_photo(request: web.Request) -> web.Response:
    data = await body(request, PhotoUpdateIn)
    photo = await request.app[PHOTOS].update(path_id(request), data)
    return web.json_response(photo_json(photo, request.app[SETTINGS]))


@routes.delete("/api/v1/photos/{id}")
async def delete_photo(request: web.Request) -> web.Response:
    await request.app[PHOTOS].delete(path_id(request))
    return web.Response(status=204)


@routes.get("/api/v1/photos/{id}/image")
async def photo_image(request: web.Request) -> web.Response:
    return await image_response(request, await request.app[PHOTOS].get(path_id(request)))


@routes.get("/api/v1/photos/{id}/thumbnail")
async def photo_thumbnail(request: web.Request) -> web.Response:
    photo = await request.app[PHOTOS].get(path_id(request))
    return await image_response(request, photo, thumbnail=True)


async def image_response(
    request: web.Request, photo: BookingPhoto, *, thumbnail: bool = False
) -> web.Response:
    """A stored photo (or its thumbnail) inline, for whoever the caller let see it."""
    data = await request.app[PHOTOS].read(photo, thumbnail=thumbnail)
    return web.Response(
        body=data,
        content_type=photo.content_type,
        headers={"Cache-Control": CACHE, "Content-Disposition": "inline"},
    )
