"""Validated inputs and answer shapes of the job photo calls of the staff API (CONTRACT §13)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, StrictBool

from portico.schemas import Omittable, Out, Strict

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
CAPTION_MAX = 500


class PhotoMeta(Strict):
    """The text parts of a photo upload (the image itself is the `file` part)."""

    caption: str | None = Field(
        None, min_length=1, max_length=CAPTION_MAX, description="Also the photo's alt text."
    )
    portal_visible: StrictBool = Field(
        True, description="Shown to the client in the portal; false: staff only."
    )


class PhotoUpdateIn(Strict):
    """A partial update: only the fields sent change (`caption: null` removes it)."""

    caption: str | None = Field(None, min_length=1, max_length=CAPTION_MAX)
    portal_visible: Omittable[StrictBool] = None


class PhotoOut(Out):
    id: int
    booking_id: int
    url: str = Field(description="The photo (staff API key), re-encoded without metadata.")
    thumbnail_url: str = Field(description="Its thumbnail, at most 400 px on the long side.")
    caption: str | None
    portal_visible: bool
    content_type: Literal["image/jpeg", "image/png", "image/webp"]
    width: int
    height: int
    size_bytes: int
    created_at: dt.datetime | None


class PhotoListOut(Out):
    items: list[PhotoOut]
