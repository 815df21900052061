"""PDF helpers: validate uploads, render line-item documents, build signed copies.

Everything here is pure and synchronous: no database, no network and no clock reads (every
timestamp is passed in). reportlab draws, pypdf reads and merges. Text is drawn with the
standard Helvetica/Courier fonts, so characters they cannot show are transliterated or replaced.

The words are the reader's (CONTRACT section 10): a rendered document is drawn in the `locale`
it is given and the certificate pages and stamp in the certificate's `locale` and `timezone`
(the signing activity resolves them; this module runs in a child process, so they travel in
the values, not in context variables). Times keep their exact UTC form beside the local one.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

from babel import dates as babel_dates
from babel.numbers import format_decimal
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

from portico import i18n
from portico.i18n import N_
from portico.i18n import gettext as _
from portico.money import format_money, line_total
from portico.pades_values import EmbeddedSignature
from portico.pdf_safety import limits_config, open_checked, strip_active_content
from portico.pdf_values import (
    DEFAULT_LIMITS,
    Certificate,
    CertificateSigner,
    CheckedPdf,
    InvalidPdf,
    PdfLimits,
    sha256_hex,
    size_label,
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

UPLOAD_NOTICE = N_(
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
_KIND_ACRONYMS = {"rfi": "RFI", "po": "PO", "sow": "SOW", "nda": "NDA"}
_KIND_LABELS = {**i18n.KIND_LABELS, "invoice": N_("Invoice")}
_CHANNEL_LABELS = {
    "web": N_("Web signing link"),
    "sms": N_("SMS reply"),
    "upload": N_("Uploaded signed PDF"),
}
_STATUS_LABELS = {
    "pending": N_("Pending"),
    "approved": N_("Approved"),
    "declined": N_("Declined"),
    "skipped": N_("Skipped"),
    "expired": N_("Expired"),
    "void": N_("Void"),
    "waiting": N_("Waiting"),
    "viewed": N_("Viewed"),
    "partially_approved": N_("Partially approved"),
}
# Letters with no Unicode decomposition that Helvetica (WinAnsi) cannot show.
_TRANSLITERATE = {
    "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "Ŧ": "T", "ŧ": "t",
    "Ŀ": "L", "ŀ": "l", "ĸ": "k", "ſ": "s", "Ə": "E", "ə": "e", "Ŋ": "N", "ŋ": "n",
    "‐": "-", "‑": "-", "‒": "-", "―": "-", "−": "-", "′": "'", "″": '"', "‚": ",",
    "\u2028": "\n", "\u2029": "\n",
}  # fmt: skip


# --------------------------------------------------------------------------- basics


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
    """The kind's name in the current locale."""
    if kind in _KIND_LABELS:
        return _(_KIND_LABELS[kind])
    if (kind or "").lower() in _KIND_ACRONYMS:
        return _KIND_ACRONYMS[kind.lower()]
    text = _one_line((kind or "document").replace("_", " "))
    return text[:1].upper() + text[1:]


def _status_label(status: str) -> str:
    if status in _STATUS_LABELS:
        return _(_STATUS_LABELS[status])
    text = _one_line((status or "unknown").replace("_", " "))
    return text[:1].upper() + text[1:]


def _long_date(day: date) -> str:
    """'May 1, 2024', '1 mai 2024', '1 de mayo de 2024'."""
    return babel_dates.format_date(day, "long", locale=i18n.babel_locale())


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str:
    """'2024-05-01T14:03:22Z', or an em dash for None."""
    if moment is None:
        return "—"
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(moment: datetime | None) -> str:
    """The reader's local time, then the exact UTC moment: 'May 1, 2024, 10:00 AM EDT
    (2024-05-01T14:00:00Z)'; an em dash for None."""
    if moment is None:
        return "—"
    return f"{i18n.format_datetime(_utc(moment))} ({_iso(moment)})"


def _head(text: str) -> str:
    """Portico's own (translated) text, ready for a Paragraph."""
    return escape(_clean(text))


