"""Image files for the photo tests, made in-test: a phone photo with GPS and a rotation in its
EXIF, PNG and WebP files carrying metadata, damaged files and a decompression bomb."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, PngImagePlugin

GPS_IFD = 0x8825
ORIENTATION = 0x0112
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>'
    b'<rdf:Description exif:GPSLatitude="51,30N"/></rdf:RDF></x:xmpmeta>'
)
RED, BLUE = (220, 20, 20), (20, 20, 220)


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}
    return exif


def two_tone(width: int = 600, height: int = 300, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: where the red ends up tells how it was turned."""
    image = Image.new(mode, (width, height), BLUE if mode == "RGB" else (*BLUE, 255))
    image.paste(RED if mode == "RGB" else (*RED, 255), (0, 0, width // 2, height))
    return image


def phone_jpeg(width: int = 600, height: int = 300, orientation: int = 6) -> bytes:
    """A JPEG as phones write them: the sensor's pixels plus EXIF saying "turn me 90° clockwise"
    (orientation 6), the camera model and where it was taken."""
    out = io.BytesIO()
    two_tone(width, height).save(
        out, "JPEG", quality=90, exif=exif_with_gps(orientation).tobytes(), comment=b"secret"
    )
    return out.getvalue()


def png_with_metadata() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Someone at 51.5N 0.1W")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    image = two_tone(mode="RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))  # a transparent corner
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, exif=exif_with_gps().tobytes())
    return out.getvalue()


def webp_with_metadata() -> bytes:
    out = io.BytesIO()
    two_tone().save(out, "WEBP", exif=exif_with_gps().tobytes(), xmp=XMP, quality=90)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    data = phone_jpeg(1200, 900)
    return data[: len(data) // 2]


def text_as_jpeg() -> bytes:
    return b"Dear office, here are the measurements: 12 ft by 14 ft.\n" * 40


def png_bomb(side: int = 20_000) -> bytes:
    """A real decompression bomb: a grayscale PNG of side x side pixels (400 million for the
    default) that is all black, so its compressed pixels take a few hundred KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then black pixels
    compressed = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", compressed)
        + chunk(b"IEND", b"")
    )


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def has_no_metadata(data: bytes) -> bool:
    """No EXIF (so no GPS, camera or orientation), no XMP, no text chunks nor comments."""
    image = opened(data)
    leftovers = set(image.info) & {"exif", "xmp", "XML:com.adobe.xmp", "Author", "comment"}
    return not leftovers and len(image.getexif()) == 0 and b"PhoneMaker" not in data
