"""The signed PDF's digital signature: PAdES with pyHanko (CONTRACT section 15, docs/signing.md).

Portico signs the final file (document of record, stamp, certificate pages) with the business's
certificate: a PAdES baseline signature (`ETSI.CAdES.detached`), as a certification signature
that permits no changes, so any PDF reader can tell the file was not altered since. With a
timestamp authority the signature carries an RFC 3161 timestamp (PAdES B-T).

A document that already carries signatures (a client signed it in Acrobat) cannot take a
certification signature (it must be the first one): it is signed as an approval signature whose
field locks the document (`/Lock` with `/P 1`), in an incremental update that keeps the earlier
signatures valid.

Signing and validation are CPU-bound and synchronous here (pyHanko's asyncio API is run to
completion inside): call them from a thread or the PDF child process, never on the event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import (
    FieldMDPAction,
    FieldMDPSpec,
    MDPPerm,
    SigFieldSpec,
    SigSeedSubFilter,
)
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext

from portico.pades_values import (
    EmbeddedSignature,
    Signed,
    SigningKey,
    SignRequest,
    TimestampUnavailable,
)
from portico.signing_keys import new_self_signed_pkcs12, signing_key

__all__ = [
    "FIELD_NAME",
    "EmbeddedSignature",
    "SignRequest",
    "Signed",
    "SigningKey",
    "TimestampUnavailable",
    "embedded_signatures",
    "new_self_signed_pkcs12",
    "sign_pdf",
    "signature_problems",
    "signing_key",
]

FIELD_NAME = "Portico"
TSA_TIMEOUT_SECONDS = 10
# Where the visible signature sits on the last certificate page: in the bottom margin the
# certificate layout keeps free (activities/pdf.py), above the footer, at the right.
_BOX_WIDTH = 230
_BOX_HEIGHT = 44
_BOX_BOTTOM = 30
_BOX_RIGHT_MARGIN = 51  # 18 mm

# pyHanko logs at length (with tracebacks) why an untrusted or since-changed signature is not
# "trusted"; Portico checks what it relies on itself and reports it in plain words.
_QUIET_LOGGERS = ("pyhanko", "pyhanko_certvalidator")


# --------------------------------------------------------------------------- signing


@contextmanager
def _quiet() -> Iterator[None]:
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in _QUIET_LOGGERS]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def _appearance_box(writer: IncrementalPdfFileWriter) -> tuple[int, int, int, int]:
    page_ref, _ = writer.find_page_for_modification(-1)
    box = page_ref.get_object()["/MediaBox"]
    right = int(float(box[2])) - _BOX_RIGHT_MARGIN
    bottom = int(float(box[1])) + _BOX_BOTTOM
    return (right - _BOX_WIDTH, bottom, right, bottom + _BOX_HEIGHT)


async def _sign(data: bytes, request: SignRequest, tsa_url: str | None) -> bytes:
    signer = signers.SimpleSigner.load_pkcs12_data(
        request.key.pkcs12, [], passphrase=request.key.password
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    field = SigFieldSpec(
        FIELD_NAME,
        on_page=-1,
        box=_appearance_box(writer),
        readable_field_name="Signed by the business (Portico)",
        # An approval signature after the client's own locks the document instead.
        field_mdp_spec=None if request.certify else FieldMDPSpec(FieldMDPAction.ALL),
        doc_mdp_update_value=None if request.certify else MDPPerm.NO_CHANGES,
    )
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        certify=request.certify,
        docmdp_permissions=MDPPerm.NO_CHANGES,
        reason="Certificate of completion",
    )
    pdf_signer = signers.PdfSigner(
        meta,
        signer,
        timestamper=HTTPTimeStamper(tsa_url, timeout=TSA_TIMEOUT_SECONDS) if tsa_url else None,
        stamp_style=TextStampStyle(
            stamp_text=request.appearance_text, timestamp_format="%Y-%m-%d %H:%M:%S UTC"
        ),
        new_field_spec=field,
    )
    out = await pdf_signer.async_sign_pdf(writer)
    return bytes(out.getvalue())


def sign_pdf(data: bytes, request: SignRequest) -> Signed:
    """Sign ``data``; raises TimestampUnavailable when the TSA fails and the timestamp is not
    optional (yet). Signing time and timestamp are in UTC."""
    _off_the_loop()
    error: str | None = None
    with _quiet():
        if request.tsa_url:
            try:
                signed = asyncio.run(_sign(data, request, request.tsa_url))
            except (TimestampRequestError, SigningError, OSError, ValueError) as exc:
                error = f"the timestamp authority failed: {exc}"
                if not request.timestamp_optional:
                    raise TimestampUnavailable(error) from exc
            else:
                return Signed(signed, request.key.certificate_sha256, timestamped=True)
        signed = asyncio.run(_sign(data, request, None))
    return Signed(signed, request.key.certificate_sha256, timestamped=False, timestamp_error=error)


# --------------------------------------------------------------------------- validation


def _off_the_loop() -> None:
    """Refuse to run on an event loop's thread (asyncio.run would fail there, and the CPU work
    would stall the loop): call these functions through asyncio.to_thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("portico.pades works off the event loop: use asyncio.to_thread")