def _label(name: str) -> str:
    """'Client:' / 'Client :' (French puts a space before the colon)."""
    return _("%(label)s:", label=name)


def _money(cents: int, currency: str) -> str:
    """An amount for a Paragraph, in the current locale ('1 250,00 $' in fr-CA)."""
    return escape(_clean(format_money(cents, currency)))


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
        page = _clean(_("Page %(number)s", number=canvas.getPageNumber()))
        canvas.drawRightString(width - doc.rightMargin, 8 * mm, page)
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
    """Every digit of the quantity, written for the current locale ('1,234.5', '1 234,5')."""
    text = format_decimal(qty.normalize(), locale=i18n.babel_locale(), decimal_quantization=False)
    return _clean(text)


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
    locale: str = i18n.DEFAULT_LOCALE,
) -> tuple[bytes, int]:
    """Render a quote/change order/invoice-like document; return (pdf bytes, total_cents).

    Each line item is ``{description, quantity, unit_price_cents}``; quantity may be an int,
    float or decimal string, and every line total is rounded half-up to whole cents. Labels,
    money and the date are written for ``locale`` (the client's).
    Raises ValueError for a quantity that is not a number or a non-integer unit price.
    """
    with i18n.use(locale):
        return _line_items_pdf(
            company_name=company_name,
            kind=kind,
            title=title,
            number=number,
            client_name=client_name,
            project_name=project_name,
            currency=currency,
            line_items=line_items,
            issued_on=issued_on,
            notes=notes,
        )


