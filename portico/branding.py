"""Branding of the client-facing pages and emails: logo (per division), accent colour.

Settings (docs/signing.md): `PORTICO_LOGO_URL`, `PORTICO_ACCENT_COLOR` (hex) and
`PORTICO_DIVISION_LOGOS` ("Roofing=https://…/roof.png,HVAC=https://…/hvac.png").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_ACCENT = "#1d4ed8"
WHITE = "#ffffff"
DARK = "#111827"
MIN_CONTRAST = 4.5  # WCAG AA for normal text

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_URL = re.compile(r"^(https?://[^\s\"'<>()\\]+|/[^\s\"'<>()\\]*)$")


def normalize_hex(value: str) -> str:
    """'#1D4ED8', '1d4ed8' or '#14d' → '#1d4ed8'; anything else raises ValueError."""
    match = _HEX.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a hex colour like #1d4ed8")
    digits = match.group(1).lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def check_logo_url(value: str) -> str:
    """An http(s) URL or a path on this site (e.g. /static/logo.png)."""
    value = value.strip()
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL or a /path")
    return value


def parse_division_logos(value: str) -> dict[str, str]:
    """'Roofing=https://…/roof.png,HVAC=https://…/hvac.png' → {'roofing': url, 'hvac': url}."""
    logos: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        name, sep, url = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part.strip()!r} is not Division=URL")
        logos[name.strip().casefold()] = check_logo_url(url)
    return logos


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two '#rrggbb' colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix_black(colour: str, amount: float) -> str:
    channels = [round(int(colour[i : i + 2], 16) * (1 - amount)) for i in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in channels)


def readable_on(colour: str) -> str:
    """White or near-black, whichever reads better on `colour` (button text)."""
    return WHITE if contrast(colour, WHITE) >= min(MIN_CONTRAST, contrast(colour, DARK)) else DARK


def ink_on_white(colour: str) -> str:
    """`colour`, darkened just enough to be readable as text on white (links, the brand)."""
    step = 0
    ink = colour
    while contrast(ink, WHITE) < MIN_CONTRAST and step < 20:
        step += 1
        ink = _mix_black(colour, step * 0.05)
    return ink


def absolute(url: str | None, public_url: str) -> str | None:
    """A site path made absolute under PORTICO_PUBLIC_URL (emails need full URLs)."""
    if url and url.startswith("/"):
        return public_url.rstrip("/") + url
    return url


@dataclass(frozen=True)
class Branding:
    """What the pages and emails show; built once from the settings."""

    company_name: str = "Portico"
    logo_url: str | None = None
    accent: str = DEFAULT_ACCENT
    division_logos: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: object) -> Branding:
        return cls(
            company_name=getattr(settings, "company_name", "Portico"),
            logo_url=getattr(settings, "logo_url", None),
            accent=getattr(settings, "accent_color", None) or DEFAULT_ACCENT,
            division_logos=dict(getattr(settings, "division_logos", {}) or {}),
        )

    def logo_for(self, division: str | None) -> str | None:
        """The division's logo when it has one, else the default logo (None: show the name)."""
        if division and division.strip().casefold() in self.division_logos:
            return self.division_logos[division.strip().casefold()]
        return self.logo_url

    @property
    def on_accent(self) -> str:
        return readable_on(self.accent)

    @property
    def accent_ink(self) -> str:
        return ink_on_white(self.accent)

    def css(self) -> str:
        """The stylesheet served at /brand.css (custom properties only; no inline styles)."""
        return (
            ":root {\n"
            f"  --accent: {self.accent};\n"
            f"  --on-accent: {self.on_accent};\n"
            f"  --accent-ink: {self.accent_ink};\n"
            "}\n"
        )

    def image_origins(self) -> list[str]:
        """Origins the logos load from, for the pages' Content-Security-Policy img-src."""
        origins: list[str] = []
        for url in [self.logo_url, *self.division_logos.values()]:
            if url and not url.startswith("/"):
                parts = urlsplit(url)
                origin = f"{parts.scheme}://{parts.netloc}"
                if origin not in origins:
                    origins.append(origin)
        return origins
