"""PDF work on files Portico did not make, in a child process.

Parsing a PDF is CPU-bound and a hostile one can take seconds or gigabytes: on the web event
loop it froze every request. Here each job runs in a fresh child process with a wall-clock
timeout (the child is killed when it passes), a CPU-time limit and a memory ceiling, and at most
a few run at once per process. The caller awaits; the loop stays free.

Each job's process is forked from a small fork server (`python -m portico.pdf_sandbox`, started
once per process) that has imported the PDF and signing libraries and never sees a job: every
job still gets a process of its own, without the ~0.6 s of CPU that starting Python and
importing pyHanko cost (paid once per completed approval, it slowed the next approvals down:
docs/benchmarks.md, "Issue 11: the approve round trip"). The server only forks: the parent hands it
one end of a fresh socket pair per job, and talks to the job's process over it directly.

On that socket the child sends its pid (so the parent can kill it), the parent sends the job
pickled, and the child answers with one length-prefixed message: a JSON line, then the PDF's
bytes (never a pickle: the child has parsed hostile input, the parent does not unpickle its
output). An answer cut short (the child died, hit a limit or was killed) is a refusal.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import math
import os
import pickle
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portico.pades_values import SignRequest, TimestampUnavailable
from portico.pdf_values import DEFAULT_LIMITS, MIB, Certificate, CheckedPdf, InvalidPdf, PdfLimits

if TYPE_CHECKING:  # the fork server starts faster without pydantic
    from portico.settings import Settings

__all__ = [
    "BuiltPdf",
    "PdfBusy",
    "PdfTimeout",
    "build_signed_pdf",
    "check_pdf",
    "limits_for",
    "shut_down",
    "warm_up",
]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = max(1, min(4, os.cpu_count() or 1))
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)
# The worker's jobs (signed PDFs, built after the decision) run at this niceness, in a session of
# their own: on a busy machine they yield the CPU to the requests people are waiting on. (Under
# Linux's autogroup scheduling, a process's niceness only counts within its session; jobs in
# the worker's session were charged to the worker and slowed the next approvals down:
# docs/benchmarks.md, "Issue 11: the approve round trip".) The web's jobs, upload checks someone is
# waiting for, keep the normal priority.
BACKGROUND_NICENESS = 15
PID = struct.Struct("!I")
SIZE = struct.Struct("!Q")


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


async def check_pdf(data: bytes, limits: PdfLimits, timeout: float) -> CheckedPdf:
    """`pdf.check_pdf` in a child process: InvalidPdf (PdfTimeout when it took too long)."""
    head, body = await _run("check", (data, limits), limits, timeout)
    return CheckedPdf(data=body, pages=int(head["pages"]), removed=tuple(head["removed"]))


@dataclass(frozen=True)
class BuiltPdf:
    data: bytes
    pages: int
    certificate_sha256: str
    timestamped: bool
    timestamp_error: str | None


async def build_signed_pdf(
    record: bytes,
    certificate: Certificate,
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
        async with asyncio.timeout(timeout):  # (3.11's wait_for can swallow a cancellation)
            await slots.acquire()
    except TimeoutError as exc:
        raise PdfBusy("Too many PDFs are being checked right now; try again shortly.") from exc
    try:
        return await _run_child(job, args, limits, timeout)
    finally:
        slots.release()


class _ForkServer:
    """The parent's handle on its fork server: launched on first use, relaunched if it died."""

    def __init__(self) -> None:
        self.niceness = 0  # of the server and so of its jobs; set before it starts
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    def submit(self) -> socket.socket:
        """A socket connected to a freshly forked job process (blocking)."""
        with self._lock:
            try:
                return self._fork()
            except OSError:  # the server is gone (killed, or hit a limit): start another
                self._stop()
                return self._fork()

    def ensure_running(self) -> None:
        with self._lock:
            self._ensure_running()

    def close(self) -> None:
        """Stop the server (at exit): it ends when its socket closes; jobs finish on their own."""
        with self._lock:
            self._stop()

    def _fork(self) -> socket.socket:
        control = self._ensure_running()
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(control, [b"job"], [theirs.fileno()])
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        return mine

    def _ensure_running(self) -> socket.socket:
        if self._process is not None and self._control is not None:
            if self._process.poll() is None:
                return self._control
            self._stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "portico.pdf_sandbox", str(theirs.fileno())]
                + [str(self.niceness)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own scheduling group (and no terminal signals)
            )
        finally:
            theirs.close()
        self._control = ours
        atexit.register(self.close)
        if ours.recv(16) != b"ready":  # its libraries are imported
            self._stop()
            raise OSError("the PDF fork server did not start")
        return ours

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # the server exits when it reads the end of its socket
            atexit.unregister(self.close)
        if self._process is not None:
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = self._control = None


