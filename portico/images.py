"""Photos staff upload to a job: untrusted image files, checked by decoding them with Pillow
(never by their name or content type), re-encoded without any metadata and thumbnailed.

Re-encoding keeps only the pixels: EXIF (GPS position, camera serial, time), XMP, IPTC and
comments are gone; the EXIF orientation is applied to the pixels first, so the photo still
shows the right way up. Decoding is CPU-bound and a hostile file can claim billions of pixels,
so the work runs in a small thread pool of its own (`process_off_loop`), refused beyond
`ImageLimits` before the pixels are decoded.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from portico.errors import Invalid, TooLarge

MIB = 1024 * 1024
# What Pillow may try to open (the other plugins are never consulted) and what comes out.
OPENERS = ("JPEG", "PNG", "WEBP")
# Cameras that store several pictures in one JPEG (MPO) are JPEG for us.
OUTPUT = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
WORKERS = 2  # photos decoded at once per process; the others wait their turn


class InvalidImage(Invalid):
    """Not a JPEG, PNG or WebP image that decodes completely (422)."""

    code = "invalid_image"


class ImageTooLarge(TooLarge):
    """More bytes than the upload limit (413)."""

    code = "too_large"


class TooManyPixels(TooLarge):
    """Claims more pixels than may be decoded safely: a decompression bomb, or a panorama
    too large to show (413)."""

    code = "too_many_pixels"


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 15 * MIB
    max_pixels: int = 60_000_000  # a 48-megapixel phone photo fits
    max_side: int = 4096  # the stored photo: larger ones are scaled down to this
    thumbnail_side: int = 400


@dataclass(frozen=True)
class Encoded:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ProcessedPhoto:
    format: str  # JPEG | PNG | WEBP
    image: Encoded
    thumbnail: Encoded

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.format]


def process(data: bytes, limits: ImageLimits) -> ProcessedPhoto:
    """Decode `data` completely, then re-encode it (at most `max_side` pixels on its long side)
    and a thumbnail, both without metadata. Raises InvalidImage, ImageTooLarge, TooManyPixels."""
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"The photo is larger than {limits.max_bytes // MIB} MiB.")
    try:
        with Image.open(io.BytesIO(data), formats=OPENERS) as source:
            width, height = source.size
            if width * height > limits.max_pixels:
                raise too_many_pixels(limits)
            kind = OUTPUT.get(source.format or "")
            if kind is None:
                raise InvalidImage("Upload a JPEG, PNG or WebP photo.")
            if kind == "JPEG" and max(width, height) > limits.max_side:
                # Decode at a reduced scale, still at least max_side: less memory and time.
                source.draft(None, fit(source.size, limits.max_side))
            source.load()  # every pixel: a truncated or corrupt file fails here
            upright = ImageOps.exif_transpose(source)
            pixels = without_metadata(upright, kind, source.info.get("icc_profile"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise too_many_pixels(limits) from err
    except UnidentifiedImageError as err:
        raise InvalidImage("This file is not a JPEG, PNG or WebP image.") from err
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as err:
        # What Pillow's decoders raise for a truncated or damaged file.
        raise InvalidImage("The photo is damaged or incomplete and cannot be read.") from err
    image = shrunk(pixels, limits.max_side)
    thumbnail = shrunk(pixels, limits.thumbnail_side)
    return ProcessedPhoto(kind, encode(image, kind), encode(thumbnail, kind))


async def process_off_loop(data: bytes, limits: ImageLimits) -> ProcessedPhoto:
    """`process` in the photo thread pool: the event loop serves other requests meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(pool(), process, data, limits)


_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="photos")
    return _pool


def too_many_pixels(limits: ImageLimits) -> TooManyPixels:
    return TooManyPixels(
        f"The photo has more than {limits.max_pixels // 1_000_000} million pixels; "
        "upload a smaller copy."
    )


def fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled down (never up) so that its long side is at most `side`."""
    width, height = size
    scale = min(1.0, side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )


def without_metadata(image: Image.Image, kind: str, icc_profile: bytes | None) -> Image.Image:
    """The pixels in a mode `kind` stores, with no metadata left: `info` is what Pillow's
    encoders copy EXIF, XMP and comments from. The colour profile is kept when the colours
    still are in its space (it is no personal data, and phones shoot in Display P3)."""
    keep = "L" if image.mode in ("1", "L") else "RGB"
    if kind != "JPEG" and has_alpha(image):
        keep = "RGBA"
    clean = image.convert(keep) if image.mode != keep else image.copy()
    clean.info = {}
    if icc_profile and image.mode in ("RGB", "RGBA", "L") and clean.mode[0] == image.mode[0]:
        clean.info["icc_profile"] = icc_profile
    return clean


def shrunk(image: Image.Image, side: int) -> Image.Image:
    size = fit(image.size, side)
    if size == image.size:
        return image
    smaller = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    smaller.info = dict(image.info)
    return smaller


def encode(image: Image.Image, kind: str) -> Encoded:
    out = io.BytesIO()
    icc = image.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc else {}
    if kind == "JPEG":
        image.save(out, "JPEG", quality=87, optimize=True, progressive=True, **extra)
    elif kind == "PNG":
        image.save(out, "PNG", compress_level=6, **extra)
    else:
        image.save(out, "WEBP", quality=85, method=4, **extra)
    return Encoded(out.getvalue(), image.width, image.height)
