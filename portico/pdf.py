"""PDF helpers: validate uploads, render line-item documents, build signed copies.

Everything here is pure and synchronous: no database, no network and no clock reads (every
timestamp is passed in). reportlab draws, pypdf reads and merges. Text is drawn with the
standard Helvetica/Courier fonts, so characters they cannot show are transliterated or replaced.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

from pypdf import PdfReader, PdfWriter, Transformation
from pypdf.generic import RectangleObject
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from portico.money import format_money, line_total
from portico.pades_values import EmbeddedSignature
from portico.pdf_safety import (
    DEFAULT_LIMITS,
    InvalidPdf,
    PdfLimits,
    limits_config,
    open_checked,
    size_label,
    strip_active_content,
)

__all__ = [
    "Certificate",
    "CertificateSigner",
    "CheckedPdf",
    "InvalidPdf",
    "PdfLimits",
    "UPLOAD_NOTICE",
    "build_signed_pdf",
    "check_pdf",
    "page_count",
    "pdf_text",
    "render_line_items_pdf",
    "signature_appearance_text",
    "sha256_hex",
    "size_label",
    "validate_pdf",
]

UPLOAD_NOTICE = (
    "The document of record is a PDF uploaded by the signer, signed outside Portico. "
    "The pages above are that uploaded file; Portico recorded who uploaded it and when."
)

_FONT = "Helvetica"
_FONT_BOLD = "Helvetica-Bold"
_FONT_MONO = "Courier"
_INK = colors.HexColor("#1f2933")
_MUTED = colors.HexColor("#616e7c")
_RULE = colors.HexColor("#cbd2d9")
_HEADER_BG = colors.HexColor("#eef2f6")
_STAMP_INK = colors.HexColor("#1d3f72")

# Portico's own output (signed copies, rendered documents) is read with room to spare.
_OWN_OUTPUT = PdfLimits(
    max_bytes=1 << 40, max_pages=100_000, max_objects=10_000_000, max_decompressed_bytes=1 << 34
)
_MAX_SIGNATURE_PIXELS = 4_000_000
_MAX_DESCRIPTION_CHARS = 3_000
_MAX_FIELD_CHARS = 20_000
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip
_KIND_ACRONYMS = {"rfi": "RFI", "po": "PO", "sow": "SOW", "nda": "NDA"}
_CHANNEL_LABELS = {"web": "Web signing link", "sms": "SMS reply", "upload": "Uploaded signed PDF"}
# Letters with no Unicode decomposition that Helvetica (WinAnsi) cannot show.
_TRANSLITERATE = {
    "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "Ŧ": "T", "ŧ": "t",
    "Ŀ": "L", "ŀ": "l", "ĸ": "k", "ſ": "s", "Ə": "E", "ə": "e", "Ŋ": "N", "ŋ": "n",
    "‐": "-", "‑": "-", "‒": "-", "―": "-", "−": "-", "′": "'", "″": '"', "‚": ",",
    "\u2028": "\n", "\u2029": "\n",
}  # fmt: skip


# --------------------------------------------------------------------------- basics


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (64 lowercase characters)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CheckedPdf:
    """An accepted PDF: the bytes to store (without active content) and what was removed."""

    data: bytes
    pages: int
    removed: tuple[str, ...] = ()


def check_pdf(data: bytes, limits: PdfLimits) -> CheckedPdf:
    """Check an untrusted PDF within ``limits`` and strip its active content.

    The stored bytes are the original ones unless something had to be removed. Raises
    InvalidPdf if the file is empty, oversize, not a PDF, damaged, encrypted, without pages or
    beyond a limit. CPU-bound: run it through portico/pdf_sandbox.py from async code."""
    with limits_config(limits):
        reader = open_checked(data, limits)
        pages = len(reader.flattened_pages or [])
        try:
            stripped = strip_active_content(reader)
        except Exception as exc:
            raise InvalidPdf("The PDF is damaged and could not be read.") from exc
    if stripped is None:
        return CheckedPdf(data=bytes(data), pages=pages)
    clean, removed = stripped
    return CheckedPdf(data=clean, pages=pages, removed=tuple(removed))


def validate_pdf(data: bytes, max_bytes: int) -> int:
    """Return the page count; raise InvalidPdf if empty, oversize, not a PDF, damaged,
    encrypted, without pages or beyond the default limits (pages, objects, inflated size)."""
    return check_pdf(data, replace(DEFAULT_LIMITS, max_bytes=max_bytes)).pages


def _open_pdf(data: bytes) -> PdfReader:
    """Read a PDF Portico made (a signed copy, a rendered document)."""
    with limits_config(_OWN_OUTPUT):
        return open_checked(data, _OWN_OUTPUT)


def page_count(data: bytes) -> int:
    """Number of pages in ``data`` (InvalidPdf if it cannot be read)."""
    return len(_open_pdf(data).flattened_pages or [])


def pdf_text(data: bytes) -> str:
    """All text pypdf can extract, pages separated by newlines."""
    with limits_config(_OWN_OUTPUT):
        reader = open_checked(data, _OWN_OUTPUT)
        return "\n".join(page.extract_text() or "" for page in reader.flattened_pages or [])


# --------------------------------------------------------------------------- text helpers


def _showable(ch: str) -> bool:
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _clean(value: object, limit: int | None = None) -> str:
    """Text Helvetica can draw: newlines kept, controls dropped, other characters
    transliterated where possible and replaced with '?' otherwise."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    out: list[str] = []
    for ch in text:
        if ch == "\n" or (ch.isascii() and ch.isprintable()):
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        if category in ("Zs",):
            out.append(" ")
            continue
        if _showable(ch):
            out.append(ch)
        elif ch in _TRANSLITERATE:
            out.append(_TRANSLITERATE[ch])
        else:
            base = "".join(
                c
                for c in unicodedata.normalize("NFKD", ch)
                if not unicodedata.combining(c) and _showable(c) and c.isprintable()
            )
            out.append(base or "?")
    return "".join(out)


