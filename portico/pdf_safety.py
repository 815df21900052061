"""Limits and active-content stripping for PDFs Portico did not make.

A PDF is a small file that can describe enormous work: a 70 KB Flate stream of zeros that
inflates to 70 MB, a page tree with 180 000 pages, a hundred thousand objects. `open_checked`
refuses such files before anything walks or merges them, and `strip_active_content` removes
what a viewer would run (JavaScript, open and additional actions, launch actions, embedded
files) from what Portico signs and serves. Both are pure and synchronous: callers run them in
a child process (portico/pdf_sandbox.py), never on an event loop.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pypdf import PdfReader, PdfWriter, apply_configuration
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    PdfObject,
    StreamObject,
)

from portico.pdf_values import DEFAULT_LIMITS, InvalidPdf, PdfLimits, size_label

__all__ = [
    "DEFAULT_LIMITS",
    "InvalidPdf",
    "PdfLimits",
    "limits_config",
    "open_checked",
    "strip_active_content",
]

# Actions a viewer may follow from a link or an outline entry: they only move within the
# document or open an ordinary web or mail address. Every other action type runs something.
_SAFE_ACTIONS = {"/GoTo", "/Named", "/URI"}
_SAFE_URI_SCHEMES = ("http://", "https://", "mailto:")
# Annotations that carry files or play media: dropped from pages altogether.
_ACTIVE_ANNOTATIONS = {"/FileAttachment", "/Screen", "/Movie", "/Sound", "/RichMedia", "/3D"}
_MAX_TREE_DEPTH = 64


@contextmanager
def limits_config(limits: PdfLimits) -> Iterator[None]:
    """pypdf's own caps set to Portico's: no single stream inflates beyond the budget (pypdf
    reads lazily: keep this open while the reader or a writer cloned from it is in use)."""
    cap = max(1, limits.max_decompressed_bytes)
    with apply_configuration(
        zlib_maximum_output_length=cap,
        lzw_maximum_output_length=cap,
        run_length_maximum_output_length=cap,
        brotli_maximum_output_length=cap,
        jbig2_maximum_output_length=cap,
        array_based_stream_maximum_output_length=cap,
        image_maximum_buffer_size=cap,
        page_tree_maximum_entries=limits.max_pages * 2 + 1000,
    ):
        yield


def open_checked(data: bytes, limits: PdfLimits) -> PdfReader:
    """Parse ``data`` within ``limits``; raise InvalidPdf (a sentence for the user) when it is
    empty, too large, not a PDF, damaged, encrypted, without pages, or beyond a limit.

    Call it inside ``limits_config(limits)``."""
    if not data:
        raise InvalidPdf("The file is empty.")
    if len(data) > limits.max_bytes:
        raise InvalidPdf(f"The PDF is larger than {size_label(limits.max_bytes)}.")
    if bytes(data[:5]) != b"%PDF-":
        raise InvalidPdf("The file is not a PDF.")
    # pypdf visits every object while opening a file: count their ends first, at C speed.
    if data.count(b"endobj") > limits.max_objects:
        raise _too_many_objects(limits)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except LimitReachedError as exc:
        raise _too_complex() from exc
    except Exception as exc:
        raise InvalidPdf("The PDF is damaged and could not be read.") from exc
    if encrypted:
        raise InvalidPdf("The PDF is encrypted; please upload a copy without a password.")
    objects = _object_ids(reader)
    if len(objects) > limits.max_objects:
        raise _too_many_objects(limits)
    try:
        count = _count_pages(reader, limits)
        if count == 0:
            raise InvalidPdf("The PDF has no pages.")
        reader.get_page(0)  # flattens the page tree, now known to be small
        for page in reader.flattened_pages or []:
            _ = page.mediabox
        _check_streams(reader, objects, limits)
    except InvalidPdf:
        raise
    except LimitReachedError as exc:
        raise _too_complex() from exc
    except Exception as exc:
        raise InvalidPdf("The PDF is damaged and could not be read.") from exc
    return reader


def _too_many_objects(limits: PdfLimits) -> InvalidPdf:
    return InvalidPdf(
        f"The PDF has more than {limits.max_objects:,} objects; "
        "please upload a simpler or flattened copy."
    )


def _too_complex() -> InvalidPdf:
    return InvalidPdf("The PDF is too complex to process safely; please upload a simpler copy.")


def _object_ids(reader: PdfReader) -> list[tuple[int, int]]:
    """Every (object number, generation) in the cross-reference table."""
    ids = {(idnum, gen) for gen, table in reader.xref.items() for idnum in table}
    ids.update((idnum, 0) for idnum in reader.xref_objStm)
    return sorted(ids)


def _count_pages(reader: PdfReader, limits: PdfLimits) -> int:
    """Count the leaves of the page tree, stopping as soon as there are too many (pypdf would
    build the whole list first, and trusts a `/Count` that may lie)."""
    too_many = InvalidPdf(f"The PDF has more than {limits.max_pages} pages.")
    root = _dict(reader.trailer.get("/Root"))
    stack: list[tuple[Any, int]] = [(root.get("/Pages") if root is not None else None, 0)]
    pages = visited = 0
    while stack:
        ref, depth = stack.pop()
        node = ref.get_object() if ref is not None else None
        visited += 1
        if visited > limits.max_pages * 2 + 1000 or depth > _MAX_TREE_DEPTH:
            raise too_many
        if not isinstance(node, DictionaryObject):
            continue
        kids = node.get("/Kids")
        if node.get("/Type") == "/Pages" or (kids is not None and node.get("/Type") != "/Page"):
            kids = kids.get_object() if kids is not None else None
            if isinstance(kids, ArrayObject):
                stack.extend((kid, depth + 1) for kid in reversed(kids))
            continue
        pages += 1
        if pages > limits.max_pages:
            raise too_many
    return pages


def _check_streams(reader: PdfReader, objects: list[tuple[int, int]], limits: PdfLimits) -> None:
    """Inflate every stream once, refusing the file when together they exceed the budget."""
    budget = limits.max_decompressed_bytes
    too_big = InvalidPdf(
        f"The PDF's contents expand to more than {size_label(budget)}; "
        "please upload a smaller copy."
    )
    for idnum, gen in objects:
        try:
            obj = IndirectObject(idnum, gen, reader).get_object()
            if not isinstance(obj, StreamObject):
                continue
            size = len(obj.get_data())  # each stream is capped at the budget (limits_config)
        except LimitReachedError:
            raise too_big from None
        except Exception:  # broken or in a filter pypdf cannot decode: never inflated here
            continue
        budget -= size
        if budget < 0:
            raise too_big


# --------------------------------------------------------------------------- active content


def strip_active_content(reader: PdfReader) -> tuple[bytes, list[str]] | None:
    """``reader``'s document without anything a viewer could run or unpack: the open action,
    document, page and field actions (/AA), JavaScript, launch, form-submit and other
    non-navigation actions, embedded files, XFA forms and media annotations. Links to pages
    and to http(s)/mailto addresses stay.

    Returns (the new file, what was removed) or None when there was nothing to remove."""
    writer = PdfWriter(clone_from=reader)
    removed = _strip(writer)
    if not removed:
        return None
    draft = io.BytesIO()
    writer.write(draft)
    # Cloning copies what the catalog still reaches: the removed scripts and files are left out.
    clean = PdfWriter(clone_from=PdfReader(draft, strict=False))
    out = io.BytesIO()
    clean.write(out)
    return out.getvalue(), removed


def _strip(writer: PdfWriter) -> list[str]:
    """Remove active content from ``writer``'s document; returns what was removed."""
    removed: set[str] = set()
    root = writer.root_object
    for key, label in (("/OpenAction", "open action"), ("/AA", "document actions")):
        if key in root:
            del root[key]
            removed.add(label)
    names = _dict(root.get("/Names"))
    if names is not None:
        for key, label in (("/JavaScript", "JavaScript"), ("/EmbeddedFiles", "embedded files")):
            if key in names:
                del names[key]
                removed.add(label)
    form = _dict(root.get("/AcroForm"))
    if form is not None and "/XFA" in form:
        del form["/XFA"]
        removed.add("XFA form")
    for page in writer.pages:
        annots = page.get("/Annots")
        items = annots.get_object() if annots is not None else None
        if isinstance(items, ArrayObject):
            kept = [a for a in items if _subtype(a) not in _ACTIVE_ANNOTATIONS]
            if len(kept) != len(items):
                items[:] = kept
                removed.add("file and media annotations")
    for node in _reachable_dicts(root):
        if "/AA" in node:
            del node["/AA"]
            removed.add("actions")
        if "/EF" in node:  # a file specification carrying the file itself
            del node["/EF"]
            removed.add("embedded files")
        for key in ("/A", "/Next", "/PA"):
            if key in node and not _safe_action(node[key]):
                del node[key]
                removed.add("actions")
    return sorted(removed)


