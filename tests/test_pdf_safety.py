"""Hostile PDFs against the limits, the active-content stripping and the child-process runner
(portico/pdf_safety.py, portico/pdf_sandbox.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import time
from dataclasses import replace
from datetime import UTC, datetime

import psutil
import pytest
from pypdf import PdfReader

from portico import pades, pdf, pdf_sandbox
from portico.pdf_safety import DEFAULT_LIMITS, PdfLimits
from tests.support.helpers import sample_pdf
from tests.support.hostile_pdfs import (
    MB,
    active_content,
    many_pages,
    with_active_content,
    zero_bomb,
)


def certificate() -> pdf.Certificate:
    signer = pdf.CertificateSigner(
        name="Dana Client",
        email="dana@client.test",
        phone=None,
        status="approved",
        channel="web",
        sent_at=None,
        first_viewed_at=None,
        decided_at=datetime(2026, 11, 2, tzinfo=UTC),
        ip="203.0.113.9",
        user_agent="pytest",
        signature_name="Dana Client",
        signature_png=None,
        notes=None,
        consent=True,
    )
    return pdf.Certificate(
        approval_id=7,
        document_kind="change_order",
        document_title="Extra outlets",
        document_number="CO-17",
        document_sha256="ab" * 32,
        amount="$1,250.00",
        status="approved",
        completed_at=datetime(2026, 11, 2, tzinfo=UTC),
        company_name="Acme Builders",
        signers=[signer],
    )


def link_targets(data: bytes) -> list[str]:
    """The URI of every link action left on the first page."""
    page = PdfReader(io.BytesIO(data)).pages[0]
    actions = [a.get_object().get("/A") for a in page.get("/Annots", [])]
    return [str(a.get_object()["/URI"]) for a in actions if a is not None]


# --------------------------------------------------------------------------- limits


def test_a_small_file_that_inflates_past_the_budget_is_refused() -> None:
    bomb = zero_bomb(size=70 * MB)
    assert len(bomb) < 200 * 1024  # ~70 KB on the wire
    with pytest.raises(pdf.InvalidPdf, match="expand to more than 50 MB"):
        pdf.check_pdf(bomb, DEFAULT_LIMITS)


def test_the_budget_is_for_all_streams_together() -> None:
    four = zero_bomb(streams=4, size=20 * MB)  # each fits, together 80 MB
    with pytest.raises(pdf.InvalidPdf, match="expand to more than 50 MB"):
        pdf.check_pdf(four, DEFAULT_LIMITS)
    assert pdf.check_pdf(zero_bomb(streams=2, size=20 * MB), DEFAULT_LIMITS).pages == 1


def test_pages_beyond_the_limit_are_refused_even_when_count_lies() -> None:
    assert pdf.check_pdf(many_pages(500), DEFAULT_LIMITS).pages == 500
    with pytest.raises(pdf.InvalidPdf, match="more than 500 pages"):
        pdf.check_pdf(many_pages(501), DEFAULT_LIMITS)
    with pytest.raises(pdf.InvalidPdf, match="more than 500 pages"):
        pdf.check_pdf(many_pages(2000, declared=1), DEFAULT_LIMITS)


def test_a_huge_page_tree_is_refused_by_its_object_count_at_once() -> None:
    huge = many_pages(180_000)  # the 19 MB file that froze the web server for seconds
    started = time.monotonic()
    with pytest.raises(pdf.InvalidPdf, match="more than 100,000 objects"):
        pdf.check_pdf(huge, DEFAULT_LIMITS)
    assert time.monotonic() - started < 2.0
    with pytest.raises(pdf.InvalidPdf, match="more than 1,000 objects"):
        pdf.check_pdf(many_pages(1200), replace(DEFAULT_LIMITS, max_objects=1000))


def test_limits_are_settings() -> None:
    limits = PdfLimits(max_bytes=MB, max_pages=3, max_objects=1000, max_decompressed_bytes=MB)
    with pytest.raises(pdf.InvalidPdf, match="more than 3 pages"):
        pdf.check_pdf(many_pages(4), limits)
    with pytest.raises(pdf.InvalidPdf, match="expand to more than 1 MB"):
        pdf.check_pdf(zero_bomb(size=2 * MB), limits)


# --------------------------------------------------------------------------- active content


def test_active_content_is_stripped_and_the_document_kept() -> None:
    hostile = with_active_content("Scripted change order")
    assert {"/OpenAction", "/JavaScript", "/JS", "/Launch", "/AA", "/EmbeddedFiles"} <= (
        active_content(hostile)
    )
    checked = pdf.check_pdf(hostile, DEFAULT_LIMITS)
    assert active_content(checked.data) == set()
    assert set(checked.removed) >= {"open action", "JavaScript", "actions", "embedded files"}
    assert "Scripted change order" in pdf.pdf_text(checked.data)
    assert link_targets(checked.data) == ["https://example.com/terms"]  # ordinary links stay
    assert checked.pages == 1


def test_a_clean_pdf_is_stored_byte_for_byte() -> None:
    clean = sample_pdf("Plain")
    checked = pdf.check_pdf(clean, DEFAULT_LIMITS)
    assert checked.data == clean and checked.removed == ()


def test_the_signed_copy_carries_no_script_of_the_original() -> None:
    signed = pdf.build_signed_pdf(with_active_content("Scripted"), certificate())
    assert active_content(signed) == set()
    text = pdf.pdf_text(signed)
    assert "Scripted" in text and "Certificate of completion" in text


def test_the_signed_copy_of_an_inflating_page_stays_small() -> None:
    """A 40 MB page of zeros (inside the budget) once became a 40+ MB signed PDF."""
    original = zero_bomb(size=40 * MB)
    signed = pdf.build_signed_pdf(original, certificate())
    assert len(signed) < len(original) + 200 * 1024
    with pytest.raises(pdf.InvalidPdf, match="expand to more than 50 MB"):
        pdf.build_signed_pdf(zero_bomb(streams=4, size=70 * MB), certificate())


# --------------------------------------------------------------------------- child process


async def test_the_check_runs_in_a_child_process_with_the_same_answers() -> None:
    checked = await pdf_sandbox.check_pdf(with_active_content(), DEFAULT_LIMITS, timeout=60)
    assert checked.pages == 1 and active_content(checked.data) == set()
    assert "open action" in checked.removed
    with pytest.raises(pdf.InvalidPdf, match="expand to more than 50 MB"):
        await pdf_sandbox.check_pdf(zero_bomb(), DEFAULT_LIMITS, timeout=60)
    key = pades.signing_key(pades.new_self_signed_pkcs12("Acme"), None)
    built = await pdf_sandbox.build_signed_pdf(
        sample_pdf("In a child"),
        certificate(),
        pades.SignRequest(key=key, appearance_text="Acme"),
        DEFAULT_LIMITS,
        timeout=60,
    )
    assert built.pages == pdf.page_count(built.data) >= 2
    assert "In a child" in pdf.pdf_text(built.data)
    problems = await asyncio.to_thread(pades.signature_problems, built.data, key.certificate_sha256)
    assert problems == []


def fork_servers() -> list[psutil.Process]:
    """This process's PDF fork servers (other tests' children may be exiting meanwhile)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "portico.pdf_sandbox" in " ".join(child.cmdline()):
                found.append(child)
    return found