def _one_line(value: object, limit: int | None = None) -> str:
    return " ".join(_clean(value, limit).split())


def _markup(value: object, limit: int | None = None) -> str:
    """Cleaned text escaped for a reportlab Paragraph, newlines as <br/>."""
    lines = _clean(value, limit).split("\n")
    return "<br/>".join(escape(line) for line in lines)


def _kind_label(kind: str) -> str:
    if (kind or "").lower() in _KIND_ACRONYMS:
        return _KIND_ACRONYMS[kind.lower()]
    text = _one_line((kind or "document").replace("_", " "))
    return text[:1].upper() + text[1:]


def _status_label(status: str) -> str:
    text = _one_line((status or "unknown").replace("_", " "))
    return text[:1].upper() + text[1:]


def _long_date(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str:
    """'2024-05-01T14:03:22Z', or an em dash for None."""
    if moment is None:
        return "—"
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_utc(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=_FONT, fontSize=9.5, leading=12.5, textColor=_INK)
    return {
        "base": base,
        "company": ParagraphStyle(
            "company", parent=base, fontName=_FONT_BOLD, fontSize=17, leading=21
        ),
        "kind": ParagraphStyle(
            "kind", parent=base, fontName=_FONT_BOLD, fontSize=13, leading=17, spaceBefore=4
        ),
        "title": ParagraphStyle("title", parent=base, fontSize=12, leading=15, spaceAfter=6),
        "muted": ParagraphStyle("muted", parent=base, textColor=_MUTED, fontSize=8.5, leading=11),
        "cell": ParagraphStyle("cell", parent=base, fontSize=9, leading=11.5),
        "cell_right": ParagraphStyle(
            "cell_right", parent=base, fontSize=9, leading=11.5, alignment=TA_RIGHT
        ),
        "head": ParagraphStyle(
            "head", parent=base, fontName=_FONT_BOLD, fontSize=8.5, leading=11, textColor=_MUTED
        ),
        "head_right": ParagraphStyle(
            "head_right",
            parent=base,
            fontName=_FONT_BOLD,
            fontSize=8.5,
            leading=11,
            textColor=_MUTED,
            alignment=TA_RIGHT,
        ),
        "total": ParagraphStyle(
            "total", parent=base, fontName=_FONT_BOLD, fontSize=10.5, leading=13, alignment=TA_RIGHT
        ),
        "h1": ParagraphStyle("h1", parent=base, fontName=_FONT_BOLD, fontSize=18, leading=23),
        "h2": ParagraphStyle(
            "h2", parent=base, fontName=_FONT_BOLD, fontSize=12, leading=15, spaceBefore=10,
            spaceAfter=3,
        ),
        "h3": ParagraphStyle(
            "h3", parent=base, fontName=_FONT_BOLD, fontSize=10.5, leading=14, spaceBefore=8,
            spaceAfter=2,
        ),
        "field": ParagraphStyle("field", parent=base, fontSize=9, leading=12, leftIndent=10),
        "mono": ParagraphStyle(
            "mono", parent=base, fontName=_FONT_MONO, fontSize=8.5, leading=11, leftIndent=10
        ),
        "notice": ParagraphStyle(
            "notice", parent=base, fontName=_FONT_BOLD, fontSize=9.5, leading=12.5,
            borderColor=_RULE, borderWidth=0.6, borderPadding=6, backColor=_HEADER_BG,
            spaceBefore=10, spaceAfter=10,
        ),
    }  # fmt: skip


def _footer(left: str) -> Callable[[Canvas, Any], None]:
    """A page callback drawing ``left`` and the page number at the bottom."""

    def draw(canvas: Canvas, doc: Any) -> None:
        width = doc.pagesize[0]
        canvas.saveState()
        canvas.setFont(_FONT, 7.5)
        canvas.setFillColor(_MUTED)
        room = width - doc.leftMargin - doc.rightMargin - 60
        text = left
        while text and canvas.stringWidth(text, _FONT, 7.5) > room:
            text = text[:-2] + "…" if len(text) > 2 else ""
        canvas.drawString(doc.leftMargin, 8 * mm, text)
        canvas.drawRightString(width - doc.rightMargin, 8 * mm, f"Page {canvas.getPageNumber()}")
        canvas.restoreState()

    return draw


def _build(story: list[Flowable], pagesize: tuple[float, float], footer: str, title: str) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=pagesize,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=28 * mm,  # room for the signature stamp above the footer
        title=_one_line(title, 200),
        author="Portico",
        creator="Portico",
        invariant=1,
    )
    callback = _footer(footer)
    doc.build(story, onFirstPage=callback, onLaterPages=callback)
    return buf.getvalue()