_server = _ForkServer()


def warm_up(*, background: bool = False) -> None:
    """Launch the fork server now (blocking, ~0.6 s) rather than on the first job; with
    `background`, its jobs run at BACKGROUND_NICENESS (the worker's: nobody waits on them)."""
    if background:
        _server.niceness = BACKGROUND_NICENESS
    _server.ensure_running()


def shut_down() -> None:
    """Stop the fork server (it is also stopped at exit); the next job starts another."""
    _server.close()


async def _run_child(
    job: str, args: tuple[Any, ...], limits: PdfLimits, timeout: float
) -> tuple[dict[str, Any], bytes]:
    request = pickle.dumps((job, args, _memory_ceiling(limits), math.ceil(timeout) + 1))
    pidfd: int | None = None
    done = False
    sock: socket.socket | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            sock = await _submit()
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            (pid,) = PID.unpack(await reader.readexactly(PID.size))
            pidfd = os.pidfd_open(pid)  # alive: it waits for the job; race-free kill below
            writer.write(SIZE.pack(len(request)) + request)
            await writer.drain()
            out = await _answer(reader, _answer_limit(limits))
            done = True
    except TimeoutError as exc:
        raise PdfTimeout(
            "The PDF took too long to process; it may be damaged or too complex. "
            "Please upload a simpler copy."
        ) from exc
    finally:
        if pidfd is not None:
            if not done:  # timed out, cancelled or cut short: the child must not live on
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        if writer is not None:
            writer.close()
        elif sock is not None:
            sock.close()
    line, _, body = (out or b"").partition(b"\n")
    try:
        head = json.loads(line)
    except ValueError:
        head = None
    if not isinstance(head, dict):
        log.warning("PDF %s job ended without an answer", job)
        raise InvalidPdf("The PDF is too complex to process safely; please upload a simpler copy.")
    if head.get("status") == "timestamp_unavailable":
        raise TimestampUnavailable(str(head.get("message")))
    if head.get("status") != "ok":
        raise InvalidPdf(str(head.get("message") or "The PDF could not be read."))
    return head, body


async def _submit() -> socket.socket:
    """`_server.submit` in a thread; if the caller is cancelled meanwhile, the socket it would
    have had is closed (its job process then ends at once)."""
    future = asyncio.get_running_loop().run_in_executor(None, _server.submit)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_unclaimed)
        raise


