"""The signed PDF's PAdES signature (CONTRACT section 15): what a PDF reader or validator sees."""

from __future__ import annotations

import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import update
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.documents import DocumentActivities
from activities.records import append_event
from portico import pades, pdf
from portico.audit import verify_approval
from portico.models import Approval
from tests.activities.test_documents import World, blank_pdf
from tests.activities.test_documents import world as world  # noqa: F401 (the fixture)
from workflows.types import AuditEventInput, SignedPdfResult

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pyhanko.*")


def _certificate(
    name: str, usage: ExtendedKeyUsageOID | None = None
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=True)
    return key, builder.sign(key, hashes.SHA256())


def _pkcs12(name: str, password: bytes | None) -> tuple[bytes, str]:
    key, cert = _certificate(name)
    protection = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(b"k", key, cert, None, protection)
    return data, cert.fingerprint(hashes.SHA256()).hex()


async def _statuses(data: bytes) -> dict[str, PdfSignatureStatus]:
    """Each signature's status, as pyHanko's validator reports it."""
    found = {}
    for embedded in PdfFileReader(io.BytesIO(data)).embedded_signatures:
        context = ValidationContext(trust_roots=[embedded.signer_cert])
        found[embedded.field_name] = await async_validate_pdf_signature(embedded, context)
    return found


def _shown_text(content: bytes) -> str:
    """The strings a content stream shows with Tj, PDF escapes (\\ddd octal) decoded."""
    shown = re.findall(rb"\(((?:[^\\)]|\\.)*)\) Tj", content)
    decode = partial(re.sub, rb"\\([0-7]{1,3}|.)")
    return "\n".join(
        decode(lambda m: bytes([int(m[1], 8)]) if m[1].isdigit() else m[1], line).decode("latin-1")
        for line in shown
    )


def _flip_one_signed_byte(data: bytes) -> bytes:
    """Change one byte inside the first page's content (well within the signed range)."""
    tampered = bytearray(data)
    at = data.index(b"stream", 200) + 20
    tampered[at] ^= 0x01
    return bytes(tampered)


async def _signed(world: World, acts: DocumentActivities | None = None) -> tuple[int, bytes]:
    approval_id, _ = await world.approval(approvers=[{"name": "Alice Approver"}])
    result = await (acts or world.acts).build_signed_pdf(approval_id)
    return approval_id, world.store.read(result.path)


async def _record_trail(world: World, approval_id: int, result: SignedPdfResult) -> None:
    """The audit events the workflow writes for a completed request."""
    async with world.sessions() as session:
        for seq, (kind, data) in enumerate(
            (
                ("created", {}),
                (
                    "signed_pdf",
                    {
                        "sha256": result.sha256,
                        "pages": result.pages,
                        "certificate_sha256": result.certificate_sha256,
                        "timestamped": result.timestamped,
                    },
                ),
            ),
            start=1,
        ):
            event = AuditEventInput(
                f"approval-{approval_id}:{seq}", datetime.now(UTC), kind, "system", data
            )
            await append_event(session, approval_id, event)
        await session.commit()


async def test_the_signed_pdf_is_certified_and_intact(world: World) -> None:
    approval_id, _ = await world.approval(approvers=[{"name": "Alice Approver"}])
    result = await world.acts.build_signed_pdf(approval_id)
    data = world.store.read(result.path)

    status = (await _statuses(data))[pades.FIELD_NAME]
    assert status.intact and status.valid
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.modification_level == ModificationLevel.NONE
    assert status.docmdp_ok
    embedded = PdfFileReader(io.BytesIO(data)).embedded_signatures[0]
    assert embedded.docmdp_level == MDPPerm.NO_CHANGES  # certification: no changes allowed
    assert embedded.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    # The generated self-signed certificate names the business, and is the one recorded.
    assert "Acme Renovations" in status.signing_cert.subject.human_friendly
    generated = (world.settings.var_dir / "signing.p12").read_bytes()
    assert result.certificate_sha256 == pades.signing_key(generated, None).certificate_sha256
    assert result.certificate_sha256 == bytes(status.signing_cert.sha256).hex()
    assert result.timestamped is False and result.timestamp_error is None
    # Its visible appearance is on the last (certificate) page, naming the business.
    reader = PdfFileReader(io.BytesIO(data))
    last_page = reader.root["/Pages"]["/Kids"][-1].get_object()
    widgets = [a.get_object() for a in last_page.get("/Annots", [])]
    (widget,) = [w for w in widgets if w.get("/T") == pades.FIELD_NAME]
    appearance = _shown_text(widget["/AP"]["/N"].get_object().data)
    assert "Digitally signed by Acme Renovations" in appearance
    assert f"Time: {datetime.now(UTC):%Y-%m-%d}" in appearance
    # The certificate page still carries its evidence, and says the file is signed.
    assert "digitally signed by Acme Renovations" in " ".join(pdf.pdf_text(data).split())

    # Made once: a second worker (or restart) signs with the same certificate.
    again = DocumentActivities(world.settings, world.sessions)
    other_id, _ = await world.approval()
    assert (await again.build_signed_pdf(other_id)).certificate_sha256 == result.certificate_sha256

    await _record_trail(world, approval_id, result)
    assert await verify_approval(world.sessions, world.settings.files_dir, approval_id) == []