# --------------------------------------------------------------------------- line items


def _quantity(value: object, index: int) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"Line {index}: quantity {value!r} is not a number.")
    try:
        qty = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"Line {index}: quantity {value!r} is not a number.") from exc
    if not qty.is_finite():
        raise ValueError(f"Line {index}: quantity {value!r} is not a number.")
    return qty


def _format_quantity(qty: Decimal) -> str:
    text = format(qty.normalize(), "f")
    if "." in text:
        whole, frac = text.split(".")
        return f"{int(whole):,}.{frac}" if whole not in ("", "-0") else text
    return f"{int(text):,}"


def _page_size_for(currency: str) -> tuple[float, float]:
    return LETTER if (currency or "").strip().upper() in ("USD", "CAD") else A4


def render_line_items_pdf(
    *,
    company_name: str,
    kind: str,
    title: str,
    number: str,
    client_name: str,
    project_name: str,
    currency: str,
    line_items: list[dict],
    issued_on: date,
    notes: str | None = None,
) -> tuple[bytes, int]:
    """Render a quote/change order/invoice-like document; return (pdf bytes, total_cents).

    Each line item is ``{description, quantity, unit_price_cents}``; quantity may be an int,
    float or decimal string, and every line total is rounded half-up to whole cents.
    Raises ValueError for a quantity that is not a number or a non-integer unit price.
    """
    styles = _styles()
    rows: list[list[Any]] = [
        [
            Paragraph("Description", styles["head"]),
            Paragraph("Qty", styles["head_right"]),
            Paragraph("Unit price", styles["head_right"]),
            Paragraph("Amount", styles["head_right"]),
        ]
    ]
    total = 0
    for index, item in enumerate(line_items, start=1):
        qty = _quantity(item.get("quantity", 1), index)
        unit = item.get("unit_price_cents")
        if isinstance(unit, bool) or not isinstance(unit, int):
            raise ValueError(f"Line {index}: unit_price_cents must be a whole number of cents.")
        amount = line_total(qty, unit)
        total += amount
        rows.append(
            [
                Paragraph(
                    _markup(item.get("description") or "", _MAX_DESCRIPTION_CHARS),
                    styles["cell"],
                ),
                Paragraph(escape(_format_quantity(qty)), styles["cell_right"]),
                Paragraph(escape(format_money(unit, currency)), styles["cell_right"]),
                Paragraph(escape(format_money(amount, currency)), styles["cell_right"]),
            ]
        )
    if len(rows) == 1:
        rows.append([Paragraph("No line items.", styles["muted"]), "", "", ""])
    rows.append(
        [
            Paragraph("Total", styles["total"]),
            "",
            "",
            Paragraph(escape(format_money(total, currency)), styles["total"]),
        ]
    )

    pagesize = _page_size_for(currency)
    frame_width = pagesize[0] - 36 * mm
    money_width = 30 * mm
    qty_width = 20 * mm
    table = Table(
        rows,
        colWidths=[frame_width - qty_width - 2 * money_width, qty_width, money_width, money_width],
        repeatRows=1,
        splitInRow=1,
    )
    last = len(rows) - 1
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), _HEADER_BG),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, _RULE),
                ("LINEBELOW", (0, 1), (-1, last - 1), 0.3, _RULE),
                ("LINEABOVE", (0, last), (-1, last), 0.9, _INK),
                ("SPAN", (0, last), (2, last)),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )

    label = _kind_label(kind)
    heading = f"{label} {_one_line(number, 200)}".strip()
    facts = [
        ("Client", client_name),
        ("Project", project_name),
        ("Date", _long_date(issued_on)),
    ]
    story: list[Flowable] = [
        Paragraph(_markup(_one_line(company_name, 300) or "Portico"), styles["company"]),
        Spacer(1, 6),
        Paragraph(escape(heading), styles["kind"]),
        Paragraph(_markup(_one_line(title, 1000)), styles["title"]),
    ]
    for name, value in facts:
        story.append(Paragraph(f"<b>{name}:</b> {_markup(_one_line(value, 500))}", styles["base"]))
    story += [Spacer(1, 10), table]
    if notes and notes.strip():
        story += [
            Spacer(1, 12),
            Paragraph("<b>Notes</b>", styles["base"]),
            Paragraph(_markup(notes.strip(), _MAX_FIELD_CHARS), styles["base"]),
        ]
    footer = f"{_one_line(company_name, 120)} — {heading}"
    return _build(story, pagesize, footer, f"{heading} {title}"), total