def _fingerprint(certificate: asn1_x509.Certificate) -> str:
    return bytes(certificate.sha256).hex()


async def _statuses(data: bytes) -> list[tuple[str, bool, PdfSignatureStatus]]:
    """(field name, is a certification signature, status) of each signature in ``data``.

    Each signature is checked against its own certificate as the trust root: what matters here
    is integrity and *which* certificate signed, not whether a CA vouches for it."""
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    found = []
    for embedded in reader.embedded_signatures:
        context = ValidationContext(trust_roots=[embedded.signer_cert], allow_fetching=False)
        status = await async_validate_pdf_signature(embedded, signer_validation_context=context)
        found.append((embedded.field_name, _is_certification(embedded.sig_object), status))
    return found


def _is_certification(sig_object: generic.DictionaryObject) -> bool:
    """A certification signature names the DocMDP transform in its /Reference entries."""
    references = sig_object.get("/Reference") or ()
    return any(ref.get_object().get("/TransformMethod") == "/DocMDP" for ref in references)


def embedded_signatures(data: bytes) -> list[EmbeddedSignature]:
    """The digital signatures ``data`` carries (none when it cannot be read as signed)."""
    _off_the_loop()
    try:
        with _quiet():
            statuses = asyncio.run(_statuses(data))
    except Exception:  # pyHanko cannot read it: treat as unsigned, pypdf decides if it is usable
        return []
    found = []
    for field_name, certification, status in statuses:
        timestamp = status.timestamp_validity
        found.append(
            EmbeddedSignature(
                field_name=str(field_name),
                signer=status.signing_cert.subject.human_friendly,
                certificate_sha256=_fingerprint(status.signing_cert),
                signed_at=timestamp.timestamp if timestamp else status.signer_reported_dt,
                timestamped=timestamp is not None,
                intact=bool(status.intact and status.valid),
                covers_whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
                certification=certification,
            )
        )
    return found


def signature_problems(data: bytes, expected_certificate_sha256: str | None) -> list[str]:
    """What is wrong with the Portico signature of a signed PDF; empty when it is intact,
    covers the whole file, permits no later change and was made by the expected certificate."""
    _off_the_loop()
    try:
        with _quiet():
            statuses = asyncio.run(_statuses(data))
    except Exception as exc:
        return [f"the signed PDF's digital signature could not be read: {exc}"]
    ours = [status for name, _, status in statuses if name == FIELD_NAME]
    if not ours:
        return ["the signed PDF carries no Portico digital signature"]
    status = ours[-1]
    problems = []
    if not (status.intact and status.valid):
        problems.append("the signed PDF's digital signature is broken: the file was changed")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        problems.append("the signed PDF's digital signature does not cover the whole file")
    if status.docmdp_ok is False:
        problems.append("the signed PDF was changed after it was digitally signed")
    actual = _fingerprint(status.signing_cert)
    if expected_certificate_sha256 and actual != expected_certificate_sha256:
        problems.append(
            "the signed PDF was signed by another certificate than the one in the audit trail "
            f"({actual})"
        )
    timestamp = status.timestamp_validity
    if timestamp is not None and not (timestamp.intact and timestamp.valid):
        problems.append("the signed PDF's timestamp is broken")
    return problems
