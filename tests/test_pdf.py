"""Tests for portico.pdf: upload validation, rendered documents and signed copies."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.pdfgen.canvas import Canvas

from portico.pdf import (
    UPLOAD_NOTICE,
    Certificate,
    CertificateSigner,
    InvalidPdf,
    build_signed_pdf,
    page_count,
    pdf_text,
    render_line_items_pdf,
    sha256_hex,
    validate_pdf,
)

MB = 1024 * 1024
ITEMS = [
    {"description": "Install outlets", "quantity": 2, "unit_price_cents": 1250},
    {"description": "Labor (hours)", "quantity": "1.5", "unit_price_cents": 1000},
]


def _png(width: int = 6, height: int = 3) -> bytes:
    """A tiny valid RGB PNG built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x20\x40\x90" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _render(**overrides: Any) -> tuple[bytes, int]:
    kwargs: dict[str, Any] = {
        "company_name": "Acme Renovations",
        "kind": "change_order",
        "title": "Extra kitchen outlets",
        "number": "CO-17",
        "client_name": "Dana Client",
        "project_name": "Kitchen remodel",
        "currency": "USD",
        "line_items": ITEMS,
        "issued_on": date(2024, 5, 1),
    }
    kwargs.update(overrides)
    return render_line_items_pdf(**kwargs)


def _signer(**overrides: Any) -> CertificateSigner:
    fields: dict[str, Any] = {
        "name": "Alice Example",
        "email": "alice@example.com",
        "phone": None,
        "status": "approved",
        "channel": "web",
        "sent_at": datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        "first_viewed_at": datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        "decided_at": datetime(2024, 5, 1, 9, 45, 12, tzinfo=UTC),
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        "signature_name": "Alice Example",
        "signature_png": None,
        "notes": "Looks good, go ahead.",
        "consent": True,
    }
    fields.update(overrides)
    return CertificateSigner(**fields)


def _certificate(
    original: bytes, signers: list[CertificateSigner], **overrides: Any
) -> Certificate:
    fields: dict[str, Any] = {
        "approval_id": 42,
        "document_kind": "change_order",
        "document_title": "Extra kitchen outlets",
        "document_number": "CO-17",
        "document_sha256": sha256_hex(original),
        "amount": "$40.00",
        "status": "approved",
        "completed_at": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "company_name": "Acme Renovations",
        "signers": signers,
    }
    fields.update(overrides)
    return Certificate(**fields)


def _flat(text: str) -> str:
    """Collapse whitespace so wrapped lines compare as sentences."""
    return " ".join(text.split())


def _page_texts(data: bytes) -> list[str]:
    return [_flat(page.extract_text() or "") for page in PdfReader(io.BytesIO(data)).pages]


def _image_count(obj: Any) -> int:
    """Image XObjects reachable from a page (or form XObject) resource dictionary."""
    resources = obj.get("/Resources")
    if resources is None:
        return 0
    xobjects = resources.get_object().get("/XObject")
    if xobjects is None:
        return 0
    count = 0
    for ref in xobjects.get_object().values():
        xobject = ref.get_object()
        if xobject.get("/Subtype") == "/Image":
            count += 1
        elif xobject.get("/Subtype") == "/Form":
            count += _image_count(xobject)
    return count


def _page_images(data: bytes) -> list[int]:
    return [_image_count(page) for page in PdfReader(io.BytesIO(data)).pages]


# --------------------------------------------------------------------------- validation


def test_sha256_hex_is_64_lowercase_hex() -> None:
    digest = sha256_hex(b"abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_validate_rejects_bytes_that_are_not_a_pdf() -> None:
    with pytest.raises(InvalidPdf, match="not a PDF"):
        validate_pdf(b"PK\x03\x04 this is a zip file", 20 * MB)


def test_validate_rejects_empty_file() -> None:
    with pytest.raises(InvalidPdf, match="empty"):
        validate_pdf(b"", 20 * MB)


def test_validate_rejects_oversize_file_with_readable_limit() -> None:
    pdf, _ = _render()
    with pytest.raises(InvalidPdf) as info:
        validate_pdf(pdf + b"\n" * (20 * MB), 20 * MB)
    assert str(info.value) == "The PDF is larger than 20 MB."
    with pytest.raises(InvalidPdf, match="larger than"):
        validate_pdf(pdf, len(pdf) - 1)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + b"\x00this is not really a pdf" * 50,
        b"%PDF-",
    ],
)
def test_validate_rejects_garbage_with_pdf_header(data: bytes) -> None:
    with pytest.raises(InvalidPdf, match="damaged"):
        validate_pdf(data, 20 * MB)