# --------------------------------------------------------------------------- certificate


@dataclass(frozen=True)
class CertificateSigner:
    """One signer's evidence as shown on the certificate of completion."""

    name: str
    email: str | None
    phone: str | None
    status: str  # approved / declined / skipped / ...
    channel: str | None  # 'web' | 'sms' | 'upload' | None
    sent_at: datetime | None
    first_viewed_at: datetime | None
    decided_at: datetime | None
    ip: str | None
    user_agent: str | None
    signature_name: str | None
    signature_png: bytes | None
    notes: str | None
    consent: bool
    decline_reason: str | None = None
    portal_client_id: int | None = None  # decided in a client portal session of this client


@dataclass(frozen=True)
class Certificate:
    """Everything the certificate pages and the signature stamp show."""

    approval_id: int
    document_kind: str
    document_title: str
    document_number: str
    document_sha256: str
    amount: str
    status: str
    completed_at: datetime
    company_name: str
    signers: list[CertificateSigner]
    replaced_by_upload: bool = False  # the signer's uploaded PDF is the document of record
    # Digital signatures the document of record already carries (a client signed it in
    # Acrobat): kept valid, so its pages are left as they are (no stamp), and shown as evidence.
    embedded_signatures: tuple[EmbeddedSignature, ...] = ()


@dataclass(frozen=True)
class _Picture:
    data: bytes
    width: int
    height: int


def _picture(data: bytes | None) -> _Picture | None:
    """A decodable signature image, or None when missing, huge or corrupt."""
    if not data:
        return None
    try:
        reader = ImageReader(io.BytesIO(data))
        width, height = reader.getSize()
        if width <= 0 or height <= 0 or width * height > _MAX_SIGNATURE_PIXELS:
            return None
        reader.getRGBData()
    except Exception:
        return None
    return _Picture(bytes(data), int(width), int(height))


