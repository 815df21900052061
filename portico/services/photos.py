"""Photos of jobs: staff add them to a booking of kind `job` (API and console), clients see the
`portal_visible` ones of their own jobs in the portal.

An upload is decoded and re-encoded off the event loop (`portico.images`) before anything is
stored; the files are content-addressed (their SHA-256 names them: nobody can guess one
without having the photo), and a file is removed with the last row that names it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.errors import Conflict, NotFound
from portico.files import FileStore
from portico.images import ImageLimits, ProcessedPhoto, process_off_loop
from portico.models import Booking, BookingPhoto
from portico.photo_schemas import PhotoMeta, PhotoUpdateIn
from portico.services.approvals import iso
from portico.settings import Settings

JOB = "job"
FOLDER = "photos"
THUMBNAILS = "photos/thumbnails"


@dataclass(frozen=True)
class JobPhotos:
    """A job and its photos, in upload order (what a page shows)."""

    booking: Booking
    photos: list[BookingPhoto]


def photo_json(photo: BookingPhoto, settings: Settings) -> dict[str, Any]:
    base = f"/api/v1/photos/{photo.id}"
    return {
        "id": photo.id,
        "booking_id": photo.booking_id,
        "url": settings.url(base + "/image"),
        "thumbnail_url": settings.url(base + "/thumbnail"),
        "caption": photo.caption,
        "portal_visible": photo.portal_visible,
        "content_type": photo.content_type,
        "width": photo.width,
        "height": photo.height,
        "size_bytes": photo.size_bytes,
        "created_at": iso(photo.created_at),
    }


class Photos:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        limits: ImageLimits | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.files = FileStore(settings.files_dir)
        self.limits = limits or ImageLimits()

    # --- staff ------------------------------------------------------------------------------

    async def booking(self, booking_id: int) -> Booking:
        async with self.sessions() as session:
            booking = await session.get(Booking, booking_id)
        if booking is None:
            raise NotFound(f"Booking {booking_id} does not exist.")
        return booking

    async def job(self, booking_id: int) -> Booking:
        """The booking, if it is a job (NotFound; Conflict `not_a_job` for other kinds)."""
        booking = await self.booking(booking_id)
        if booking.kind != JOB:
            raise Conflict(
                f"Booking {booking_id} is a {booking.kind}: photos go on bookings of kind job.",
                code="not_a_job",
            )
        return booking

    async def add(
        self, booking_id: int, meta: PhotoMeta, data: bytes, *, actor: str
    ) -> BookingPhoto:
        """Check, re-encode and store an uploaded photo (InvalidImage, ImageTooLarge,
        TooManyPixels before anything is stored)."""
        await self.job(booking_id)
        processed = await process_off_loop(data, self.limits)
        file_path, thumbnail_path = await asyncio.to_thread(self._store, processed)
        async with self.sessions() as session, session.begin():
            await self._still_a_job(session, booking_id)
            photo = BookingPhoto(
                booking_id=booking_id,
                caption=meta.caption,
                portal_visible=meta.portal_visible,
                content_type=processed.content_type,
                file_path=file_path,
                sha256=hashlib.sha256(processed.image.data).hexdigest(),
                size_bytes=len(processed.image.data),
                width=processed.image.width,
                height=processed.image.height,
                thumbnail_path=thumbnail_path,
                uploaded_by=actor,
            )
            session.add(photo)
        return photo

    def _store(self, processed: ProcessedPhoto) -> tuple[str, str]:
        suffix = processed.suffix
        return (
            self.files.save(FOLDER, processed.image.data, suffix),
            self.files.save(THUMBNAILS, processed.thumbnail.data, suffix),
        )

    async def _still_a_job(self, session: AsyncSession, booking_id: int) -> None:
        """The job still exists (and is still a job) in this transaction."""
        booking = await session.get(Booking, booking_id)
        if booking is None or booking.kind != JOB:
            raise NotFound(f"Booking {booking_id} does not exist.")

    async def of_job(self, booking_id: int) -> JobPhotos:
        booking = await self.job(booking_id)
        async with self.sessions() as session:
            photos = list(
                await session.scalars(
                    select(BookingPhoto)
                    .where(BookingPhoto.booking_id == booking_id)
                    .order_by(BookingPhoto.id)
                )
            )
        return JobPhotos(booking, photos)

    async def get(self, photo_id: int) -> BookingPhoto:
        async with self.sessions() as session:
            photo = await session.get(BookingPhoto, photo_id)
        if photo is None:
            raise NotFound(f"Photo {photo_id} does not exist.")
        return photo

    async def update(self, photo_id: int, data: PhotoUpdateIn) -> BookingPhoto:
        async with self.sessions() as session, session.begin():
            photo = await session.get(BookingPhoto, photo_id)
            if photo is None:
                raise NotFound(f"Photo {photo_id} does not exist.")
            for name in data.model_fields_set:
                setattr(photo, name, getattr(data, name))
        return photo

    async def delete(self, photo_id: int) -> BookingPhoto:
        """Remove the photo; its files go too unless another photo is the same picture."""
        async with self.sessions() as session, session.begin():
            photo = await session.get(BookingPhoto, photo_id)
            if photo is None:
                raise NotFound(f"Photo {photo_id} does not exist.")
            await session.delete(photo)
        paths = (photo.file_path, photo.thumbnail_path)
        async with self.sessions() as session:
            still_used = await session.scalar(
                select(func.count())
                .select_from(BookingPhoto)
                .where(
                    or_(
                        BookingPhoto.file_path.in_(paths),
                        BookingPhoto.thumbnail_path.in_(paths),
                    )
                )
            )
        if not still_used:
            for path in paths:
                await asyncio.to_thread(self.files.delete, path)
        return photo

    async def read(self, photo: BookingPhoto, *, thumbnail: bool = False) -> bytes:
        path = photo.thumbnail_path if thumbnail else photo.file_path
        return await asyncio.to_thread(self.files.read, path)

    # --- the client's portal ----------------------------------------------------------------

    async def for_client(self, client_id: int, booking_id: int) -> list[BookingPhoto]:
        """The photos of this client's job that the portal shows (none for another's)."""
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(BookingPhoto)
                    .join(Booking, BookingPhoto.booking_id == Booking.id)
                    .where(
                        Booking.id == booking_id,
                        Booking.client_id == client_id,
                        BookingPhoto.portal_visible.is_(True),
                    )
                    .order_by(BookingPhoto.id)
                )
            )

    async def client_photo(self, client_id: int, photo_id: int) -> BookingPhoto:
        """One photo the portal shows this client, else NotFound (another client's, or a
        staff-only one, is not there)."""
        async with self.sessions() as session:
            photo = await session.scalar(
                select(BookingPhoto)
                .join(Booking, BookingPhoto.booking_id == Booking.id)
                .where(
                    BookingPhoto.id == photo_id,
                    Booking.client_id == client_id,
                    BookingPhoto.portal_visible.is_(True),
                )
            )
        if photo is None:
            raise NotFound("There is no such photo in your account.")
        return photo
