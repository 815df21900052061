"""PDF work on files Portico did not make, in a child process.

Parsing a PDF is CPU-bound and a hostile one can take seconds or gigabytes: on the web event
loop it froze every request. Here each job runs in a fresh `python -m portico.pdf_sandbox`
with a wall-clock timeout (the child is killed when it passes), a CPU-time limit and a memory
ceiling, and at most a few run at once per process. The caller awaits; the loop stays free.

The parent sends the job pickled on stdin; the child answers one JSON line, then the PDF's bytes
(never a pickle: the child has parsed hostile input, the parent does not unpickle its output).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import pickle
import resource
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portico import pdf
from portico.pades_values import SignRequest, TimestampUnavailable
from portico.pdf_safety import MIB, InvalidPdf, PdfLimits

if TYPE_CHECKING:  # the child process starts faster without pydantic
    from portico.settings import Settings

__all__ = [
    "BuiltPdf",
    "PdfBusy",
    "PdfTimeout",
    "build_signed_pdf",
    "check_pdf",
    "limits_for",
]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = max(1, min(4, os.cpu_count() or 1))
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


class PdfTimeout(InvalidPdf):
    """The job did not finish in time (the file is too complex, or the machine too busy)."""


class PdfBusy(Exception):
    """Every slot stayed taken for the whole timeout; nothing was checked."""


def limits_for(settings: Settings) -> PdfLimits:
    return PdfLimits(
        max_bytes=settings.max_upload_bytes,
        max_pages=settings.pdf_max_pages,
        max_objects=settings.pdf_max_objects,
        max_decompressed_bytes=settings.pdf_max_decompressed_bytes,
    )


async def check_pdf(data: bytes, limits: PdfLimits, timeout: float) -> pdf.CheckedPdf:
    """`pdf.check_pdf` in a child process: InvalidPdf (PdfTimeout when it took too long)."""
    head, body = await _run("check", (data, limits), limits, timeout)
    return pdf.CheckedPdf(data=body, pages=int(head["pages"]), removed=tuple(head["removed"]))


@dataclass(frozen=True)
class BuiltPdf:
    data: bytes
    pages: int
    certificate_sha256: str
    timestamped: bool
    timestamp_error: str | None


async def build_signed_pdf(
    record: bytes,
    certificate: pdf.Certificate,
    signing: SignRequest,
    limits: PdfLimits,
    timeout: float,
) -> BuiltPdf:
    """`pdf.build_signed_pdf` then `pades.sign_pdf` in a child process.

    The digital signatures the record already carries are shown on its certificate page (and
    kept valid). Raises TimestampUnavailable when the TSA failed and the timestamp is
    not optional."""
    head, body = await _run("build", (record, certificate, signing, limits), limits, timeout)
    return BuiltPdf(
        data=body,
        pages=int(head["pages"]),
        certificate_sha256=str(head["certificate_sha256"]),
        timestamped=bool(head["timestamped"]),
        timestamp_error=head.get("timestamp_error"),
    )


def _slots_here() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(CONCURRENCY)
    return slots


def _memory_ceiling(limits: PdfLimits) -> int:
    """Address space for the child: the interpreter and its libraries, plus room for a few
    copies of the largest inflated contents the limits allow."""
    return 768 * MIB + 6 * limits.max_decompressed_bytes + 3 * limits.max_bytes


async def _run(
    job: str, args: tuple[Any, ...], limits: PdfLimits, timeout: float
) -> tuple[dict[str, Any], bytes]:
    slots = _slots_here()
    try:
        await asyncio.wait_for(slots.acquire(), timeout)
    except TimeoutError as exc:
        raise PdfBusy("Too many PDFs are being checked right now; try again shortly.") from exc
    try:
        return await _run_child(job, args, limits, timeout)
    finally:
        slots.release()


async def _run_child(
    job: str, args: tuple[Any, ...], limits: PdfLimits, timeout: float
) -> tuple[dict[str, Any], bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    request = pickle.dumps((job, args, _memory_ceiling(limits), math.ceil(timeout) + 1))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portico.pdf_sandbox",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(request), timeout)
    except TimeoutError as exc:
        raise PdfTimeout(
            "The PDF took too long to process; it may be damaged or too complex. "
            "Please upload a simpler copy."
        ) from exc
    finally:
        if proc.returncode is None:  # timed out or cancelled: the child must not live on
            proc.kill()
            await proc.wait()
    line, _, body = out.partition(b"\n")
    try:
        head = json.loads(line)
    except ValueError:
        head = None
    if proc.returncode != 0 or not isinstance(head, dict):
        log.warning(
            "PDF %s job ended with code %s: %s", job, proc.returncode, err[-2000:].decode("replace")
        )
        raise InvalidPdf("The PDF is too complex to process safely; please upload a simpler copy.")
    if head.get("status") == "timestamp_unavailable":
        raise TimestampUnavailable(str(head.get("message")))
    if head.get("status") != "ok":
        raise InvalidPdf(str(head.get("message") or "The PDF could not be read."))
    return head, body


# --------------------------------------------------------------------------- in the child


def _check_job(data: bytes, limits: PdfLimits) -> tuple[dict[str, Any], bytes]:
    checked = pdf.check_pdf(data, limits)
    return {"pages": checked.pages, "removed": list(checked.removed)}, checked.data


def _build_job(
    record: bytes, certificate: pdf.Certificate, signing: SignRequest, limits: PdfLimits
) -> tuple[dict[str, Any], bytes]:
    # Imported by the one job that signs: the upload check starts ~0.5 s faster without pyHanko.
    from portico import pades  # noqa: PLC0415

    already_signed = tuple(pades.embedded_signatures(record))
    certificate = replace(certificate, embedded_signatures=already_signed)
    data = pdf.build_signed_pdf(record, certificate, limits)
    # A certification signature must be the first one in a document.
    signed = pades.sign_pdf(data, replace(signing, certify=not already_signed))
    head = {
        "pages": pdf.page_count(signed.data),
        "certificate_sha256": signed.certificate_sha256,
        "timestamped": signed.timestamped,
        "timestamp_error": signed.timestamp_error,
    }
    return head, signed.data


JOBS: dict[str, Callable[..., tuple[dict[str, Any], bytes]]] = {
    "check": _check_job,
    "build": _build_job,
}


def _child_main() -> None:
    job, args, memory, cpu_seconds = pickle.load(sys.stdin.buffer)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        head, body = JOBS[job](*args)
        head["status"] = "ok"
    except InvalidPdf as exc:
        head, body = {"status": "invalid", "message": str(exc)}, b""
    except TimestampUnavailable as exc:
        head, body = {"status": "timestamp_unavailable", "message": str(exc)}, b""
    except MemoryError:
        head = {"status": "invalid", "message": "The PDF is too large to process safely."}
        body = b""
    sys.stdout.buffer.write(json.dumps(head).encode() + b"\n" + body)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _child_main()