def test_validate_rejects_truncated_pdf() -> None:
    pdf, _ = _render()
    with pytest.raises(InvalidPdf):
        validate_pdf(pdf[: len(pdf) // 2], 20 * MB)


def test_validate_rejects_encrypted_pdf() -> None:
    pdf, _ = _render()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(InvalidPdf, match="encrypted"):
        validate_pdf(out.getvalue(), 20 * MB)


def test_validate_rejects_pdf_without_pages() -> None:
    out = io.BytesIO()
    PdfWriter().write(out)
    with pytest.raises(InvalidPdf, match="no pages"):
        validate_pdf(out.getvalue(), 20 * MB)


def test_invalid_pdf_is_a_value_error_with_a_sentence() -> None:
    with pytest.raises(ValueError) as info:
        validate_pdf(b"hello", 20 * MB)
    message = str(info.value)
    assert message[0].isupper() and message.endswith(".")


def test_validate_accepts_rendered_pdf_and_returns_page_count() -> None:
    pdf, _ = _render()
    assert validate_pdf(pdf, 20 * MB) == 1
    many = [
        {"description": f"Item {i}", "quantity": 1, "unit_price_cents": 100} for i in range(150)
    ]
    big, _ = _render(line_items=many)
    assert validate_pdf(big, 20 * MB) == page_count(big) > 1


# --------------------------------------------------------------------------- money and rendering


def test_render_totals_and_shows_what_the_client_reads() -> None:
    pdf, total = _render(notes="Work starts Monday.\nBring keys.")
    assert total == 2 * 1250 + 1500 == 4000
    assert pdf.startswith(b"%PDF-")
    text = _flat(pdf_text(pdf))
    for expected in [
        "Acme Renovations",
        "Change order CO-17",
        "Extra kitchen outlets",
        "Dana Client",
        "Kitchen remodel",
        "May 1, 2024",
        "Install outlets",
        "$12.50",
        "$25.00",
        "1.5",
        "$15.00",
        "$40.00",
        "Work starts Monday.",
    ]:
        assert expected in text, expected


def test_render_rounds_fractional_quantities_half_up() -> None:
    items = [
        {"description": "half a cent", "quantity": "0.5", "unit_price_cents": 1},
        {"description": "a third", "quantity": 0.333, "unit_price_cents": 1000},
        {"description": "credit", "quantity": 1, "unit_price_cents": -500},
    ]
    pdf, total = _render(line_items=items, currency="EUR")
    assert total == 1 + 333 - 500 == -166
    text = _flat(pdf_text(pdf))
    assert "-€1.66" in text
    assert "€3.33" in text


def test_render_rejects_non_numeric_quantity() -> None:
    with pytest.raises(ValueError, match="quantity"):
        _render(line_items=[{"description": "x", "quantity": "lots", "unit_price_cents": 1}])


def test_render_without_line_items_totals_zero() -> None:
    pdf, total = _render(line_items=[])
    assert total == 0
    assert "$0.00" in pdf_text(pdf)


def test_many_line_items_flow_onto_several_pages() -> None:
    items = [
        {"description": f"Fixture number {i}", "quantity": 1, "unit_price_cents": 100}
        for i in range(120)
    ]
    pdf, total = _render(line_items=items)
    assert total == 12000
    assert page_count(pdf) >= 3
    pages = _page_texts(pdf)
    assert "Fixture number 0" in pages[0]
    assert "Fixture number 119" in pages[-1]
    assert "$120.00" in pages[-1]
    assert all("Description" in page for page in pages)  # header row repeats


def test_render_survives_long_and_unusual_text() -> None:
    pdf, total = _render(
        company_name="Zoë Ångström Bau & Söhne <GmbH> 日本",
        title="Ł" * 2000,
        client_name="Łukasz Żółć",
        line_items=[{"description": "x" * 10_000, "quantity": 1, "unit_price_cents": 1}],
        notes="word " * 5000,
    )
    assert total == 1
    text = pdf_text(pdf)
    assert "Zoë Ångström Bau & Söhne <GmbH>" in text
    assert "Lukasz Zólc" in text  # letters Helvetica lacks are transliterated


# --------------------------------------------------------------------------- signed copy


@pytest.fixture
def original() -> bytes:
    items = [
        {"description": f"Line {i}", "quantity": 1, "unit_price_cents": 1000} for i in range(45)
    ]
    pdf, _ = _render(line_items=items)
    assert page_count(pdf) == 2
    return pdf


def test_signed_pdf_has_original_pages_then_certificate(original: bytes) -> None:
    bob = _signer(
        name="Bob Builder",
        email=None,
        phone="+15555550123",
        channel="sms",
        ip="198.51.100.23",
        consent=False,
        status="declined",
        decline_reason="Price is too high.",
        notes=None,
    )
    cert = _certificate(original, [_signer(), bob])
    signed = build_signed_pdf(original, cert)

    total_pages = page_count(signed)
    assert total_pages > 2
    pages = _page_texts(signed)
    original_pages = _page_texts(original)
    assert pages[0] == original_pages[0]  # earlier pages untouched
    assert all("Certificate of completion" in page for page in pages[2:])

    certificate = " ".join(pages[2:])
    for expected in [
        "Portico request #42",
        "Change order",
        "CO-17",
        "Extra kitchen outlets",
        sha256_hex(original),
        "Approved",
        "2024-05-01T10:00:00Z",
        "$40.00",
        "Alice Example",
        "alice@example.com",
        "203.0.113.7",
        "Web signing link",
        "2024-05-01T09:00:00Z",
        "2024-05-01T09:30:00Z",
        "2024-05-01T09:45:12Z",
        "Chrome/126.0",
        "Looks good, go ahead.",
        "Consented to sign electronically: yes",
        "Bob Builder",
        "+15555550123",
        "198.51.100.23",
        "SMS reply",
        "Price is too high.",
        "Consented to sign electronically: no",
        "The SHA-256 of this final file and the signing certificate's fingerprint are "
        "recorded in Portico's audit trail; verify with: portico audit verify 42",
    ]:
        assert expected in certificate, expected
    assert UPLOAD_NOTICE not in certificate


def test_stamp_is_on_the_last_original_page_only(original: bytes) -> None:
    signed = build_signed_pdf(original, _certificate(original, [_signer()]))
    pages = _page_texts(signed)
    stamp = "Approved electronically by Alice Example — 2024-05-01 09:45 UTC — Portico request #42"
    assert stamp in pages[1]
    assert "Approved electronically" not in pages[0]
    assert "Line 44" in pages[1]  # the original content is still there


def test_stamp_lists_every_approver(original: bytes) -> None:
    signers = [_signer(), _signer(name="Carol Second", decided_at=datetime(2024, 5, 2, 8, 0))]
    pages = _page_texts(build_signed_pdf(original, _certificate(original, signers)))
    assert "Approved electronically by Alice Example, Carol Second" in pages[1]
    assert "2024-05-02 08:00 UTC" in pages[1]


def test_replaced_by_upload_explains_the_document_of_record(original: bytes) -> None:
    cert = _certificate(original, [_signer(channel="upload")], replaced_by_upload=True)
    text = _flat(pdf_text(build_signed_pdf(original, cert)))
    assert "The document of record is a PDF uploaded by the signer, signed outside Portico." in text
    assert "Uploaded signed PDF" in text


def test_drawn_signature_is_embedded_as_an_image(original: bytes) -> None:
    plain = build_signed_pdf(original, _certificate(original, [_signer()]))
    assert sum(_page_images(plain)) == 0

    signed = build_signed_pdf(original, _certificate(original, [_signer(signature_png=_png())]))
    images = _page_images(signed)
    assert images[1] >= 1  # stamp on the last original page
    assert sum(images[2:]) >= 1  # certificate page
    assert "Drawn signature" in pdf_text(signed)


def test_corrupt_signature_image_is_skipped(original: bytes) -> None:
    broken = _png()[:30] + b"not really png data"
    signed = build_signed_pdf(original, _certificate(original, [_signer(signature_png=broken)]))
    assert sum(_page_images(signed)) == 0
    assert "image could not be read" in pdf_text(signed)


def test_unicode_names_do_not_crash(original: bytes) -> None:
    signers = [
        _signer(name="Zoë Ångström", signature_name="Zoë Ångström"),
        _signer(name="Łukasz Wiśniewski", email="łukasz@example.pl", notes="Dziękuję — 谢谢"),
    ]
    cert = _certificate(original, signers, company_name="Bau & Söhne 株式会社")
    text = pdf_text(build_signed_pdf(original, cert))
    assert "Zoë Ångström" in text
    assert "Lukasz Wisniewski" in text


def test_missing_fields_and_long_text_do_not_crash(original: bytes) -> None:
    sparse = _signer(
        name="",
        email=None,
        phone=None,
        channel=None,
        sent_at=None,
        first_viewed_at=None,
        decided_at=None,
        ip=None,
        user_agent="Agent/" + "x" * 3000,
        signature_name=None,
        notes="note " * 3000,
        consent=False,
    )
    cert = _certificate(
        original,
        [sparse] * 3,
        document_title="T" * 3000,
        amount="",
        company_name="",
    )
    signed = build_signed_pdf(original, cert)
    assert page_count(signed) > page_count(original) + 1
    assert "Consented to sign electronically: no" in pdf_text(signed)


def test_rotated_and_offset_last_page_is_stamped() -> None:
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(300, 500), invariant=1)
    canvas.drawString(40, 400, "Uploaded page")
    canvas.showPage()
    canvas.save()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(buf.getvalue())))
    page = writer.pages[0]
    page.rotate(90)
    page.mediabox.lower_left = (10, -20)
    out = io.BytesIO()
    writer.write(out)
    original = out.getvalue()

    signed = build_signed_pdf(original, _certificate(original, [_signer(signature_png=_png())]))
    pages = _page_texts(signed)
    assert "Uploaded page" in pages[0]
    assert "Approved electronically by Alice Example" in pages[0]
    assert validate_pdf(signed, 20 * MB) == len(pages)


def test_building_twice_gives_identical_valid_pdfs(original: bytes) -> None:
    cert = _certificate(original, [_signer(signature_png=_png())])
    first = build_signed_pdf(original, cert)
    second = build_signed_pdf(original, replace(cert, signers=list(cert.signers)))
    assert validate_pdf(first, 20 * MB) == validate_pdf(second, 20 * MB)
    assert first == second


def test_build_signed_pdf_rejects_unreadable_original() -> None:
    with pytest.raises(InvalidPdf):
        build_signed_pdf(b"%PDF-1.4 broken", _certificate(b"", [_signer()]))
