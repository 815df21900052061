"""The message catalogues are complete: every text Portico marks for translation is translated
in every locale (no missing, empty or fuzzy entry, the same placeholders), each catalogue
compiles, and every page and email template renders in every locale."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import ChainableUndefined, Environment, FileSystemLoader

from activities.notify import render_email
from portico import i18n
from web.http.linkify import linkify

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = [code for code in i18n.LOCALES if code != i18n.DEFAULT_LOCALE]
TEMPLATE_DIRS = [ROOT / "web" / "templates", ROOT / "activities" / "templates"]


def extracted() -> set[str | tuple[str, ...]]:
    """What `make messages` extracts from the code now (babel.cfg, keywords _ and N_)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return {m for m in found if m}


def catalogue(locale: str) -> Catalog:
    with (i18n.LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return read_po(fp, locale=locale)


@pytest.fixture(scope="module")
def messages() -> set[str | tuple[str, ...]]:
    return extracted()


def test_the_code_marks_texts_for_translation(messages: set) -> None:
    assert "Full name" in messages and "Approve" in messages
    assert "Reply YES %(code)s to approve or NO %(code)s <reason> to decline." in messages
    assert len(messages) > 200


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_is_translated(locale: str, messages: set) -> None:
    cat = catalogue(locale)
    entries = {m.id if isinstance(m.id, str) else tuple(m.id): m for m in cat if m.id}
    missing = sorted(map(str, messages - entries.keys()))
    assert not missing, f"not in {locale}/messages.po (run `make messages`): {missing}"
    untranslated = [
        str(key)
        for key in messages
        if not (
            entries[key].string
            if isinstance(entries[key].string, str)
            else all(entries[key].string)
        )
    ]
    assert not untranslated, f"empty in {locale}/messages.po: {sorted(untranslated)}"
    fuzzy = [str(key) for key in messages if entries[key].fuzzy]
    assert not fuzzy, f"fuzzy in {locale}/messages.po: {sorted(fuzzy)}"
    problems = [(str(m.id), [str(e) for e in errors]) for m, errors in cat.check()]
    assert not problems, f"placeholders differ in {locale}: {problems}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_catalogues_compile_and_translate(locale: str) -> None:
    compiled = i18n.compile_po(i18n.LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po")
    assert compiled.startswith(b"\xde\x12\x04\x95")  # a GNU .mo file
    with i18n.use(locale):
        assert i18n.gettext("Full name") == {"fr": "Nom complet", "es": "Nombre completo"}[locale]


# What a template iterates over, which an undefined value cannot stand in for.
CONTEXTS: dict[str, dict[str, object]] = {"emails/staff_contact_changed.html": {"changes": {}}}


def template_names() -> list[tuple[Path, str]]:
    return sorted(
        (base, str(path.relative_to(base)))
        for base in TEMPLATE_DIRS
        for path in base.rglob("*.html")
        if not path.name.startswith("_")  # partials: rendered by the templates using them
        and not is_staff(str(path.relative_to(base)))
    )


def is_staff(name: str) -> bool:
    """Staff-facing templates (console, staff emails, dev outbox) stay English for now."""
    return name.startswith(("staff/", "emails/staff_")) or name == "outbox.html"


def lenient_environment(base: Path) -> Environment:
    """The templates' own environment setup (i18n.install), with every variable optional so
    each template renders on its own, without a request behind it."""
    env = Environment(
        loader=FileSystemLoader(base),
        autoescape=True,
        undefined=ChainableUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    i18n.install(env)
    env.filters["linkify"] = linkify  # as web/app.py registers it
    env.globals.update(
        money=lambda *a: "",
        kind_label=lambda *a: "",
        status_label=lambda *a: "",
        current_page=lambda: "/",
        language_switch=True,
    )
    return env


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_client_template_renders_in_every_locale(locale: str) -> None:
    rendered = 0
    for base, name in template_names():
        env = lenient_environment(base)
        with i18n.use(locale):
            if name.startswith("emails/") and name != "emails/base.html":  # parts, as sent
                html = "\n".join(
                    render_email(env, name[len("emails/") : -len(".html")], CONTEXTS.get(name, {}))
                )
            else:
                html = env.get_template(name).render(CONTEXTS.get(name, {}))
        assert "%(" not in html, f"{name} in {locale}: a placeholder was left unfilled"
        rendered += 1
    assert rendered >= 25


def test_signing_page_texts_per_locale() -> None:
    env = lenient_environment(ROOT / "web" / "templates")
    texts = {
        "fr": ["Nom complet", "Notes", "électronique", "Approuver", "Refuser", "Motif"],
        "es": ["Nombre completo", "Notas", "electrónica", "Aprobar", "Rechazar", "Motivo"],
    }
    for locale, words in texts.items():
        with i18n.use(locale):
            html = env.get_template("sign.html").render(link={"can_decide": True})
        assert f'<html lang="{locale}">' in html
        for word in words:
            assert word in html, (locale, word)
        assert "Full name" not in html
