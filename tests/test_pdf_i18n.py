"""The signed PDF's certificate pages and stamp, and rendered documents (invoices), in the
client's language (CONTRACT section 10): words, dates, times in their zone, and money."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

from pypdf import PdfReader

from portico.pdf import (
    Certificate,
    CertificateSigner,
    build_signed_pdf,
    render_line_items_pdf,
    sha256_hex,
    signature_appearance_text,
)

LINES = [
    {"description": "Armoires", "quantity": 1, "unit_price_cents": 125000},
    {"description": "Pose", "quantity": "2.5", "unit_price_cents": 1000},
]


def _pages(data: bytes) -> list[str]:
    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(data)).pages]


def _invoice(locale: str, currency: str = "CAD") -> bytes:
    data, total = render_line_items_pdf(
        company_name="Rénovations Acme",
        kind="invoice",
        title="INV-7",
        number="INV-7",
        client_name="Dana Client",
        project_name="Cuisine",
        currency=currency,
        line_items=LINES,
        issued_on=date(2024, 5, 1),
        notes="Merci!",
        locale=locale,
    )
    assert total == 127500
    return data


def _certificate(original: bytes, locale: str) -> Certificate:
    signer = CertificateSigner(
        name="Élise Tremblay",
        email="elise@example.com",
        phone=None,
        status="approved",
        channel="sms",
        sent_at=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        first_viewed_at=None,
        decided_at=datetime(2024, 5, 1, 9, 45, 12, tzinfo=UTC),
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (Test)",
        signature_name="Élise Tremblay",
        signature_png=None,
        notes=None,
        consent=True,
    )
    return Certificate(
        approval_id=42,
        document_kind="change_order",
        document_title="Prises supplémentaires",
        document_number="CO-17",
        document_sha256=sha256_hex(original),
        amount="1 275,00 $",
        status="approved",
        completed_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        company_name="Rénovations Acme",
        signers=[signer],
        locale=locale,
        timezone="America/Toronto",
    )


def test_invoice_pdf_in_french_writes_money_dates_and_labels_for_fr_ca() -> None:
    (page,) = _pages(_invoice("fr"))
    assert "Facture INV-7" in page
    assert "Client : Dana Client" in page and "Projet : Cuisine" in page
    assert "Date : 1 mai 2024" in page
    assert "Description Qté Prix unitaire Montant" in page
    assert "Armoires 1 1 250,00 $ 1 250,00 $" in page
    assert "Pose 2,5 10,00 $ 25,00 $" in page
    assert "Total 1 275,00 $" in page
    for english in ("Invoice", "Unit price", "Amount", "Project", "May"):
        assert english not in page


def test_invoice_pdf_in_english_by_default() -> None:
    (page,) = _pages(_invoice("en", currency="USD"))
    assert "Invoice INV-7" in page and "Date: May 1, 2024" in page
    assert "Description Qty Unit price Amount" in page
    assert "Pose 2.5 $10.00 $25.00" in page and "Total $1,275.00" in page


def test_certificate_page_in_french() -> None:
    original = _invoice("fr")
    pages = _pages(build_signed_pdf(original, _certificate(original, "fr")))
    stamp, certificate = pages[0], " ".join(pages[1:])
    assert "Approuvé électroniquement par Élise Tremblay — 2024-05-01 09:45 UTC" in stamp
    assert "Demande Portico nº 42" in stamp
    assert certificate.startswith("Demande Portico nº 42 — Certificat d’achèvement")
    # times in the client's zone (Toronto, UTC-4 in May), the exact UTC moment beside them
    assert "Terminé le : 1 mai 2024, 06 h 00 EDT (2024-05-01T10:00:00Z)" in certificate
    assert "Décision : 1 mai 2024, 05 h 45 EDT (2024-05-01T09:45:12Z)" in certificate
    assert "Type : Ordre de modification" in certificate
    assert "Statut : Approuvé" in certificate
    assert "Canal : Réponse par texto" in certificate
    assert "Première consultation : —" in certificate
    assert "A consenti à signer électroniquement : oui" in certificate
    assert "Ce fichier est signé numériquement par Rénovations Acme" in certificate
    assert "portico audit verify 42" in certificate
    for english in ("Certificate of completion", "Completed at", "Consented", "Signers"):
        assert english not in certificate


def test_certificate_page_in_spanish() -> None:
    original = _invoice("es")
    pages = _pages(build_signed_pdf(original, _certificate(original, "es")))
    stamp, certificate = pages[0], " ".join(pages[1:])
    assert "Aprobado electrónicamente por Élise Tremblay" in stamp
    assert "Solicitud de Portico n.º 42" in stamp
    assert "Certificado de finalización" in certificate
    assert "Finalizado el: 1 may 2024, 6:00 a.m. EDT (2024-05-01T10:00:00Z)" in certificate
    assert "Enviado: 1 may 2024, 5:00 a.m. EDT (2024-05-01T09:00:00Z)" in certificate
    assert "Tipo: Orden de cambio" in certificate
    assert "Canal: Respuesta por SMS" in certificate
    assert "Aceptó firmar electrónicamente: sí" in certificate
    assert "Firmantes (1)" in certificate and "Página 1" in certificate
    for english in ("Certificate of completion", "Completed at", "Consented", "Signers"):
        assert english not in certificate


def test_visible_signature_text_follows_the_language() -> None:
    original = _invoice("fr")
    fr = signature_appearance_text(_certificate(original, "fr"))
    es = signature_appearance_text(_certificate(original, "es"))
    assert fr == "Signé numériquement par Rénovations Acme\nDemande Portico nº 42\nHeure : %(ts)s"
    assert es == (
        "Firmado digitalmente por Rénovations Acme\nSolicitud de Portico n.º 42\nHora: %(ts)s"
    )