async def test_a_job_past_its_timeout_is_killed() -> None:
    relaxed = replace(DEFAULT_LIMITS, max_pages=10**6, max_objects=10**6, max_bytes=100 * MB)
    heavy = many_pages(90_000)  # many seconds of parsing
    started = time.monotonic()
    with pytest.raises(pdf_sandbox.PdfTimeout, match="took too long"):
        await pdf_sandbox.check_pdf(heavy, relaxed, timeout=1.0)
    assert time.monotonic() - started < 5.0
    await asyncio.sleep(0)
    servers = fork_servers()
    assert len(servers) == 1  # the fork server the jobs are forked from stays ...
    for _ in range(50):  # ... but the job's process did not live on (the kernel reaps it)
        if not servers[0].children():
            break
        await asyncio.sleep(0.1)
    assert servers[0].children() == []
    checked = await pdf_sandbox.check_pdf(sample_pdf("Next"), DEFAULT_LIMITS, timeout=60)
    assert checked.pages == 1  # and the next job runs as usual


async def test_a_dead_fork_server_is_replaced() -> None:
    await pdf_sandbox.check_pdf(sample_pdf("First"), DEFAULT_LIMITS, timeout=60)
    (server,) = fork_servers()
    server.kill()
    server.wait(5)
    checked = await pdf_sandbox.check_pdf(sample_pdf("After"), DEFAULT_LIMITS, timeout=60)
    assert checked.pages == 1


async def test_a_cancelled_job_leaves_nothing_behind() -> None:
    """An activity or request cancelled mid-job: its process ends, no socket is left open
    (a leaked one would fail this test as an unraisable ResourceWarning)."""
    relaxed = replace(DEFAULT_LIMITS, max_pages=10**6, max_objects=10**6, max_bytes=100 * MB)
    for delay in (0.0, 0.3):  # while the job is handed over, and while it runs
        job = asyncio.create_task(pdf_sandbox.check_pdf(many_pages(90_000), relaxed, timeout=60))
        await asyncio.sleep(delay)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    await asyncio.sleep(0.5)  # a hand-over finishing in its thread closes what it opened
    gc.collect()
    (server,) = fork_servers()
    for _ in range(50):
        if not server.children():
            break
        await asyncio.sleep(0.1)
    assert server.children() == []
