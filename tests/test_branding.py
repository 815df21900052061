"""Branding settings: validated at start-up, logos per division, readable accent colours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from portico import branding
from portico.branding import Branding, contrast
from portico.settings import Settings
from workflows import messages
from workflows.types import ApprovalInput, ApproverInput, DocumentInfo


def make_settings(**env: str) -> Settings:
    return Settings(PORTICO_VAR_DIR="/nonexistent", **env)


def test_settings_read_and_normalise_the_branding():
    settings = make_settings(
        PORTICO_LOGO_URL="https://cdn.example.test/acme.png",
        PORTICO_ACCENT_COLOR="#0F766E",
        PORTICO_DIVISION_LOGOS=(
            "Roofing=https://cdn.example.test/roof.png, HVAC = https://img.example.test/hvac.png,"
        ),
    )
    assert settings.accent_color == "#0f766e"
    assert settings.division_logos == {
        "roofing": "https://cdn.example.test/roof.png",
        "hvac": "https://img.example.test/hvac.png",
    }
    brand = Branding.from_settings(settings)
    assert brand.logo_for("Roofing") == "https://cdn.example.test/roof.png"
    assert brand.logo_for(" hvac ") == "https://img.example.test/hvac.png"
    assert brand.logo_for("Plumbing") == brand.logo_for(None) == "https://cdn.example.test/acme.png"
    assert brand.image_origins() == ["https://cdn.example.test", "https://img.example.test"]


def test_without_branding_settings_the_company_name_is_shown():
    brand = Branding.from_settings(make_settings())
    assert brand.logo_for("Roofing") is None
    assert brand.accent == branding.DEFAULT_ACCENT
    assert brand.image_origins() == []
    assert "--accent: #1d4ed8;" in brand.css()


@pytest.mark.parametrize("colour", ["#abc", "ABCDEF", "#1d4ed8"])
def test_hex_colours_are_accepted_in_short_and_long_form(colour):
    assert branding.normalize_hex(colour).startswith("#")
    assert len(branding.normalize_hex(colour)) == 7
    assert branding.normalize_hex("#abc") == "#aabbcc"


@pytest.mark.parametrize(
    "env",
    [
        {"PORTICO_ACCENT_COLOR": "blue"},
        {"PORTICO_ACCENT_COLOR": "#12345g"},
        {"PORTICO_ACCENT_COLOR": "#1234; } body { display: none"},
        {"PORTICO_LOGO_URL": "javascript:alert(1)"},
        {"PORTICO_LOGO_URL": 'https://x.test/a.png" onerror="x'},
        {"PORTICO_DIVISION_LOGOS": "Roofing https://x.test/a.png"},
        {"PORTICO_DIVISION_LOGOS": "=https://x.test/a.png"},
        {"PORTICO_DIVISION_LOGOS": "Roofing=ftp://x.test/a.png"},
    ],
)
def test_bad_branding_settings_are_refused_at_start_up(env):
    with pytest.raises(ValidationError):
        make_settings(**env)


@pytest.mark.parametrize(
    "accent", ["#1d4ed8", "#0f766e", "#facc15", "#ffffff", "#000000", "#7dd3fc", "#ef4444"]
)
def test_any_accent_keeps_text_readable(accent):
    brand = Branding(accent=accent)
    # Button text on the accent: the better of white and near-black (AA where either reaches it).
    best = max(contrast(accent, branding.WHITE), contrast(accent, branding.DARK))
    assert contrast(accent, brand.on_accent) >= min(4.5, best)
    # The accent as text on white (links, the company name) is darkened until it reads.
    assert contrast(brand.accent_ink, branding.WHITE) >= 4.5
    assert f"--accent: {accent};" in brand.css()


def test_a_dark_enough_accent_is_used_unchanged():
    assert Branding(accent="#1d4ed8").accent_ink == "#1d4ed8"
    assert Branding(accent="#1d4ed8").on_accent == branding.WHITE
    assert Branding(accent="#facc15").on_accent == branding.DARK


def test_site_paths_become_absolute_for_emails():
    assert branding.absolute("/static/logo.png", "https://portal.test/") == (
        "https://portal.test/static/logo.png"
    )
    assert branding.absolute("https://cdn.test/a.png", "https://portal.test") == (
        "https://cdn.test/a.png"
    )
    assert branding.absolute(None, "https://portal.test") is None


def test_email_context_carries_the_branding():
    inp = ApprovalInput(
        approval_id=7,
        document=DocumentInfo(id=1, kind="estimate", title="Roof", number="E-1"),
        approvers=[ApproverInput(id=1, name="Dana", email="d@x.test")],
        routing="any",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        division="Roofing",
        logo_url="https://cdn.example.test/roof.png",
        accent="#0f766e",
    )
    ctx = messages.email_context(inp, inp.approvers[0])
    assert ctx["logo_url"] == "https://cdn.example.test/roof.png"
    assert ctx["accent"] == "#0f766e" and ctx["division"] == "Roofing"
    old = ApprovalInput(  # histories started before branding decode with the defaults
        approval_id=7, document=inp.document, approvers=[], routing="any", created_at=inp.created_at
    )
    assert messages.email_context(old)["logo_url"] is None
