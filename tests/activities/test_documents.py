"""The signed-PDF activity: document of record, certificate pages, idempotency."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from activities.documents import DocumentActivities
from portico import pdf
from portico.audit import append_event
from portico.db import create_all, create_engine, session_maker
from portico.files import FileStore
from portico.models import Approval, Approver, Client, Document, Project
from portico.settings import Settings
from tests.support.helpers import added
from workflows.types import AuditEventInput

T0 = datetime(2024, 5, 1, 14, 0, 0, tzinfo=UTC)
_WORKFLOW_IDS = itertools.count(1)


def tiny_png(width: int = 8, height: int = 4) -> bytes:
    """A valid RGB PNG with a dark diagonal stroke."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b""
    for y in range(height):
        row = bytearray(b"\x00")  # filter: none
        for x in range(width):
            row += b"\x10\x10\x40" if x // 2 == y else b"\xff\xff\xff"
        rows += bytes(row)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def blank_pdf(pages: int, label: str) -> bytes:
    buf = io.BytesIO()
    canvas = Canvas(buf, invariant=1)
    for number in range(1, pages + 1):
        canvas.drawString(72, 720, f"{label} page {number}")
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


def image_count(data: bytes, pages: slice) -> int:
    reader = PdfReader(io.BytesIO(data))
    return sum(len(page.images) for page in reader.pages[pages])


@dataclass
class World:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    store: FileStore
    acts: DocumentActivities
    original: bytes
    original_sha: str
    original_pages: int
    document_id: int

    async def approval(
        self,
        *,
        status: str = "approved",
        approvers: list[dict[str, object]] | None = None,
        events: list[AuditEventInput] | None = None,
        completed_at: datetime | None = T0 + timedelta(hours=2),
    ) -> tuple[int, list[int]]:
        """Insert an approval with approvers (dicts of column overrides); returns ids."""
        specs = approvers if approvers is not None else [{}]
        async with self.sessions() as session:
            approval = Approval(
                document_id=self.document_id,
                workflow_id=f"approval-{next(_WORKFLOW_IDS)}",
                routing="sequential",
                status=status,
                channels=["email"],
                notify_staff=[],
                created_at=T0,
                completed_at=completed_at,
            )
            session.add(approval)
            await session.flush()
            rows = []
            for position, spec in enumerate(specs):
                columns: dict[str, object] = {
                    "name": f"Signer {position + 1}",
                    "email": f"signer{position + 1}@example.com",
                    "status": "approved",
                    "signed_at": T0 + timedelta(hours=1, minutes=position),
                    "notified_at": T0,
                    "decided_via": "web",
                    "decided_ip": f"203.0.113.{10 + position}",
                    "decided_user_agent": "Mozilla/5.0 (Test)",
                    "signature_name": f"Signer {position + 1}",
                    "consent": True,
                }
                columns.update(spec)
                row = Approver(
                    approval_id=approval.id,
                    position=position,
                    token_hash=f"token-{approval.id}-{position}",
                    token_expires_at=T0 + timedelta(days=30),
                    sms_code=f"{approval.id}{position}",
                    **columns,
                )
                session.add(row)
                rows.append(row)
            await session.flush()
            for event in events or []:
                await append_event(session, approval.id, event)
            await session.commit()
            return approval.id, [row.id for row in rows]

    async def load(self, approval_id: int) -> Approval:
        async with self.sessions() as session:
            approval = await session.get(Approval, approval_id)
            assert approval is not None
            return approval


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    try:
        await create_all(engine)
        settings = Settings(
            PORTICO_FILES_DIR=str(tmp_path / "files"),
            PORTICO_VAR_DIR=str(tmp_path / "var"),
            PORTICO_COMPANY_NAME="Acme Renovations",
        )
        sessions = session_maker(engine)
        store = FileStore(settings.files_dir)
        original, total = pdf.render_line_items_pdf(
            company_name="Acme Renovations",
            kind="quote",
            title="Kitchen remodel",
            number="Q-1001",
            client_name="Dana Client",
            project_name="Kitchen",
            currency="USD",
            line_items=[{"description": "Cabinets", "quantity": 2, "unit_price_cents": 125000}],
            issued_on=date(2024, 5, 1),
        )
        original_path = store.save("documents", original, ".pdf")
        async with sessions() as session:
            client = await added(session, Client(name="Dana Client", email="dana@example.com"))
            project = await added(session, Project(client_id=client.id, name="Kitchen"))
            document = Document(
                project_id=project.id,
                kind="quote",
                title="Kitchen remodel",
                number="Q-1001",
                amount_cents=total,
                currency="USD",
                file_path=original_path,
                sha256=pdf.sha256_hex(original),
                size_bytes=len(original),
            )
            session.add(document)
            await session.commit()
            document_id = document.id
        yield World(
            settings=settings,
            sessions=sessions,
            store=store,
            acts=DocumentActivities(settings, sessions),
            original=original,
            original_sha=pdf.sha256_hex(original),
            original_pages=pdf.page_count(original),
            document_id=document_id,
        )
    finally:
        await engine.dispose()