async def test_one_flipped_byte_fails_validation_and_audit_verify(world: World) -> None:
    approval_id, _ = await world.approval()
    result = await world.acts.build_signed_pdf(approval_id)
    await _record_trail(world, approval_id, result)
    stored = world.store.path(result.path)
    tampered = _flip_one_signed_byte(stored.read_bytes())
    stored.write_bytes(tampered)
    # Even an attacker who also updates the row's hash is caught by the signature.
    async with world.sessions() as session:
        await session.execute(
            update(Approval)
            .where(Approval.id == approval_id)
            .values(signed_pdf_sha256=pdf.sha256_hex(tampered))
        )
        await session.commit()

    status = (await _statuses(tampered))[pades.FIELD_NAME]
    assert not status.intact
    problems = await verify_approval(world.sessions, world.settings.files_dir, approval_id)
    assert "the signed PDF's digital signature is broken: the file was changed" in problems


def test_a_pdf_signed_by_another_certificate_or_unsigned_is_refused(world: World) -> None:
    ours = pades.signing_key(pades.new_self_signed_pkcs12("Acme Renovations"), None)
    impostor = pades.signing_key(pades.new_self_signed_pkcs12("Acme Renovations"), None)
    document = blank_pdf(1, "Forged")
    forged = pades.sign_pdf(document, pades.SignRequest(key=impostor, appearance_text="x"))

    (problem,) = pades.signature_problems(forged.data, ours.certificate_sha256)
    assert "another certificate" in problem and impostor.certificate_sha256 in problem
    assert pades.signature_problems(document, ours.certificate_sha256) == [
        "the signed PDF carries no Portico digital signature"
    ]


async def test_a_configured_pkcs12_is_used(world: World, tmp_path: Path) -> None:
    archive, fingerprint = _pkcs12("Acme Renovations LLC (CA-issued)", b"s3cret")
    path = tmp_path / "business.p12"
    path.write_bytes(archive)
    settings = world.settings.model_copy(
        update={"signing_cert": path, "signing_cert_password": "s3cret"}
    )
    _, data = await _signed(world, DocumentActivities(settings, world.sessions))

    status = (await _statuses(data))[pades.FIELD_NAME]
    assert bytes(status.signing_cert.sha256).hex() == fingerprint
    assert status.intact and status.valid
    assert not (world.settings.var_dir / "signing.p12").exists()


async def test_a_wrong_certificate_password_fails_and_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    archive, _ = _pkcs12("Acme", b"right")
    path = tmp_path / "business.p12"
    path.write_bytes(archive)
    settings = world.settings.model_copy(
        update={"signing_cert": path, "signing_cert_password": "wrong"}
    )
    approval_id, _ = await world.approval()
    with pytest.raises(ApplicationError) as caught:
        await DocumentActivities(settings, world.sessions).build_signed_pdf(approval_id)
    assert caught.value.type == "SigningKeyUnusable"
    assert (await world.load(approval_id)).signed_pdf_path is None


