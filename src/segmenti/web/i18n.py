"""The dashboard's languages: which one a request gets, its catalog, and its formats.

A request's language is the one its cookie names, if that is a supported language;
else the first supported one of its `Accept-Language` header (Italian for `it`,
`it-IT`, ...); else English. Only values of `LANGUAGES` ever leave this module, so a
language reaching a header, a cookie or a page is always one of them.

Catalogs are gettext `.po` files under `translations/<language>/LC_MESSAGES/`
(`make messages` extracts and updates them; docs/dashboard.md). They are compiled in
memory when first used, so a checkout or a wheel serves both languages with no build
step and no compiled file can lag behind its `.po`. Fuzzy entries are left out, as
`msgfmt` leaves them out: an unreviewed translation shows the English text.

Everything a page shows in a language goes through one `Language` object: gettext,
numbers, dates in the display time zone, country and continent names (Babel's locale
data, not our catalogs).
"""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from babel.messages import mofile, pofile
from babel.support import Translations

HERE = Path(__file__).parent
TRANSLATIONS = HERE / "translations"
DOMAIN = "messages"

LANGUAGES = ("en", "it")
DEFAULT = "en"
NAMES = {"en": "English", "it": "Italiano"}  # each in its own language, for the switcher
COOKIE = "segmenti_language"
COOKIE_DAYS = 365

MAX_ACCEPT_LANGUAGE = 512  # characters of the header read; a longer one is cut there
MAX_LANGUAGE_RANGES = 16
_RANGE = re.compile(r"^([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*$")
_QUALITY = re.compile(r"^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name
    """Marks a message for extraction where it is defined (a module constant, a flash
    message), to be translated where it is shown: `{{ _(name) }}`, `Language.gettext`."""
    return message


def supported(value: str | None) -> str | None:
    """`value` if it names a supported language exactly, else None."""
    return value if value in LANGUAGES else None


def from_accept_language(header: str | None) -> str:
    """The supported language the header prefers most (RFC 9110 quality values; of
    equal ones, the first listed), or the default. `it-IT` and `it` both mean Italian; `*`
    and languages not supported are passed over."""
    if not header:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")[:MAX_LANGUAGE_RANGES]):
        tag, *params = (part.strip() for part in item.split(";"))
        match = _RANGE.match(tag)
        if match is None:
            continue
        quality = 1.0
        for param in params:
            weight = _QUALITY.match(param.replace(" ", "").lower())
            if weight is not None:
                quality = float(weight.group(1))
        language = supported(match.group(1).lower())
        if language is not None and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else DEFAULT


def request_language(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: its cookie's choice, else what its browser prefers."""
    return supported(cookie) or from_accept_language(accept_language)


def compile_catalog(po_file: Path) -> Translations:
    """A `.po` file compiled as `msgfmt` would (fuzzy entries left out), in memory."""
    with po_file.open("rb") as source:
        catalog = pofile.read_po(source, locale=po_file.parent.parent.name)
    compiled = io.BytesIO()
    mofile.write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def catalog_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@dataclass(frozen=True)
class Language:
    """One supported language and what a page shows through it."""

    code: str
    translations: Translations
    locale: Locale
    zone: ZoneInfo

    # -- words --------------------------------------------------------------------
    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.translations.ngettext(singular, plural, count)

    # -- numbers and dates --------------------------------------------------------
    def number(self, value: int | float) -> str:
        """1,234,567 in English, 1.234.567 in Italian."""
        return numbers.format_decimal(value, locale=self.locale)

    def moment(self, value: str | datetime | None) -> str | None:
        """A stored UTC time (the API's "YYYY-MM-DD HH:MM:SS", or a naive UTC datetime)
        in the display time zone, with the zone: `1 dic 2026, 14:05 CET`."""
        if value is None or value == "":
            return None
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        local = when.astimezone(self.zone)
        day = dates.format_date(local, "medium", locale=self.locale)
        time = dates.format_time(local, "short", locale=self.locale)
        shown = str(self.locale.datetime_formats["medium"]).format(time, day)
        # The zone's abbreviation in the tz database (CET, CEST, UTC, EST): the same in
        # every language, where CLDR's names are long or missing for some.
        return f"{shown} {local.tzname()}"

    def day(self, value: date) -> str:
        """A calendar day (no time, no zone): `1 dic 2026`, `Dec 1, 2026`."""
        return dates.format_date(value, "medium", locale=self.locale)

    # -- places -------------------------------------------------------------------
    def country(self, code: str | None) -> str:
        """A country's name in this language (Babel's CLDR data); the code when CLDR
        has no name for it."""
        if not code:
            return "—"
        return str(self.locale.territories.get(code, code))

    def continent(self, code: str) -> str:
        return str(self.locale.territories.get(CONTINENT_TERRITORIES[code], code))

    def countries_sorted(self, codes: Iterable[str]) -> list[tuple[str, str]]:
        """(code, name) pairs in this language's alphabetical order."""
        return sorted(
            ((code, self.country(code)) for code in codes), key=lambda item: sort_key(item[1])
        )


# The CLDR territory codes of the continents a phone number's country is placed on
# (phones.CONTINENTS): UN M49 regions, and Antarctica's own code.
CONTINENT_TERRITORIES = {
    "AF": "002",
    "AN": "AQ",
    "AS": "142",
    "EU": "150",
    "NA": "003",
    "OC": "009",
    "SA": "005",
}


def sort_key(name: str) -> str:
    """A name's place in alphabetical order: case and accents ignored, so "Émirats"
    sorts among the E's (what a collation would do, for the names shown here)."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@functools.cache
def _translations(code: str) -> Translations:
    return compile_catalog(catalog_path(code))


@functools.cache
def language(code: str, zone_name: str) -> Language:
    """The Language object of a supported code, in a display time zone (cached)."""
    if supported(code) is None:
        raise ValueError(f"unsupported language {code!r}")
    return Language(code, _translations(code), Locale.parse(code), ZoneInfo(zone_name))