async def test_builds_signed_pdf_with_certificate(world: World) -> None:
    approval_id, _ = await world.approval(
        approvers=[
            {"name": "Alice Approver", "decided_ip": "198.51.100.7"},
            {"name": "Bob Builder", "decided_ip": "198.51.100.8", "decided_via": "sms"},
        ]
    )
    result = await world.acts.build_signed_pdf(approval_id)

    data = world.store.read(result.path)
    assert result.path.startswith("signed/") and result.path.endswith(".pdf")
    assert pdf.sha256_hex(data) == result.sha256
    assert result.pages == pdf.page_count(data)
    assert result.pages >= world.original_pages + 1
    first_page = PdfReader(io.BytesIO(data)).pages[0].extract_text() or ""
    assert "Kitchen remodel" in first_page and "Certificate of completion" not in first_page
    assert "Approved electronically by" in pdf.pdf_text(data)

    approval = await world.load(approval_id)
    assert approval.signed_pdf_path == result.path
    assert approval.signed_pdf_sha256 == result.sha256

    text = pdf.pdf_text(data)
    assert "Certificate of completion" in text
    for expected in ("Alice Approver", "Bob Builder", "198.51.100.7", "198.51.100.8"):
        assert expected in text
    assert world.original_sha in text
    assert "$2,500.00" in text
    assert "Acme Renovations" in text
    assert "Kitchen remodel" in text
    assert pdf.UPLOAD_NOTICE[:40] not in text


async def _client_reads(world: World, locale: str | None, timezone: str | None) -> None:
    async with world.sessions() as session:
        client = await session.scalar(select(Client))
        assert client is not None
        client.locale, client.timezone = locale, timezone
        await session.commit()


def _certificate_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(p.extract_text().split()) for p in reader.pages[1:])


async def test_certificate_is_in_the_clients_language_and_time_zone(world: World) -> None:
    await _client_reads(world, "fr", "America/Vancouver")
    approval_id, _ = await world.approval()
    result = await world.acts.build_signed_pdf(approval_id)
    text = _certificate_text(world.store.read(result.path))
    assert "Certificat d’achèvement" in text and "Certificate of completion" not in text
    assert "Montant : 2 500,00 $ US" in text  # USD for a reader in fr-CA
    # completed 16:00 UTC = 09:00 in Vancouver (PDT)
    assert "Terminé le : 1 mai 2024, 09 h 00 PDT (2024-05-01T16:00:00Z)" in text
    assert "A consenti à signer électroniquement : oui" in text


async def test_first_approvers_language_wins_over_the_clients(world: World) -> None:
    await _client_reads(world, "fr", None)
    approval_id, _ = await world.approval(approvers=[{"locale": "es"}, {"locale": "en"}])
    result = await world.acts.build_signed_pdf(approval_id)
    text = _certificate_text(world.store.read(result.path))
    assert "Certificado de finalización" in text
    # no time zone on the client: PORTICO_DEFAULT_TIMEZONE (America/New_York)
    assert "Finalizado el: 1 may 2024, 12:00 p.m. EDT (2024-05-01T16:00:00Z)" in text
    assert "Aprobado electrónicamente por Signer 1, Signer 2" in pdf.pdf_text(
        world.store.read(result.path)
    )


async def test_second_run_returns_the_same_file(world: World) -> None:
    approval_id, _ = await world.approval()
    first = await world.acts.build_signed_pdf(approval_id)
    stored = world.store.path(first.path)
    before = (stored.read_bytes(), stored.stat().st_mtime_ns)

    second = await world.acts.build_signed_pdf(approval_id)

    assert second == first
    assert (stored.read_bytes(), stored.stat().st_mtime_ns) == before
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]