def _dict(value: PdfObject | None) -> DictionaryObject | None:
    obj = value.get_object() if value is not None else None
    return obj if isinstance(obj, DictionaryObject) else None


def _subtype(value: PdfObject) -> object:
    obj = _dict(value)
    return obj.get("/Subtype") if obj is not None else None


def _safe_action(value: PdfObject) -> bool:
    """An action (or a chain of them) that only navigates."""
    obj = value.get_object()
    if isinstance(obj, ArrayObject):
        return all(_safe_action(item) for item in obj)
    if not isinstance(obj, DictionaryObject):
        return True  # a destination, not an action
    kind = obj.get("/S")
    if kind is None:
        return "/JS" not in obj
    if kind not in _SAFE_ACTIONS:
        return False
    if kind == "/URI":
        uri = str(obj.get("/URI", "")).strip().lower()
        return uri.startswith(_SAFE_URI_SCHEMES)
    return True


def _reachable_dicts(root: DictionaryObject) -> Iterator[DictionaryObject]:
    """Every dictionary reachable from ``root`` (each indirect object once)."""
    seen: set[int] = set()
    stack: list[PdfObject | None] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            if item.idnum in seen:
                continue
            seen.add(item.idnum)
            item = item.get_object()
        if isinstance(item, DictionaryObject):
            yield item
            stack.extend(item.values())
        elif isinstance(item, ArrayObject):
            stack.extend(item)
