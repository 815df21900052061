"""The signing page's markup for the PDF viewer, the signature pad and the ESIGN disclosure
(browser behaviour is in tests/browser)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.helpers import create_approval, seed_document, token_of
from tests.web.test_signing_page import open_page

STATIC = Path(__file__).parents[2] / "web" / "static"


async def signing_page(stack) -> tuple[str, str]:
    document = await seed_document(stack)
    created = await create_approval(stack, document["id"])
    token = token_of(created["approvers"][0]["sign_url"])
    status, html = await open_page(stack, token)
    assert status == 200
    return token, html


async def test_pdf_viewer_with_fallbacks_and_self_hosted_pdfjs(stack):
    token, html = await signing_page(stack)
    assert f'id="pdf-pages" class="pdf-pages" hidden data-src="/s/{token}/document.pdf"' in html
    assert '<script type="module" src="/static/pdf-viewer.mjs"></script>' in html
    noscript = re.search(r"<noscript>(.*?)</noscript>", html, re.S)
    assert noscript and f'<iframe src="/s/{token}/document.pdf"' in noscript.group(1)
    assert re.search(rf'<a href="/s/{token}/document.pdf"[^>]*>Open the PDF</a>', html)
    for path in (
        "/static/pdf-viewer.mjs",
        "/static/vendor/pdfjs/pdf.min.mjs",
        "/static/vendor/pdfjs/pdf.worker.min.mjs",
    ):
        response = await stack.http.get(path)
        assert response.status == 200, path
        assert response.content_type in ("text/javascript", "application/javascript"), path
    assert "Apache License" in (STATIC / "vendor" / "pdfjs" / "LICENSE").read_text()
    viewer = (STATIC / "pdf-viewer.mjs").read_text()
    assert 'from "./vendor/pdfjs/pdf.min.mjs"' in viewer and "isEvalSupported: false" in viewer


async def test_signature_pad_has_undo_and_clear(stack):
    _, html = await signing_page(stack)
    pad = re.search(r'<canvas id="signature-pad"[^>]*>', html).group(0)
    assert 'role="img"' in pad and 'aria-label="Signature pad"' in pad
    assert ">Undo</button>" in html and ">Clear signature</button>" in html
    assert 'class="pad" hidden id="pad-wrap"' in html  # shown by sign.js; typed name without JS


async def test_esign_disclosure_covers_records_paper_copy_and_withdrawal(stack):
    _, html = await signing_page(stack)
    disclosure = re.search(
        r'<div class="disclosure small" id="esign-disclosure">(.*?)</div>', html, re.S
    )
    assert disclosure, "the disclosure is shown before the consent box"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", disclosure.group(1)))
    assert "Consent to electronic records and signatures" in text
    assert "records that go with it" in text and "electronically" in text
    assert "paper copy" in text and "at no charge" in text
    assert "withdraw your consent" in text and "Acme Builders" in text
    assert "does not undo a signature already given" in text
    assert "open PDF files" in text  # what the client needs
    assert html.index('id="esign-disclosure"') < html.index('id="consent"')
    assert re.search(r'<label for="consent">[^<]*electronic', html)


async def test_csp_allows_only_self_scripts_and_the_worker(stack):
    token, _ = await signing_page(stack)
    response = await stack.http.get(f"/s/{token}")
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'self'"
    assert "unsafe" not in csp  # pdf.js runs with isEvalSupported: false
    assert "worker-src" not in directives  # falls back to script-src 'self'
