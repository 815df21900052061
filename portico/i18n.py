"""The client's language (CONTRACT section 10): which locale a person reads, the Babel message
catalogues, and dates and times formatted for that locale in the person's time zone.

The catalogues are `portico/locale/<locale>/LC_MESSAGES/messages.po` (committed) compiled to
`.mo` by `make messages` / the install step; where no up-to-date `.mo` is found (a fresh
clone, a wheel built without one) the `.po` is compiled in memory on first use, so a page is
never shown untranslated. English is the source language: its text *is* the msgid.

The locale and time zone in force are context variables: the web middleware sets them per
request, the notify activities per message (`use`), so concurrent requests never mix them.
Staff-facing text goes through the same catalogues (and stays English for now).
"""

from __future__ import annotations

import contextlib
import gettext as _gettext
import io
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale as BabelLocale
from babel import dates as babel_dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

__all__ = [
    "DEFAULT_LOCALE",
    "LANGUAGE_NAMES",
    "LOCALES",
    "N_",
    "babel_locale",
    "current",
    "current_zone",
    "format_date",
    "format_datetime",
    "gettext",
    "install",
    "negotiate",
    "ngettext",
    "normalize",
    "region",
    "resolve",
    "translations",
    "use",
    "valid_timezone",
]

LOCALES = ("en", "fr", "es")
DEFAULT_LOCALE = "en"
# Each language's own name, for the language switch and the staff console's "Language".
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}
# The regional variant each language is formatted in: North American clients.
REGIONS = {"en": "en_US", "fr": "fr_CA", "es": "es_MX"}
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"

TIMEZONES = frozenset(available_timezones())  # IANA names, from the OS or the tzdata package
_locale: ContextVar[str] = ContextVar("portico_locale", default=DEFAULT_LOCALE)
_zone: ContextVar[str] = ContextVar("portico_timezone", default="UTC")


def N_(message: str) -> str:
    """Marks a constant for extraction; it is translated where it is shown."""
    return message


# What each document kind (CONTRACT section 3) is called; English, translated where shown.
KIND_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "ticket": N_("Ticket"),
        "estimate": N_("Estimate"),
        "change_order": N_("Change order"),
        "purchase_order": N_("Purchase order"),
        "rfi": N_("RFI"),
        "proposal": N_("Proposal"),
        "contract": N_("Contract"),
    }
)


def kind_label(kind: str) -> str:
    """The kind's name in the current locale ('Change order', 'Avenant', 'Orden de cambio')."""
    english = KIND_LABELS.get(kind)
    return gettext(english) if english else kind.replace("_", " ").capitalize()


def normalize(value: str | None) -> str | None:
    """'fr-CA', 'FR', 'fr_CA' -> 'fr'; anything not a supported language -> None."""
    if not value:
        return None
    code = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return code if code in LOCALES else None


def negotiate(accept_language: str | None) -> str | None:
    """The supported language a browser's Accept-Language prefers most (None: none of them)."""
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                continue
        code = normalize(tag)
        if code is not None and quality > 0:
            ranked.append((-quality, n, code))
    return min(ranked)[2] if ranked else None


def resolve(*candidates: str | None, default: str = DEFAULT_LOCALE) -> str:
    """The first supported locale among `candidates` (approver's, client's, ...), else
    `default` (PORTICO_DEFAULT_LOCALE)."""
    for candidate in candidates:
        code = normalize(candidate)
        if code is not None:
            return code
    return normalize(default) or DEFAULT_LOCALE


def valid_timezone(name: str) -> bool:
    """An IANA zone name this machine knows (the `tzdata` package ships them)."""
    return name in TIMEZONES


@cache
def translations(locale: str) -> _gettext.NullTranslations:
    """The catalogue of `locale` (English: none, the msgids are English)."""
    code = normalize(locale) or DEFAULT_LOCALE
    po = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if code == DEFAULT_LOCALE or not po.exists():
        return _gettext.NullTranslations()
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as fp:
            return _gettext.GNUTranslations(fp)
    return _gettext.GNUTranslations(io.BytesIO(compile_po(po)))