def _fit(picture: _Picture, max_width: float, max_height: float) -> tuple[float, float]:
    scale = min(max_width / picture.width, max_height / picture.height)
    return picture.width * scale, picture.height * scale


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _stamp_text(cert: Certificate) -> str:
    approved = [s for s in cert.signers if s.status == "approved"]
    declined = [s for s in cert.signers if s.status == "declined"]
    people, verb = (approved, "Approved") if approved else (declined, "Declined")
    request = f"Portico request #{cert.approval_id}"
    if not people:
        when = _short_utc(cert.completed_at)
        return f"{_status_label(cert.status)} — {when} — {request}"
    names = ", ".join(_one_line(s.name, 120) or "(unnamed signer)" for s in people)
    dates = ", ".join(_unique(_short_utc(s.decided_at or cert.completed_at) for s in people))
    return f"{verb} electronically by {names} — {dates} — {request}"


def _stamp_overlay(cert: Certificate, width: float, height: float) -> bytes:
    """A one-page PDF of the given size with the signature stamp at the bottom."""
    margin = min(24.0, width * 0.05)
    box_width = max(width - 2 * margin, 40.0)
    image_height = 26.0
    pictures: list[_Picture] = []
    sizes: list[tuple[float, float]] = []
    images_width = 0.0
    for signer in cert.signers:
        picture = _picture(signer.signature_png) if signer.status == "approved" else None
        if picture is None or len(pictures) == 3:
            continue
        size = _fit(picture, 90.0, image_height)
        if images_width + size[0] + 6 > box_width * 0.5:
            break
        pictures.append(picture)
        sizes.append(size)
        images_width += size[0] + 6
    font_size = 7.0
    leading = 8.6
    text = _stamp_text(cert)
    text_width = max(box_width - images_width - 12, 20.0)
    lines = simpleSplit(text, _FONT, font_size, text_width) or [""]
    if len(lines) == 1:  # shrink the box around a short stamp
        natural = stringWidth(text, _FONT, font_size)
        box_width = min(box_width, natural + images_width + 14)
    if len(lines) > 4:
        lines = lines[:3] + [lines[3][: max(len(lines[3]) - 2, 0)] + " …"]
    text_height = len(lines) * leading
    box_height = max(text_height, image_height if pictures else 0) + 8
    x = margin
    y = min(36.0, height * 0.045)  # above a typical footer, below a typical text frame

    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(width, height), invariant=1)
    canvas.saveState()
    canvas.setFillColor(colors.white)
    canvas.setFillAlpha(0.88)
    canvas.setStrokeColor(_STAMP_INK)
    canvas.setLineWidth(0.6)
    canvas.roundRect(x, y, box_width, box_height, 3, stroke=1, fill=1)
    canvas.restoreState()
    canvas.setFillColor(_STAMP_INK)
    canvas.setFont(_FONT, font_size)
    text_top = y + (box_height + text_height) / 2 - font_size
    for i, line in enumerate(lines):
        canvas.drawString(x + 6, text_top - i * leading, line)
    right = x + box_width - 6
    for picture, (w, h) in zip(reversed(pictures), reversed(sizes), strict=True):
        right -= w
        canvas.drawImage(
            ImageReader(io.BytesIO(picture.data)),
            right,
            y + (box_height - h) / 2,
            width=w,
            height=h,
            mask="auto",
        )
        right -= 6
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def _field(styles: dict[str, ParagraphStyle], label: str, value: object, limit: int) -> Paragraph:
    text = _markup(value, limit) if value not in (None, "") else "—"
    return Paragraph(f"<b>{escape(label)}:</b> {text}", styles["field"])


def _signer_block(
    styles: dict[str, ParagraphStyle], index: int, signer: CertificateSigner
) -> list[Flowable]:
    name = _one_line(signer.name, 300) or "(unnamed signer)"
    channel = _CHANNEL_LABELS.get(signer.channel or "", signer.channel)
    if signer.portal_client_id is not None:
        channel = f"{channel or 'Web'} via client portal (client #{signer.portal_client_id})"
    decided_label = "Declined" if signer.status == "declined" else "Decided"
    block: list[Flowable] = [
        Paragraph(f"{index}. {escape(name)}", styles["h3"]),
        _field(styles, "Status", _status_label(signer.status), 100),
        _field(styles, "Email", signer.email, 500),
        _field(styles, "Phone", signer.phone, 100),
        _field(styles, "Channel", channel, 100),
        _field(styles, "Sent", _iso(signer.sent_at), 40),
        _field(styles, "First viewed", _iso(signer.first_viewed_at), 40),
        _field(styles, decided_label, _iso(signer.decided_at), 40),
        _field(styles, "IP address", signer.ip, 200),
        _field(styles, "User agent", signer.user_agent, 2000),
        _field(styles, "Typed signature", signer.signature_name, 500),
    ]
    picture = _picture(signer.signature_png)
    if picture is not None:
        w, h = _fit(picture, 200.0, 60.0)
        image = Image(io.BytesIO(picture.data), width=w, height=h, mask="auto", hAlign="LEFT")
        block += [Paragraph("<b>Drawn signature:</b>", styles["field"]), _Indented(image, 10)]
    elif signer.signature_png:
        block.append(_field(styles, "Drawn signature", "(image could not be read)", 100))
    if signer.notes:
        block.append(_field(styles, "Notes", signer.notes, _MAX_FIELD_CHARS))
    if signer.decline_reason:
        block.append(_field(styles, "Decline reason", signer.decline_reason, _MAX_FIELD_CHARS))
    consent = "yes" if signer.consent else "no"
    block.append(Paragraph(f"Consented to sign electronically: {consent}", styles["field"]))
    return block


