"""The web and worker processes import no PDF library: the PDF fork server does, once
(portico/pdf_sandbox.py). pyHanko, reportlab and pypdf cost each process ~25 MiB of memory
(docs/benchmarks.md, issue 17 section 4); a module-level import of portico.pdf or
portico.pades from anything the processes load would bring them back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PDF_LIBRARIES = ("pyhanko", "reportlab", "pypdf")


def loaded_after(module: str) -> list[str]:
    code = (
        f"import sys, {module}; print(','.join(m for m in {PDF_LIBRARIES!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_worker_loads_no_pdf_library():
    assert loaded_after("worker") == []


def test_the_web_app_loads_no_pdf_library():
    assert loaded_after("web.app") == []