def compile_po(po: Path) -> bytes:
    """A `.po` file compiled to `.mo` bytes (fuzzy entries left out, as `pybabel compile`)."""
    with po.open("rb") as fp:
        catalog = read_po(fp)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def current() -> str:
    return _locale.get()


def current_zone() -> ZoneInfo:
    try:
        return ZoneInfo(_zone.get())
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def set_current(locale: str, timezone: str | None = None) -> None:
    """Set the locale (and time zone) for the rest of this task (a web request)."""
    _locale.set(resolve(locale))
    if timezone:
        _zone.set(timezone)


@contextlib.contextmanager
def use(locale: str | None, timezone: str | None = None) -> Iterator[str]:
    """Render in `locale` (and `timezone`) inside the block: one message of an activity."""
    code = resolve(locale)
    token = _locale.set(code)
    zone_token = _zone.set(timezone) if timezone else None
    try:
        yield code
    finally:
        _locale.reset(token)
        if zone_token is not None:
            _zone.reset(zone_token)


def gettext(message: str, **variables: Any) -> str:
    """`message` in the current locale, `%(name)s` placeholders filled from `variables`."""
    text = translations(current()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations(current()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def raw_gettext(message: str) -> str:
    """For Jinja2's newstyle gettext, which fills the placeholders itself."""
    return translations(current()).gettext(message)


def raw_ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


@pass_eval_context
def _template_gettext(eval_ctx: EvalContext, message: str, **variables: Any) -> str:
    """Jinja2's newstyle gettext (escaped placeholders in an autoescaped template), without
    its `pass_context` wrapper: inside a block with `{% set %}` variables that wrapper copied
    the whole template context on every `_()` call (~30 a page, most of a render's time)."""
    text = raw_gettext(message)
    return (Markup(text) if eval_ctx.autoescape else text) % variables


@pass_eval_context
def _template_ngettext(
    eval_ctx: EvalContext, singular: str, plural: str, num: int, **variables: Any
) -> str:
    variables.setdefault("num", num)
    text = raw_ngettext(singular, plural, num)
    return (Markup(text) if eval_ctx.autoescape else text) % variables


def install(env: Any) -> None:
    """Give a Jinja2 environment (with the i18n extension) the current locale's catalogue and
    its formatters: `_()`, `{% trans %}`, `money(cents, currency)`, `when(moment)`, `day(d)`."""
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(raw_gettext, raw_ngettext, newstyle=True)
    env.globals.update(
        _=_template_gettext,
        gettext=_template_gettext,
        ngettext=_template_ngettext,
        current_locale=current,
        language_names=LANGUAGE_NAMES,
        when=format_datetime,
        day=format_date,
    )


def region(locale: str | None = None) -> str:
    """The Babel locale a language is formatted in ('fr' -> 'fr_CA'); default the current one."""
    return REGIONS[resolve(locale or current())]


def babel_locale(locale: str | None = None) -> BabelLocale:
    return BabelLocale.parse(region(locale))


def _local(moment: datetime, zone: ZoneInfo | str | None) -> datetime:
    tz = ZoneInfo(zone) if isinstance(zone, str) else (zone or current_zone())
    return moment.astimezone(tz)


def format_datetime(
    moment: datetime | str | None,
    locale: str | None = None,
    zone: ZoneInfo | str | None = None,
) -> str:
    """A moment as a person reads it: their locale, their time zone (zone named at the end)."""
    if not moment:
        return ""
    if isinstance(moment, str):  # as workflows put it in a message's context (ISO 8601)
        moment = datetime.fromisoformat(moment)
    local = _local(moment, zone)
    loc = babel_locale(locale)
    day = babel_dates.format_date(local.date(), "medium", locale=loc)
    time = babel_dates.format_time(local, "short", locale=loc)
    return f"{day}, {time} {local.tzname() or ''}".strip()


def format_date(value: date | datetime | None, locale: str | None = None) -> str:
    """A calendar day ('Mar 5, 2026', '5 mars 2026', '5 mar 2026')."""
    if not value:
        return ""
    if isinstance(value, datetime):
        value = _local(value, None).date()
    return babel_dates.format_date(value, "medium", locale=babel_locale(locale))
