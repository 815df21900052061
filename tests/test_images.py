"""Uploaded photos are checked by decoding them, re-encoded without metadata and upright,
thumbnailed, and refused (with a clear code) when they are no image, damaged or a bomb."""

from __future__ import annotations

import asyncio

import pytest

from portico.images import (
    ImageLimits,
    ImageTooLarge,
    InvalidImage,
    TooManyPixels,
    process,
    process_off_loop,
)
from tests.support.photos import (
    BLUE,
    RED,
    has_no_metadata,
    opened,
    phone_jpeg,
    png_bomb,
    png_with_metadata,
    text_as_jpeg,
    truncated_jpeg,
    webp_with_metadata,
)

LIMITS = ImageLimits()


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], colour, strict=True))


def test_a_phone_jpeg_loses_its_gps_and_camera_and_is_turned_upright():
    source = phone_jpeg(600, 300, orientation=6)  # sensor landscape, "turn 90° clockwise"
    assert opened(source).getexif().get_ifd(0x8825)  # the GPS position is there to begin with

    photo = process(source, LIMITS)

    assert photo.format == "JPEG" and photo.content_type == "image/jpeg"
    assert has_no_metadata(photo.image.data) and has_no_metadata(photo.thumbnail.data)
    assert b"secret" not in photo.image.data  # the JPEG comment went too
    image = opened(photo.image.data)
    assert image.size == (300, 600) == (photo.image.width, photo.image.height)
    # Turned clockwise, the left (red) half is now on top.
    assert near(image.getpixel((150, 100)), RED) and near(image.getpixel((150, 500)), BLUE)
    thumbnail = opened(photo.thumbnail.data)
    assert thumbnail.size == (200, 400)


def test_png_keeps_its_transparency_and_loses_its_text_xmp_and_exif():
    photo = process(png_with_metadata(), LIMITS)
    assert photo.format == "PNG" and photo.suffix == ".png"
    assert has_no_metadata(photo.image.data)
    image = opened(photo.image.data)
    assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0


def test_webp_loses_its_exif_and_xmp():
    photo = process(webp_with_metadata(), LIMITS)
    assert photo.format == "WEBP" and photo.content_type == "image/webp"
    assert has_no_metadata(photo.image.data)
    assert b"GPSLatitude" not in photo.image.data
    assert opened(photo.thumbnail.data).format == "WEBP"


def test_a_large_photo_is_scaled_down_to_the_longest_side_allowed():
    photo = process(phone_jpeg(3000, 1000, orientation=1), ImageLimits(max_side=1200))
    assert (photo.image.width, photo.image.height) == (1200, 400)
    assert (photo.thumbnail.width, photo.thumbnail.height) == (400, 133)


@pytest.mark.parametrize(
    "data",
    [text_as_jpeg(), truncated_jpeg(), b"", b"GIF89a" + bytes(100)],
    ids=["text-named-jpg", "truncated-jpeg", "empty", "gif"],
)
def test_what_is_no_complete_jpeg_png_or_webp_is_refused(data):
    with pytest.raises(InvalidImage) as refused:
        process(data, LIMITS)
    assert refused.value.status == 422 and refused.value.code == "invalid_image"


@pytest.mark.parametrize("side", [9_000, 20_000], ids=["over-our-limit", "over-pillows-limit"])
def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded(side):
    bomb = png_bomb(side)
    assert len(bomb) < 1024 * 1024  # a small file claiming 81 or 400 million pixels
    with pytest.raises(TooManyPixels) as refused:
        process(bomb, LIMITS)
    assert refused.value.status == 413 and refused.value.code == "too_many_pixels"


def test_more_bytes_than_the_limit_are_refused():
    with pytest.raises(ImageTooLarge) as refused:
        process(phone_jpeg(), ImageLimits(max_bytes=1000))
    assert refused.value.status == 413 and refused.value.code == "too_large"


async def test_the_work_runs_off_the_event_loop():
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        photo = await process_off_loop(phone_jpeg(4000, 3000, orientation=1), LIMITS)
    finally:
        task.cancel()
    assert photo.image.width == 4000
    assert ticks > 1  # the loop kept serving while the photo was decoded