class _Indented(Flowable):
    """Draw a flowable shifted right by ``indent`` points."""

    def __init__(self, inner: Flowable, indent: float) -> None:
        super().__init__()
        self.inner = inner
        self.indent = indent

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        w, h = self.inner.wrap(availWidth - self.indent, availHeight)
        return w + self.indent, h

    def draw(self) -> None:
        self.inner.drawOn(self.canv, self.indent, 0)


def _certificate_pdf(cert: Certificate, pagesize: tuple[float, float]) -> bytes:
    styles = _styles()
    request = f"Portico request #{cert.approval_id}"
    kind = _kind_label(cert.document_kind)
    sha = "".join(ch for ch in str(cert.document_sha256 or "") if ch.isalnum())[:128]
    story: list[Flowable] = [
        Paragraph("Certificate of completion", styles["h1"]),
        Paragraph(
            f"{escape(request)} — {_markup(_one_line(cert.company_name, 300))}", styles["muted"]
        ),
        Spacer(1, 8),
        Paragraph("Document", styles["h2"]),
        _field(styles, "Request", f"#{cert.approval_id}", 40),
        _field(styles, "Kind", kind, 200),
        _field(styles, "Number", _one_line(cert.document_number, 200), 200),
        _field(styles, "Title", _one_line(cert.document_title, 1000), 1000),
        _field(styles, "Amount", cert.amount, 100),
        _field(styles, "Status", _status_label(cert.status), 100),
        _field(styles, "Completed at", _iso(cert.completed_at), 40),
        Paragraph("<b>Document SHA-256:</b>", styles["field"]),
        Paragraph(escape(sha) or "—", styles["mono"]),
    ]
    if cert.replaced_by_upload:
        story.append(Paragraph(escape(UPLOAD_NOTICE), styles["notice"]))
    if cert.embedded_signatures:
        story += _embedded_signatures_block(styles, cert.embedded_signatures)
    story.append(Paragraph(f"Signers ({len(cert.signers)})", styles["h2"]))
    if not cert.signers:
        story.append(Paragraph("No signers were recorded.", styles["field"]))
    for index, signer in enumerate(cert.signers, start=1):
        block = _signer_block(styles, index, signer)
        story += [KeepTogether(block[:4]), *block[4:]]
    story += [
        Spacer(1, 14),
        Paragraph(
            escape(
                f"This file is digitally signed by {_one_line(cert.company_name, 300)}: any PDF "
                "reader shows whether it was changed since. The SHA-256 of this final file and "
                "the signing certificate's fingerprint are recorded in Portico's audit trail; "
                f"verify with: portico audit verify {cert.approval_id}"
            ),
            styles["muted"],
        ),
    ]
    footer = f"{request} — Certificate of completion"
    return _build(story, pagesize, footer, f"Certificate of completion — {request}")


