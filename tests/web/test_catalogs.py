"""The dashboard's catalogs against its code: every message of the web layer (templates,
views, forms, pages, the builder's script) is in each language's catalog, and in Italian
none is empty or fuzzy and each keeps its placeholders. `make messages` runs this file
after updating the catalogs, so its failures are the translators' to-do list.

The extraction is the one `make messages` does: babel.cfg's mapping, with `N_`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from segmenti.web import i18n, pages

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "segmenti" / "web"
TEMPLATES = WEB / "templates"


def extracted() -> dict[str | tuple[str, ...], list[str]]:
    """Every message of the web layer, with where it is used."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str | tuple[str, ...], list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        WEB, method_map, options_map, keywords={**DEFAULT_KEYWORDS, "N_": None}
    ):
        found.setdefault(message, []).append(f"{filename}:{line}")
    return found


MESSAGES = extracted()


def catalog(language: str) -> Catalog:
    with i18n.catalog_path(language).open("rb") as source:
        return read_po(source, locale=language)


def test_the_extraction_finds_every_part_of_the_web_layer() -> None:
    places = {place.split(":")[0] for places in MESSAGES.values() for place in places}
    assert {"views.py", "pages.py", "queries.py", "messages.py", "static/app.js"} <= places
    assert {f"templates/{p.relative_to(TEMPLATES)}" for p in TEMPLATES.rglob("*.html")} <= places
    assert "Sign in" in MESSAGES and "Segment saved." in MESSAGES
    assert set(pages.SCRIPT_MESSAGE_IDS) <= set(MESSAGES)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_message_is_in_the_catalog(language: str) -> None:
    messages = catalog(language)
    missing = [f"{m!r} ({MESSAGES[m][0]})" for m in MESSAGES if messages.get(m) is None]
    assert not missing, f"missing from {language}'s catalog (run make messages):\n" + "\n".join(
        missing
    )


def test_no_italian_message_is_empty_or_fuzzy_and_placeholders_match() -> None:
    messages = catalog("it")
    assert not messages.fuzzy, "the Italian catalog's header is marked fuzzy"
    problems = []
    for message in messages:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if not all(strings):
            problems.append(f"empty: {message.id!r}")
    # Babel's checks: python-format placeholders the same in msgid and msgstr.
    for message, errors in messages.check():
        problems += [f"{message.id!r}: {error}" for error in errors]
    assert not problems, "\n".join(problems)


def test_a_fuzzy_translation_is_not_served() -> None:
    """As msgfmt does: a fuzzy entry is left out of the compiled catalog."""
    path = i18n.catalog_path("it")
    text = path.read_text()
    fuzzy = text.replace('msgid "Segment saved."', '#, fuzzy\nmsgid "Segment saved."', 1)
    assert fuzzy != text
    copy = Path(__file__).parent / "_fuzzy_probe" / "it" / "LC_MESSAGES" / "messages.po"
    copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        copy.write_text(fuzzy)
        compiled = i18n.compile_catalog(copy)
        assert compiled.gettext("Segment saved.") == "Segment saved."
        assert compiled.gettext("Segment deleted.") == "Segmento eliminato."
    finally:
        copy.unlink()
        for folder in (copy.parent, copy.parent.parent, copy.parent.parent.parent):
            folder.rmdir()


# Text of a template outside `{{ }}` and `{% %}` that may stay as it is: the product's
# name, punctuation, and the placeholders the builder's script replaces.
# A macro's piece of a tag (` aria-invalid="true"`) is markup too.
ALLOWED_TEXT = re.compile(
    r"^[\s\W\d]*((Segmenti|__POSITION__)[\s\W\d]*)?$"
    r"|^(\s*[\w-]+=\"[^\"]*\"?)+\s*$|^[\w-]*\"$"
)
TEXT_ATTRIBUTES = re.compile(r'\b(aria-label|title|placeholder|alt|data-label|label)="([^"{]*)"')


JINJA = re.compile(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


@pytest.mark.parametrize(
    "template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html"))
)
def test_templates_show_no_text_outside_the_catalogs(template: str) -> None:
    """Every word a template shows is in a gettext call: with its `{{ }}`, `{% %}` and
    comments taken out, a template's text between tags, and its text attributes, have
    no words of their own."""
    literal = JINJA.sub("\x00", (TEMPLATES / template).read_text())
    words = [text for _name, text in TEXT_ATTRIBUTES.findall(literal)]
    words += re.sub(r"<[^>]*>|&\w+;", "\x00", literal).split("\x00")
    shown = [text.strip() for text in words if not ALLOWED_TEXT.match(text.strip())]
    assert not shown, f"{template} shows text outside the catalogs: {shown}"
