"""Cost of the signed PDF's PAdES signature per document (docs/benchmarks.md, "PAdES").

    python -m bench.pades_cost [--pages 1 100] [--runs 5]

For each size, starts the PDF fork server (portico/pdf_sandbox.py) and builds the signed copy in
a job process forked from it, as the worker does (stamp + certificate pages, then the
signature), and then the two steps apart in-process: building, and signing with pyHanko (time
and peak Python allocation). Medians of the runs; each run in a fresh interpreter, so the peak
RSS of the server and its job (ru_maxrss once the server has ended) is that run's own.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime

from reportlab.pdfgen.canvas import Canvas

from portico import pades, pdf, pdf_sandbox
from portico.pdf_safety import DEFAULT_LIMITS


def _document(pages: int) -> bytes:
    buf = io.BytesIO()
    canvas = Canvas(buf, invariant=1)
    for number in range(1, pages + 1):
        for line in range(40):
            canvas.drawString(72, 760 - 16 * line, f"Page {number}, line {line}: lorem ipsum")
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


def _certificate() -> pdf.Certificate:
    signer = pdf.CertificateSigner(
        name="Dana Client", email="dana@example.com", phone=None, status="approved",
        channel="web", sent_at=None, first_viewed_at=None, decided_at=datetime.now(UTC),
        ip="203.0.113.9", user_agent="Mozilla/5.0", signature_name="Dana Client",
        signature_png=None, notes=None, consent=True,
    )  # fmt: skip
    return pdf.Certificate(
        approval_id=1, document_kind="contract", document_title="Bench", document_number="B-1",
        document_sha256="0" * 64, amount="$1.00", status="approved",
        completed_at=datetime.now(UTC), company_name="Acme Builders", signers=[signer],
    )  # fmt: skip


def _one(pages: int) -> None:
    record = _document(pages)
    cert = _certificate()
    key = pades.signing_key(pades.new_self_signed_pkcs12("Acme Builders"), None)
    request = pades.SignRequest(key=key, appearance_text=pdf.signature_appearance_text(cert))
    started = time.perf_counter()
    pdf_sandbox.warm_up()
    server_seconds = time.perf_counter() - started
    started = time.perf_counter()
    built = asyncio.run(pdf_sandbox.build_signed_pdf(record, cert, request, DEFAULT_LIMITS, 120))
    child_seconds = time.perf_counter() - started
    pdf_sandbox.shut_down()  # its reaped job's RSS is then in our children's
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    # The two steps apart, in this process: building, then signing (pyHanko's share).
    started = time.perf_counter()
    unsigned = pdf.build_signed_pdf(record, cert, DEFAULT_LIMITS)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pades.sign_pdf(unsigned, request)  # the first signature in a process loads pyHanko's parts
    first_sign_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pades.sign_pdf(unsigned, request)
    sign_seconds = time.perf_counter() - started
    tracemalloc.start()  # slows what it traces: measured apart
    pades.sign_pdf(unsigned, request)
    sign_peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "server_seconds": server_seconds,
                "child_seconds": child_seconds,
                "child_rss_mib": child_rss,
                "build_seconds": build_seconds,
                "first_sign_seconds": first_sign_seconds,
                "sign_seconds": sign_seconds,
                "sign_peak_mib": sign_peak,
                "kib": len(built.data) / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one", type=int, metavar="PAGES")
    args = parser.parse_args()
    if args.one:
        _one(args.one)
        return
    print(
        "pages  server start  job (build+sign)  peak RSS  build  first sign  sign  "
        "sign peak alloc  size"
    )
    for pages in args.pages:
        command = [sys.executable, "-m", "bench.pades_cost", "--one", str(pages)]
        runs = [
            json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            for _ in range(args.runs)
        ]

        def median(name: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[name] for r in runs)

        print(
            f"{pages:>5}  {median('server_seconds') * 1000:9.0f} ms  "
            f"{median('child_seconds') * 1000:13.0f} ms  "
            f"{max(r['child_rss_mib'] for r in runs):5.1f} MiB  "
            f"{median('build_seconds') * 1000:5.0f} ms "
            f"{median('first_sign_seconds') * 1000:6.0f} ms "
            f"{median('sign_seconds') * 1000:5.0f} ms  "
            f"{median('sign_peak_mib'):10.1f} MiB  {median('kib'):7.0f} KiB"
        )


if __name__ == "__main__":
    main()