@pytest.fixture
async def tsa_url() -> AsyncIterator[str]:
    """A local RFC 3161 timestamp authority over HTTP (pyHanko's DummyTimeStamper signs)."""
    key, cert = _certificate("Test TSA", ExtendedKeyUsageOID.TIME_STAMPING)
    stamper = DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
    )

    async def stamp(request: web.Request) -> web.Response:
        query = tsp.TimeStampReq.load(await request.read())
        answer = await stamper.async_request_tsa_response(query)
        return web.Response(body=answer.dump(), content_type="application/timestamp-reply")

    app = web.Application()
    app.router.add_post("/tsa", stamp)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/tsa"))
    finally:
        await server.close()


async def test_a_tsa_timestamps_the_signature(world: World, tsa_url: str) -> None:
    settings = world.settings.model_copy(update={"tsa_url": tsa_url})
    approval_id, _ = await world.approval()
    result = await DocumentActivities(settings, world.sessions).build_signed_pdf(approval_id)
    data = world.store.read(result.path)

    assert result.timestamped and result.timestamp_error is None
    status = (await _statuses(data))[pades.FIELD_NAME]
    assert status.intact and status.valid
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid
    assert abs(status.timestamp_validity.timestamp - datetime.now(UTC)) < timedelta(minutes=5)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


async def test_a_tsa_that_is_down_is_retried_then_signed_without(world: World) -> None:
    settings = world.settings.model_copy(update={"tsa_url": _closed_port_url()})
    acts = DocumentActivities(settings, world.sessions)
    approval_id, _ = await world.approval()
    env = ActivityEnvironment()
    policy = RetryPolicy(maximum_attempts=3)

    env.info = replace(env.info, attempt=1, retry_policy=policy)
    with pytest.raises(ApplicationError) as caught:
        await env.run(acts.build_signed_pdf, approval_id)
    assert caught.value.type == "TimestampUnavailable" and not caught.value.non_retryable
    assert (await world.load(approval_id)).signed_pdf_path is None  # nothing recorded yet

    env.info = replace(env.info, attempt=3, retry_policy=policy)
    result = await env.run(acts.build_signed_pdf, approval_id)
    assert not result.timestamped
    assert result.timestamp_error and "timestamp authority failed" in result.timestamp_error
    status = (await _statuses(world.store.read(result.path)))[pades.FIELD_NAME]
    assert status.intact and status.valid and status.timestamp_validity is None
    # A rerun (the result was lost) still reports the missing timestamp.
    again = await env.run(acts.build_signed_pdf, approval_id)
    assert again.path == result.path and again.timestamp_error


async def _client_signed(document: bytes) -> tuple[bytes, str]:
    archive, fingerprint = _pkcs12("Dana Client", None)
    signer = signers.SimpleSigner.load_pkcs12_data(archive, [], passphrase=None)
    writer = IncrementalPdfFileWriter(io.BytesIO(document))
    out = await signers.PdfSigner(
        signers.PdfSignatureMetadata(
            field_name="ClientSignature", subfilter=SigSeedSubFilter.PADES
        ),
        signer,
        new_field_spec=SigFieldSpec("ClientSignature", on_page=0, box=(72, 72, 272, 122)),
    ).async_sign_pdf(writer)
    return out.getvalue(), fingerprint


async def test_an_uploaded_pre_signed_pdf_keeps_its_signature_valid(world: World) -> None:
    uploaded, client_fingerprint = await _client_signed(blank_pdf(2, "Signed in Acrobat"))
    upload_path = world.store.save("uploads", uploaded, ".pdf")
    approval_id, _ = await world.approval(
        approvers=[{"name": "Dana Client", "uploaded_pdf": upload_path, "decided_via": "upload"}]
    )
    result = await world.acts.build_signed_pdf(approval_id)
    data = world.store.read(result.path)

    assert data.startswith(uploaded)  # an incremental update: the client's bytes are untouched
    statuses = await _statuses(data)
    client = statuses["ClientSignature"]
    assert client.intact and client.valid
    assert bytes(client.signing_cert.sha256).hex() == client_fingerprint
    ours = statuses[pades.FIELD_NAME]
    assert ours.intact and ours.valid
    assert ours.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert ours.modification_level == ModificationLevel.NONE
    # The certificate page shows the client's own signature as evidence.
    text = " ".join(pdf.pdf_text(data).split())
    assert "Digital signatures in the document of record (1)" in text
    assert "Dana Client" in text and client_fingerprint in text
    assert "Integrity: intact" in text

    await _record_trail(world, approval_id, result)
    assert await verify_approval(world.sessions, world.settings.files_dir, approval_id) == []
