"""The business's signing key for the signed PDF's digital signature (portico/pades.py):
made once (self-signed) or read from PORTICO_SIGNING_CERT. With `cryptography` only, so the
worker reads the key without loading pyHanko; the signing happens in the PDF fork server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from portico.pades_values import SigningKey

_SELF_SIGNED_YEARS = 10


def new_self_signed_pkcs12(company_name: str, now: datetime | None = None) -> bytes:
    """A fresh ECDSA P-256 key and a self-signed certificate for ``company_name`` (PKCS#12,
    without a password: the file is created mode 0600, like var/secret.key)."""
    now = now or datetime.now(UTC)
    name = (company_name or "Portico").strip()[:64] or "Portico"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * _SELF_SIGNED_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return pkcs12.serialize_key_and_certificates(
        b"Portico signing key", key, certificate, None, serialization.NoEncryption()
    )


def signing_key(pkcs12_data: bytes, password: bytes | None) -> SigningKey:
    """Read a PKCS#12 archive; ValueError if it has no key and certificate or the password is
    wrong."""
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(pkcs12_data, password)
    except ValueError as exc:
        raise ValueError(f"the signing certificate could not be read: {exc}") from exc
    if key is None or certificate is None:
        raise ValueError("the signing certificate file holds no private key and certificate")
    return SigningKey(
        pkcs12=pkcs12_data,
        password=password,
        certificate_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        subject=certificate.subject.rfc4514_string(),
        self_signed=certificate.issuer == certificate.subject,
    )