async def test_rebuilds_when_the_recorded_file_is_gone(world: World) -> None:
    approval_id, _ = await world.approval()
    first = await world.acts.build_signed_pdf(approval_id)
    world.store.path(first.path).unlink()

    again = await world.acts.build_signed_pdf(approval_id)

    assert pdf.sha256_hex(world.store.read(again.path)) == again.sha256
    approval = await world.load(approval_id)
    assert (approval.signed_pdf_path, approval.signed_pdf_sha256) == (again.path, again.sha256)


async def test_drawn_signature_is_embedded(world: World) -> None:
    signature = world.store.save("signatures", tiny_png(), ".png")
    plain_id, _ = await world.approval(approvers=[{"name": "No Drawing"}])
    drawn_id, _ = await world.approval(
        approvers=[{"name": "Drew Signer", "signature_image": signature}]
    )
    plain = world.store.read((await world.acts.build_signed_pdf(plain_id)).path)
    drawn = world.store.read((await world.acts.build_signed_pdf(drawn_id)).path)

    certificate_pages = slice(world.original_pages, None)
    last_original = slice(world.original_pages - 1, world.original_pages)
    assert image_count(plain, slice(None)) == 0
    assert image_count(drawn, certificate_pages) >= 1  # on the certificate
    assert image_count(drawn, last_original) >= 1  # in the stamp
    assert "Drawn signature" in pdf.pdf_text(drawn)


async def test_missing_signature_image_is_skipped(world: World) -> None:
    approval_id, _ = await world.approval(
        approvers=[{"name": "Ghost Ink", "signature_image": "signatures/missing.png"}]
    )
    result = await world.acts.build_signed_pdf(approval_id)
    data = world.store.read(result.path)
    assert image_count(data, slice(None)) == 0
    assert "Ghost Ink" in pdf.pdf_text(data)


async def test_uploaded_pdf_replaces_the_original(world: World) -> None:
    uploaded = blank_pdf(3, "Signed elsewhere")
    upload_path = world.store.save("uploads", uploaded, ".pdf")
    approval_id, _ = await world.approval(
        approvers=[
            {"name": "First Approver"},
            {"name": "Paper Signer", "uploaded_pdf": upload_path, "decided_via": "upload"},
        ]
    )
    result = await world.acts.build_signed_pdf(approval_id)
    data = world.store.read(result.path)

    reader = PdfReader(io.BytesIO(data))
    assert result.pages >= 3 + 1
    assert "Signed elsewhere page 1" in (reader.pages[0].extract_text() or "")
    assert "Signed elsewhere page 3" in (reader.pages[2].extract_text() or "")
    text = " ".join(pdf.pdf_text(data).split())
    assert "The document of record is a PDF uploaded by the signer" in text
    assert pdf.sha256_hex(uploaded) in text
    assert world.original_sha not in text
    assert "Uploaded signed PDF" in text


async def test_first_view_falls_back_to_the_audit_trail(world: World) -> None:
    viewed_at = datetime(2024, 5, 1, 14, 33, 7, tzinfo=UTC)
    approval_id, (approver_id,) = await world.approval(approvers=[{"name": "Vera Viewer"}])
    async with world.sessions() as session:
        for key, actor, at in (
            ("viewed-other", f"approver:{approver_id}0:web", viewed_at - timedelta(minutes=5)),
            ("viewed-1", f"approver:{approver_id}:web", viewed_at),
            ("viewed-2", f"approver:{approver_id}:web", viewed_at + timedelta(hours=1)),
        ):
            await append_event(session, approval_id, AuditEventInput(key, at, "viewed", actor, {}))
        await session.commit()

    result = await world.acts.build_signed_pdf(approval_id)
    text = pdf.pdf_text(world.store.read(result.path))
    assert "2024-05-01T14:33:07Z" in text
    assert "2024-05-01T14:28:07Z" not in text


async def test_not_approved_is_rejected(world: World) -> None:
    approval_id, _ = await world.approval(
        status="pending", approvers=[{"status": "pending", "signed_at": None}], completed_at=None
    )
    with pytest.raises(ApplicationError) as caught:
        await world.acts.build_signed_pdf(approval_id)
    assert caught.value.type == "NotApproved"
    assert caught.value.non_retryable
    approval = await world.load(approval_id)
    assert approval.signed_pdf_path is None and approval.signed_pdf_sha256 is None


async def test_unknown_approval_is_not_found(world: World) -> None:
    with pytest.raises(ApplicationError) as caught:
        await world.acts.build_signed_pdf(999_999)
    assert caught.value.type == "NotFound"
    assert caught.value.non_retryable