def _close_unclaimed(future: asyncio.Future[socket.socket]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


async def _answer(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The child's answer, or None when it died without a whole one (or sent too much)."""
    try:
        (size,) = SIZE.unpack(await reader.readexactly(SIZE.size))
        if size > limit:
            return None
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _answer_limit(limits: PdfLimits) -> int:
    """The largest answer a child may send: the signed copy of the largest document allowed
    (its certificate pages and signature add well under a few MiB)."""
    return 2 * limits.max_bytes + 16 * MIB


# --------------------------------------------------------------------------- in the child


# The jobs import the PDF libraries where they run, not at the top: the processes that import
# this module need none of them; the fork server has them loaded already (_rehearse), so this
# costs a job nothing.


def _check_job(data: bytes, limits: PdfLimits) -> tuple[dict[str, Any], bytes]:
    from portico import pdf  # noqa: PLC0415

    checked = pdf.check_pdf(data, limits)
    return {"pages": checked.pages, "removed": list(checked.removed)}, checked.data


def _build_job(
    record: bytes, certificate: Certificate, signing: SignRequest, limits: PdfLimits
) -> tuple[dict[str, Any], bytes]:
    from portico import pades, pdf  # noqa: PLC0415

    already_signed = tuple(pades.embedded_signatures(record))
    certificate = replace(certificate, embedded_signatures=already_signed)
    data = pdf.build_signed_pdf(record, certificate, limits)
    # A certification signature must be the first one in a document; the visible signature's
    # text is the certificate's.
    appearance = pdf.signature_appearance_text(certificate)
    signing = replace(signing, certify=not already_signed, appearance_text=appearance)
    signed = pades.sign_pdf(data, signing)
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


def _child_main(sock: socket.socket) -> None:
    """In a forked job process: say who we are, take one job, run it under the limits and
    answer with bytes. A parent that gave up (timed out, cancelled) just ends it."""
    try:
        sock.sendall(PID.pack(os.getpid()))
        stream = sock.makefile("rb")
        header = stream.read(SIZE.size)
        if len(header) < SIZE.size:
            return
        (size,) = SIZE.unpack(header)
        request = stream.read(size)
    except OSError:
        return
    if len(request) < size:
        return
    job, args, memory, cpu_seconds = pickle.loads(request)  # from the parent
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
    answer = json.dumps(head).encode() + b"\n" + body
    with contextlib.suppress(OSError):  # the parent stopped waiting
        sock.sendall(SIZE.pack(len(answer)) + answer)


def _reap_jobs(_signum: int, _frame: object) -> None:
    """Collect finished jobs (their CPU time then counts as the server's children's)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _rehearse() -> None:
    """One check, one build and one signature of a made-up document, in the server before any
    job, so the libraries' first-use work (fonts, lazy imports, caches: ~25 ms of CPU) is done
    once instead of in every job. Nothing from outside is read."""
    import io  # noqa: PLC0415 - the server's only
    from datetime import UTC, datetime  # noqa: PLC0415

    from reportlab.pdfgen.canvas import Canvas  # noqa: PLC0415

    from portico import pades, pdf  # noqa: PLC0415 - imported here once, used by every job

    buf = io.BytesIO()
    canvas = Canvas(buf, invariant=1)
    canvas.drawString(72, 720, "Portico")
    canvas.showPage()
    canvas.save()
    now = datetime.now(UTC)
    signer = pdf.CertificateSigner(
        name="Rehearsal", email=None, phone=None, status="approved", channel="web",
        sent_at=now, first_viewed_at=now, decided_at=now, ip=None, user_agent=None,
        signature_name="Rehearsal", signature_png=None, notes=None, consent=True,
    )  # fmt: skip
    certificate = pdf.Certificate(
        approval_id=0, document_kind="contract", document_title="Rehearsal",
        document_number="0", document_sha256="0" * 64, amount="", status="approved",
        completed_at=now, company_name="Portico", signers=[signer],
    )  # fmt: skip
    key = pades.signing_key(pades.new_self_signed_pkcs12("Portico"), None)
    request = SignRequest(key=key)
    _check_job(buf.getvalue(), DEFAULT_LIMITS)
    _build_job(buf.getvalue(), certificate, request, DEFAULT_LIMITS)


def _serve(control_fd: int, niceness: int) -> None:
    """The fork server: import what jobs need, then fork one process per job handed over."""
    try:
        _rehearse()
    except Exception:  # noqa: BLE001 - the jobs then do that work themselves
        traceback.print_exc()

    if niceness:
        os.nice(niceness)
        # Where the kernel groups processes by session, the group's niceness is what counts.
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
            group.write(str(niceness))
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGCHLD, _reap_jobs)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    control.sendall(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 1)
        except OSError:
            return
        if not message:  # the parent is gone
            return
        if not fds:
            continue
        if os.fork() == 0:
            code = 1
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child_main(socket.socket(fileno=fds[0]))
                code = 0
            except BaseException:  # noqa: BLE001 - shown on stderr, then the job is refused
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(fds[0])


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