def _embedded_signatures_block(
    styles: dict[str, ParagraphStyle], signatures: tuple[EmbeddedSignature, ...]
) -> list[Flowable]:
    block: list[Flowable] = [
        Paragraph(
            f"Digital signatures in the document of record ({len(signatures)})", styles["h2"]
        ),
        Paragraph(
            escape(
                "The document of record was already digitally signed; Portico added its pages "
                "and signature in an incremental update, so these signatures stay valid."
            ),
            styles["field"],
        ),
    ]
    for index, signature in enumerate(signatures, start=1):
        integrity = "intact" if signature.intact else "NOT intact: the signed content was changed"
        when = _iso(signature.signed_at)
        if signature.signed_at is not None:
            when += " (timestamped)" if signature.timestamped else " (as claimed by the signer)"
        block += [
            Paragraph(f"{index}. {_markup(_one_line(signature.signer, 300))}", styles["h3"]),
            _field(styles, "Signature field", signature.field_name, 200),
            _field(styles, "Signed at", when, 80),
            _field(styles, "Integrity", integrity, 100),
            Paragraph("<b>Certificate SHA-256:</b>", styles["field"]),
            Paragraph(escape(signature.certificate_sha256), styles["mono"]),
        ]
    return block


def signature_appearance_text(cert: Certificate) -> str:
    """The visible digital signature's text on the last certificate page (pyHanko interpolates
    the signing time for ``%(ts)s``)."""
    company = _one_line(cert.company_name, 60) or "Portico"
    return (
        f"Digitally signed by {company.replace('%', '%%')}\n"
        f"Portico request #{cert.approval_id}\n"
        "Time: %(ts)s"
    )


def _certificate_page_size(box: RectangleObject, rotation: int) -> tuple[float, float]:
    width, height = float(box.width), float(box.height)
    if rotation % 180:
        width, height = height, width
    short = min(abs(width), abs(height))
    return A4 if abs(short - A4[0]) < abs(short - LETTER[0]) else LETTER


def build_signed_pdf(
    original_pdf: bytes, certificate: Certificate, limits: PdfLimits = DEFAULT_LIMITS
) -> bytes:
    """Stamp the last page of ``original_pdf`` and append certificate-of-completion pages.

    The original is checked within ``limits`` again (it may have been stored before they
    existed) and loses its active content. A document that already carries digital signatures
    (``certificate.embedded_signatures``) and has no active content gets only the certificate
    pages, in an incremental update that keeps those signatures valid. Raises InvalidPdf if it
    cannot be used. CPU-bound: run it through portico/pdf_sandbox.py from async code.
    """
    with limits_config(limits):
        reader = open_checked(original_pdf, limits)
        try:
            stripped = strip_active_content(reader)
            if stripped is None and certificate.embedded_signatures:
                return _append_certificate(original_pdf, certificate)
            if stripped is not None:
                reader = PdfReader(io.BytesIO(stripped[0]), strict=False)
                # Rewriting the file broke any signatures it had: they are no evidence now.
                certificate = replace(certificate, embedded_signatures=())
            writer = PdfWriter(clone_from=reader)
            last = writer.pages[-1]
            certificate_size = _certificate_page_size(last.cropbox, int(last.rotation or 0))
            if int(last.rotation or 0) % 360:
                last.transfer_rotation_to_content()
            box = last.cropbox
            left = min(float(box.left), float(box.right))
            bottom = min(float(box.bottom), float(box.top))
            width, height = abs(float(box.width)), abs(float(box.height))
        except Exception as exc:
            raise InvalidPdf("The PDF is damaged and could not be read.") from exc

        overlay = PdfReader(io.BytesIO(_stamp_overlay(certificate, width, height))).pages[0]
        try:
            last.merge_transformed_page(overlay, Transformation().translate(left, bottom))
            last.compress_content_streams()  # merged content is written inflated otherwise
        except Exception as exc:
            raise InvalidPdf("The PDF is damaged and could not be stamped.") from exc

        for page in PdfReader(io.BytesIO(_certificate_pdf(certificate, certificate_size))).pages:
            writer.add_page(page)
        out = io.BytesIO()
        writer.write(out)
    return out.getvalue()


def _append_certificate(original_pdf: bytes, certificate: Certificate) -> bytes:
    """``original_pdf`` byte for byte, then an incremental update adding the certificate pages.

    Called within the limits config of build_signed_pdf."""
    try:
        writer = PdfWriter(io.BytesIO(original_pdf), incremental=True)
        last = writer.pages[-1]
        certificate_size = _certificate_page_size(last.cropbox, int(last.rotation or 0))
        for page in PdfReader(io.BytesIO(_certificate_pdf(certificate, certificate_size))).pages:
            writer.add_page(page)
        out = io.BytesIO()
        writer.write(out)
    except Exception as exc:
        raise InvalidPdf("The PDF is damaged and could not be read.") from exc
    return out.getvalue()
