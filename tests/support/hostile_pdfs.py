"""Hostile PDFs, built in memory: small files that expand (a Flate stream of zeros, a huge page
tree) and files with active content (JavaScript, open and page actions, launch actions,
embedded files). Nothing big is kept in git; `active_content` looks for what a viewer could run."""

from __future__ import annotations

import io
import zlib

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    TextStringObject,
)

from tests.support.helpers import sample_pdf

MB = 1024 * 1024
SCRIPT = "app.alert('pwned by Portico test')"
ATTACHMENT = b"MZ-not-really-an-exe-but-an-embedded-file"


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of these object bodies (object 1 is the catalog), with a classic xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def many_pages(n: int, fanout: int = 1000, declared: int | None = None) -> bytes:
    """`n` blank pages in a two-level page tree; `declared` is the (maybe lying) /Count."""
    groups = [min(fanout, n - start) for start in range(0, n, fanout)]
    first_group, first_page = 3, 3 + len(groups)
    top = b" ".join(b"%d 0 R" % (first_group + i) for i in range(len(groups)))
    count = n if declared is None else declared
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (count, top),
    ]
    number = first_page
    for size in groups:
        kids = b" ".join(b"%d 0 R" % (number + i) for i in range(size))
        objects.append(b"<< /Type /Pages /Parent 2 0 R /Count %d /Kids [%s] >>" % (size, kids))
        number += size
    for index, size in enumerate(groups):
        page = b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] >>" % (first_group + index)
        objects += [page] * size
    return raw_pdf(objects)


def zero_bomb(streams: int = 1, size: int = 70 * MB) -> bytes:
    """One page whose content is `streams` Flate streams of `size` zero bytes each (NUL is
    white space in a content stream, so the page is valid and blank): ~70 KB per 70 MB."""
    packer = zlib.compressobj(9)
    chunk = b"\0" * MB
    packed = b"".join(packer.compress(chunk) for _ in range(size // MB)) + packer.flush()
    contents = b" ".join(b"%d 0 R" % (4 + i) for i in range(streams))
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed)
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents [%s] >>" % contents,
        ]
        + [stream] * streams
    )


def _action(writer: PdfWriter, **entries: object) -> IndirectObject:
    action = DictionaryObject({NameObject("/Type"): NameObject("/Action")})
    for key, value in entries.items():
        action[NameObject(f"/{key}")] = value  # type: ignore[assignment]
    return writer._add_object(action)


def _link(rect: tuple[float, float, float, float], action: IndirectObject) -> DictionaryObject:
    return DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject(FloatObject(v) for v in rect),
            NameObject("/A"): action,
        }
    )


def with_active_content(title: str = "Scripted change order") -> bytes:
    """A readable one-page PDF (its text contains `title`) that also carries an /OpenAction
    script, a document-level script (/Names /JavaScript), page and link actions (JavaScript,
    Launch, a javascript: URI), an embedded file, and one harmless https link."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf(title))))
    js = _action(writer, S=NameObject("/JavaScript"), JS=TextStringObject(SCRIPT))
    writer.root_object[NameObject("/OpenAction")] = js
    writer.add_attachment("payload.exe", ATTACHMENT)
    names = writer.root_object["/Names"].get_object()
    names[NameObject("/JavaScript")] = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("on-open"), js])}
    )
    page = writer.pages[0]
    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): js})
    launch = _action(writer, S=NameObject("/Launch"), F=TextStringObject("cmd.exe"), Next=js)
    bad_uri = _action(writer, S=NameObject("/URI"), URI=TextStringObject("javascript:alert(1)"))
    good_uri = _action(
        writer, S=NameObject("/URI"), URI=TextStringObject("https://example.com/terms")
    )
    annots = ArrayObject(
        writer._add_object(_link(rect, action))
        for rect, action in (
            ((10, 10, 50, 50), js),
            ((60, 10, 100, 50), launch),
            ((110, 10, 150, 50), bad_uri),
            ((160, 10, 200, 50), good_uri),
        )
    )
    page[NameObject("/Annots")] = annots
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


ACTIVE_KEYS = {"/JavaScript", "/JS", "/OpenAction", "/AA", "/EmbeddedFiles", "/EF"}
ACTIVE_ACTIONS = {"/JavaScript", "/Launch", "/SubmitForm", "/ImportData", "/GoToR", "/GoToE"}


def active_content(data: bytes) -> set[str]:
    """What in ``data`` a viewer could run or unpack: active keys and action types found in
    any object of the file (looked up independently of Portico's stripping code)."""
    reader = PdfReader(io.BytesIO(data))
    found: set[str] = set()
    numbers = {(n, g) for g, table in reader.xref.items() for n in table}
    numbers |= {(n, 0) for n in reader.xref_objStm}
    stack: list[object] = [reader.trailer]
    stack += [IndirectObject(n, g, reader) for n, g in sorted(numbers)]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            if item.idnum in seen:
                continue
            seen.add(item.idnum)
            item = item.get_object()
        if isinstance(item, DictionaryObject):
            found |= ACTIVE_KEYS & set(item.keys())
            if item.get("/S") in ACTIVE_ACTIONS:
                found.add(str(item["/S"]))
            uri = str(item.get("/URI", ""))
            if uri.lower().startswith("javascript:"):
                found.add("javascript: URI")
            stack.extend(item.values())
        elif isinstance(item, ArrayObject):
            stack.extend(item)
    if SCRIPT.encode() in data or ATTACHMENT in data:
        found.add("script or attachment bytes")
    return found