def _line_items_pdf(
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
    notes: str | None,
) -> tuple[bytes, int]:
    styles = _styles()
    rows: list[list[Any]] = [
        [
            Paragraph(_head(_("Description")), styles["head"]),
            Paragraph(_head(_("Qty")), styles["head_right"]),
            Paragraph(_head(_("Unit price")), styles["head_right"]),
            Paragraph(_head(_("Amount")), styles["head_right"]),
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
                Paragraph(_money(unit, currency), styles["cell_right"]),
                Paragraph(_money(amount, currency), styles["cell_right"]),
            ]
        )
    if len(rows) == 1:
        rows.append([Paragraph(_head(_("No line items.")), styles["muted"]), "", "", ""])
    rows.append(
        [
            Paragraph(_head(_("Total")), styles["total"]),
            "",
            "",
            Paragraph(_money(total, currency), styles["total"]),
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
        (_("Client"), client_name),
        (_("Project"), project_name),
        (_("Date"), _long_date(issued_on)),
    ]
    story: list[Flowable] = [
        Paragraph(_markup(_one_line(company_name, 300) or "Portico"), styles["company"]),
        Spacer(1, 6),
        Paragraph(escape(heading), styles["kind"]),
        Paragraph(_markup(_one_line(title, 1000)), styles["title"]),
    ]
    for name, value in facts:
        text = _markup(_one_line(value, 500))
        story.append(Paragraph(f"<b>{_head(_label(name))}</b> {text}", styles["base"]))
    story += [Spacer(1, 10), table]
    if notes and notes.strip():
        story += [
            Spacer(1, 12),
            Paragraph(f"<b>{_head(_('Notes'))}</b>", styles["base"]),
            Paragraph(_markup(notes.strip(), _MAX_FIELD_CHARS), styles["base"]),
        ]
    footer = f"{_one_line(company_name, 120)} — {heading}"
    return _build(story, pagesize, footer, f"{heading} {title}"), total


# --------------------------------------------------------------------------- certificate


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


def _request(cert: Certificate) -> str:
    return _("Portico request #%(id)s", id=cert.approval_id)


def _unnamed(name: str) -> str:
    return _one_line(name, 120) or _("(unnamed signer)")


def _stamp_text(cert: Certificate) -> str:
    """The stamp on the document's last page, in the certificate's locale (times in UTC)."""
    approved = [s for s in cert.signers if s.status == "approved"]
    declined = [s for s in cert.signers if s.status == "declined"]
    people = approved or declined
    request = _request(cert)
    if not people:
        when = _short_utc(cert.completed_at)
        return _clean(f"{_status_label(cert.status)} — {when} — {request}")
    names = ", ".join(_unnamed(s.name) for s in people)
    dates = ", ".join(_unique(_short_utc(s.decided_at or cert.completed_at) for s in people))
    if approved:
        said = _("Approved electronically by %(names)s", names=names)
    else:
        said = _("Declined electronically by %(names)s", names=names)
    return _clean(f"{said} — {dates} — {request}")


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
    with i18n.use(cert.locale, cert.timezone):
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
    return Paragraph(f"<b>{_head(_label(label))}</b> {text}", styles["field"])


def _signer_block(
    styles: dict[str, ParagraphStyle], index: int, signer: CertificateSigner
) -> list[Flowable]:
    name = _one_line(signer.name, 300) or _("(unnamed signer)")
    known = _CHANNEL_LABELS.get(signer.channel or "")
    channel = _(known) if known else signer.channel
    if signer.portal_client_id is not None:
        channel = _(
            "%(channel)s via client portal (client #%(client)s)",
            channel=channel or _("Web"),
            client=signer.portal_client_id,
        )
    decided_label = _("Declined") if signer.status == "declined" else _("Decided")
    block: list[Flowable] = [
        Paragraph(f"{index}. {escape(name)}", styles["h3"]),
        _field(styles, _("Status"), _status_label(signer.status), 100),
        _field(styles, _("Email"), signer.email, 500),
        _field(styles, _("Phone"), signer.phone, 100),
        _field(styles, _("Channel"), channel, 100),
        _field(styles, _("Sent"), _when(signer.sent_at), 120),
        _field(styles, _("First viewed"), _when(signer.first_viewed_at), 120),
        _field(styles, decided_label, _when(signer.decided_at), 120),
        _field(styles, _("IP address"), signer.ip, 200),
        _field(styles, _("User agent"), signer.user_agent, 2000),
        _field(styles, _("Typed signature"), signer.signature_name, 500),
    ]
    picture = _picture(signer.signature_png)
    if picture is not None:
        w, h = _fit(picture, 200.0, 60.0)
        image = Image(io.BytesIO(picture.data), width=w, height=h, mask="auto", hAlign="LEFT")
        drawn = _head(_label(_("Drawn signature")))
        block += [Paragraph(f"<b>{drawn}</b>", styles["field"]), _Indented(image, 10)]
    elif signer.signature_png:
        unreadable = _("(image could not be read)")
        block.append(_field(styles, _("Drawn signature"), unreadable, 100))
    if signer.notes:
        block.append(_field(styles, _("Notes"), signer.notes, _MAX_FIELD_CHARS))
    if signer.decline_reason:
        block.append(_field(styles, _("Decline reason"), signer.decline_reason, _MAX_FIELD_CHARS))
    consent = _("yes") if signer.consent else _("no")
    consented = _("Consented to sign electronically: %(answer)s", answer=consent)
    block.append(Paragraph(_head(consented), styles["field"]))
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
    """The certificate-of-completion pages, in the certificate's locale and time zone."""
    with i18n.use(cert.locale, cert.timezone):
        return _certificate_pages(cert, pagesize)


def _certificate_pages(cert: Certificate, pagesize: tuple[float, float]) -> bytes:
    styles = _styles()
    request = _clean(_request(cert))
    title = _("Certificate of completion")
    kind = _kind_label(cert.document_kind)
    sha = "".join(ch for ch in str(cert.document_sha256 or "") if ch.isalnum())[:128]
    document_sha = _head(_label(_("Document SHA-256")))
    story: list[Flowable] = [
        Paragraph(_head(title), styles["h1"]),
        Paragraph(
            f"{escape(request)} — {_markup(_one_line(cert.company_name, 300))}", styles["muted"]
        ),
        Spacer(1, 8),
        Paragraph(_head(_("Document")), styles["h2"]),
        _field(styles, _("Request"), f"#{cert.approval_id}", 40),
        _field(styles, _("Kind"), kind, 200),
        _field(styles, _("Number"), _one_line(cert.document_number, 200), 200),
        _field(styles, _("Title"), _one_line(cert.document_title, 1000), 1000),
        _field(styles, _("Amount"), cert.amount, 100),
        _field(styles, _("Status"), _status_label(cert.status), 100),
        _field(styles, _("Completed at"), _when(cert.completed_at), 120),
        Paragraph(f"<b>{document_sha}</b>", styles["field"]),
        Paragraph(escape(sha) or "—", styles["mono"]),
    ]
    if cert.replaced_by_upload:
        story.append(Paragraph(_head(_(UPLOAD_NOTICE)), styles["notice"]))
    if cert.embedded_signatures:
        story += _embedded_signatures_block(styles, cert.embedded_signatures)
    signers = _("Signers (%(count)s)", count=len(cert.signers))
    story.append(Paragraph(_head(signers), styles["h2"]))
    if not cert.signers:
        story.append(Paragraph(_head(_("No signers were recorded.")), styles["field"]))
    for index, signer in enumerate(cert.signers, start=1):
        block = _signer_block(styles, index, signer)
        story += [KeepTogether(block[:4]), *block[4:]]
    closing = _(
        "This file is digitally signed by %(company)s: any PDF reader shows whether it was "
        "changed since. The SHA-256 of this final file and the signing certificate's "
        "fingerprint are recorded in Portico's audit trail; verify with: "
        "portico audit verify %(id)s",
        company=_one_line(cert.company_name, 300),
        id=cert.approval_id,
    )
    story += [Spacer(1, 14), Paragraph(_head(closing), styles["muted"])]
    footer = f"{request} — {_clean(title)}"
    return _build(story, pagesize, footer, f"{title} — {request}")


def _embedded_signatures_block(
    styles: dict[str, ParagraphStyle], signatures: tuple[EmbeddedSignature, ...]
) -> list[Flowable]:
    heading = _("Digital signatures in the document of record (%(count)s)", count=len(signatures))
    explained = _(
        "The document of record was already digitally signed; Portico added its pages "
        "and signature in an incremental update, so these signatures stay valid."
    )
    block: list[Flowable] = [
        Paragraph(_head(heading), styles["h2"]),
        Paragraph(_head(explained), styles["field"]),
    ]
    certificate_sha = _head(_label(_("Certificate SHA-256")))
    for index, signature in enumerate(signatures, start=1):
        if signature.intact:
            integrity = _("intact")
        else:
            integrity = _("NOT intact: the signed content was changed")
        when = _when(signature.signed_at)
        if signature.signed_at is not None:
            if signature.timestamped:
                when += " " + _("(timestamped)")
            else:
                when += " " + _("(as claimed by the signer)")
        block += [
            Paragraph(f"{index}. {_markup(_one_line(signature.signer, 300))}", styles["h3"]),
            _field(styles, _("Signature field"), signature.field_name, 200),
            _field(styles, _("Signed at"), when, 160),
            _field(styles, _("Integrity"), integrity, 100),
            Paragraph(f"<b>{certificate_sha}</b>", styles["field"]),
            Paragraph(escape(signature.certificate_sha256), styles["mono"]),
        ]
    return block


def signature_appearance_text(cert: Certificate) -> str:
    """The visible digital signature's text on the last certificate page (pyHanko interpolates
    the signing time for ``%(ts)s``)."""
    company = (_one_line(cert.company_name, 60) or "Portico").replace("%", "%%")
    with i18n.use(cert.locale, cert.timezone):
        signed = _clean(_("Digitally signed by %(company)s", company=company))
        request = _clean(_request(cert)).replace("%", "%%")
        time = _clean(_("Time:")).replace("%", "%%")
    return f"{signed}\n{request}\n{time} %(ts)s"


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
