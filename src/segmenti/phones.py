"""Phone numbers: normalization to E.164, country and continent of a number.

`normalize_phone` is on the hot path of contact imports and bulk segments (100,000 numbers
per request), so it does not call `phonenumbers.parse`. It reproduces, for the one input shape
it accepts ("+" and ASCII digits), what `parse` + `is_valid_number` + `region_code_for_number`
compute, from the same `phonenumbers` metadata but with regular expressions compiled once per
calling code. `normalize_phone_slow` is the plain library version; the test-suite checks that
both agree on a large corpus, which is what keeps the fast path honest when `phonenumbers` is
upgraded (its metadata changes every release; the algorithm replicated here rarely does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import phonenumbers
import pycountry
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberFormat
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

__all__ = [
    "CONTINENTS",
    "CONTINENT_BY_COUNTRY",
    "InvalidPhone",
    "PhoneInfo",
    "continent_for_country",
    "country_name",
    "is_country",
    "normalize_phone",
    "normalize_phone_slow",
]

CONTINENTS: Final[frozenset[str]] = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})

# Every ISO 3166-1 alpha-2 code, by continent. Transcontinental countries go where they are
# conventionally counted (the GeoNames / MaxMind convention, which GeoIP data also uses, with
# the one departure noted at TL); the disputed choices are commented. Dependencies go with
# their geography, not their sovereign.
_COUNTRIES_BY_CONTINENT: Final[dict[str, str]] = {
    "AF": (
        # EG: Sinai is in Asia, but the country is counted in Africa.
        "DZ EG EH LY MA SD TN "
        # SH includes Ascension and Tristan da Cunha (phonenumbers' AC and TA, see below).
        "BF BJ CI CV GH GM GN GW LR ML MR NE NG SH SL SN TG "
        "AO CD CF CG CM GA GQ ST TD "
        # Indian Ocean islands (RE, YT: French overseas departments) stay with Africa.
        "BI DJ ER ET KE KM MG MU MW MZ RE RW SC SO SS TZ UG YT ZM ZW "
        "BW LS NA SZ ZA"
    ),
    # Sub-Antarctic islands without a permanent population count as Antarctica.
    "AN": "AQ BV GS HM TF",
    "AS": (
        # TR: mostly in Asia. GE, AM, AZ: Caucasus, counted in Asia. CY is in Europe below.
        "AE AM AZ BH GE IL IQ JO KW LB OM PS QA SA SY TR YE "
        # KZ: mostly in Asia, although it shares +7 with RU.
        "KG KZ TJ TM UZ "
        # IO (Chagos, Indian Ocean) counts as Asia.
        "AF BD BT IN IO IR LK MV NP PK "
        "CN HK JP KP KR MN MO TW "
        # TL is counted in Asia (UN M49), not Oceania. CC and CX: Australian territories in
        # the Indian Ocean, counted in Asia.
        "BN CC CX ID KH LA MM MY PH SG TH TL VN"
    ),
    "EU": (
        # AX, FO, SJ: Nordic territories; GG, IM, JE: Crown dependencies.
        "AX DK EE FI FO GB GG IE IM IS JE LT LV NO SE SJ "
        "AT BE CH DE FR LI LU MC NL "
        # CY: geographically in Asia, but an EU member state and conventionally Europe.
        "AD AL BA CY ES GI GR HR IT ME MK MT PT RS SI SM VA "
        # RU: transcontinental; most of its population is in Europe.
        "BG BY CZ HU MD PL RO RU SK UA"
    ),
    "NA": (
        # GL: geographically North America, although part of the Kingdom of Denmark.
        "BM CA GL PM US "
        # Central America, including PA, counts as North America.
        "BZ CR GT HN MX NI PA SV "
        # The Caribbean counts as North America, including AW, BQ, CW and TT off the South
        # American coast.
        "AG AI AW BB BL BQ BS CU CW DM DO GD GP HT JM KN KY LC MF MQ MS PR SX TC TT VC VG VI"
    ),
    "OC": (
        # AS, GU, MP, UM: US territories in the Pacific.
        "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS"
    ),
    # FK and GF: South American geography, whatever their sovereign.
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}

# Regions phonenumbers knows that are not ISO 3166-1 codes. Kosovo has no ISO code; "XK" is
# the user-assigned code that libphonenumber, the EU and most registries use, so it is kept
# (with its continent) instead of dropping the country of every Kosovo number.
_EXTRA_CONTINENTS: Final[dict[str, str]] = {"XK": "EU"}
_EXTRA_NAMES: Final[dict[str, str]] = {"XK": "Kosovo"}

# Ascension (+247, "AC") and Tristan da Cunha (part of +290, "TA") are ISO 3166-1 territory of
# "SH" (Saint Helena, Ascension and Tristan da Cunha); reporting SH keeps country_code ISO and
# lets country filters find them.
_COUNTRY_FOR_REGION: Final[dict[str, str]] = {"AC": "SH", "TA": "SH"}

CONTINENT_BY_COUNTRY: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{
            code: continent
            for continent, codes in _COUNTRIES_BY_CONTINENT.items()
            for code in codes.split()
        },
        **_EXTRA_CONTINENTS,
    }
)

_ISO_COUNTRIES: Final[dict[str, str]] = {
    country.alpha_2: getattr(country, "common_name", None) or country.name
    for country in pycountry.countries
}


def continent_for_country(country_code: str | None) -> str | None:
    """Continent code of a country code (any case), or None when unknown or absent."""
    if not country_code:
        return None
    return CONTINENT_BY_COUNTRY.get(country_code.upper())


def is_country(code: str) -> bool:
    """Whether `code` is a country a contact can have: an upper-case ISO 3166-1 alpha-2
    code known to pycountry, or XK (Kosovo), which libphonenumber assigns to +383 numbers
    and which must therefore be selectable in filters_countries."""
    return code in CONTINENT_BY_COUNTRY


def country_name(code: str) -> str:
    """Display name of a country code; an unknown code is shown as itself."""
    # The dashboard renders whatever a contact carries, so an odd code must not break a page.
    return _ISO_COUNTRIES.get(code) or _EXTRA_NAMES.get(code) or code


class InvalidPhone(ValueError):
    """A phone number that cannot be normalized; `reason` is short and meant for humans."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    e164: str
    country_code: str | None
    continent_code: str | None


MAX_CLEANED_LENGTH: Final = 32

_REASON_INVALID: Final = "not a valid phone number"
_REASON_COUNTRY_CODE: Final = "unknown country code"

# What people put between digits: all Unicode whitespace (tabs, NBSP, thin spaces), dots,
# ASCII and typographic dashes, round brackets, and invisible characters that copy-paste and
# spreadsheets leave behind (zero-width spaces, BOM), which a user could never see to remove.
_SEPARATORS: Final = re.compile("[\\s.()\\-\u2010-\u2015\u2212\u200b-\u200d\u2060\ufeff]+")


def _digits_after_plus(raw: str) -> str:
    """The digits after the international prefix, or InvalidPhone for anything that is not a
    phone number written with its country code."""
    if not isinstance(raw, str):
        raise InvalidPhone("not a string")
    # Already E.164 is the common case (API clients, exports); skip the regex for it.
    if raw[:1] == "+" and len(raw) <= MAX_CLEANED_LENGTH:
        digits = raw[1:]
        if digits.isascii() and digits.isdigit():
            return digits
    cleaned = _SEPARATORS.sub("", raw)
    if not cleaned:
        raise InvalidPhone("empty phone number")
    if len(cleaned) > MAX_CLEANED_LENGTH:
        raise InvalidPhone("too long for a phone number")
    # isdigit() alone would let through other scripts' digits and superscripts.
    body = cleaned[1:] if cleaned[0] == "+" else cleaned
    if not (body.isascii() and body.isdigit()):
        if "+" in body and body.replace("+", "").isascii() and body.replace("+", "").isdigit():
            raise InvalidPhone("+ is only allowed at the start")
        if body:
            raise InvalidPhone("only digits, spaces, dots, dashes and brackets are allowed")
        raise InvalidPhone(_REASON_INVALID)
    if cleaned[0] == "+":
        return body
    if cleaned.startswith("00"):
        return cleaned[2:]
    raise InvalidPhone("missing country code: start with + or 00")


def _info_for(e164: str, region: str | None) -> PhoneInfo:
    if region is None or len(region) != 2 or region == "ZZ":
        return PhoneInfo(e164, None, None)
    country = _COUNTRY_FOR_REGION.get(region, region)
    return PhoneInfo(e164, country, CONTINENT_BY_COUNTRY.get(country))


def normalize_phone(raw: str) -> PhoneInfo:
    """Normalize a phone number as typed (`+39 333 123.45-67`, `0039 3331234567`) to E.164
    with its country and continent. Raises InvalidPhone, and nothing else, for any string."""
    digits = _digits_after_plus(raw)
    return _info_fast(digits)


def normalize_phone_slow(raw: str) -> PhoneInfo:
    """Same contract as `normalize_phone`, validated by `phonenumbers.parse`: the reference
    implementation the fast path is tested and benchmarked against."""
    digits = _digits_after_plus(raw)
    return _info_slow(digits)


def _info_slow(digits: str) -> PhoneInfo:
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhone(_REASON_COUNTRY_CODE) from None
        raise InvalidPhone(_REASON_INVALID) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(_REASON_INVALID)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return _info_for(e164, phonenumbers.region_code_for_number(number))


# --- Fast path -------------------------------------------------------------------------------
#
# Mirrors phonenumberutil.parse (for "+digits" with no default region), is_valid_number and
# region_code_for_number of the pinned phonenumbers version; the function names in comments
# point at the code being mirrored. The library compiles metadata patterns through the `re`
# module cache, which holds 512 patterns while the metadata has thousands, so for a mix of
# countries it recompiles most of them on every call; here each pattern is compiled once.

_MIN_LENGTH_FOR_NSN: Final = 2  # phonenumberutil._MIN_LENGTH_FOR_NSN
_MAX_LENGTH_FOR_NSN: Final = 17  # phonenumberutil._MAX_LENGTH_FOR_NSN
_NON_GEO_REGION: Final = "001"  # phonenumberutil.REGION_CODE_FOR_NON_GEO_ENTITY

_COUNTRY_CODE_PREFIXES: Final[frozenset[str]] = frozenset(
    str(code) for code in COUNTRY_CODE_TO_REGION_CODE
)


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    # An absent or empty pattern never matches (phonenumberutil._match_national_number).
    return re.compile(pattern) if pattern else None


class _Validator:
    """Whether `_number_type_helper(nsn, metadata) != UNKNOWN`, for one region's metadata.

    That is: the number matches the general description and at least one number type. The
    types that accept a given length are joined into one alternation, so a check costs two
    regex matches however many types the region has."""

    __slots__ = ("_by_length", "_general", "_general_lengths", "_types")

    def __init__(self, metadata: PhoneMetadata) -> None:
        general = metadata.general_desc
        self._general = _compile(general.national_number_pattern if general else None)
        self._general_lengths = tuple(general.possible_length) if general else ()
        descs: list[PhoneNumberDesc | None] = [
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
            metadata.fixed_line,
        ]
        # With identical patterns the library never tries mobile after fixed line failed.
        if not metadata.same_mobile_and_fixed_line_pattern:
            descs.append(metadata.mobile)
        self._types: tuple[tuple[tuple[int, ...], str], ...] = tuple(
            (tuple(desc.possible_length), desc.national_number_pattern)
            for desc in descs
            if desc is not None and desc.national_number_pattern
        )
        self._by_length: dict[int, tuple[re.Pattern[str], re.Pattern[str]] | None] = {}

    def _for_length(self, length: int) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
        # _is_number_matching_desc: empty possible_length means "as the general desc".
        if self._general is None or (self._general_lengths and length not in self._general_lengths):
            return None
        patterns = [pattern for lengths, pattern in self._types if not lengths or length in lengths]
        if not patterns:
            return None
        # fullmatch of an alternation is true exactly when one alternative fully matches.
        return self._general, re.compile("|".join(f"(?:{p})" for p in patterns))

    def is_valid(self, nsn: str) -> bool:
        length = len(nsn)
        try:
            checks = self._by_length[length]
        except KeyError:
            checks = self._by_length[length] = self._for_length(length)
        if checks is None:
            return False
        general, types = checks
        return general.fullmatch(nsn) is not None and types.fullmatch(nsn) is not None


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    # region_code_for_number picks a region sharing a calling code by these leading digits,
    # or, when a region has none, by full validation.
    leading_digits: re.Pattern[str] | None
    validator: _Validator
    # is_valid_number_for_region rejects a region whose own calling code differs.
    same_calling_code: bool
    country_code: str | None
    continent_code: str | None


class _CallingCode:
    """What parse and validation need for one country calling code, compiled once."""

    __slots__ = (
        "_general",
        "_local_lengths",
        "_possible_lengths",
        "_prefix",
        "_transform",
        "regions",
    )

    def __init__(self, code: int) -> None:
        region_codes = COUNTRY_CODE_TO_REGION_CODE[code]
        # parse() uses the main region's metadata (region_code_for_country_code) to strip a
        # national prefix written after the country code, e.g. +44 (0)20 ...
        main = PhoneMetadata.metadata_for_region_or_calling_code(code, region_codes[0])
        general = main.general_desc if main is not None else None
        # The library asserts both exist (parse, _test_number_length); so does every release.
        if main is None or general is None or not general.possible_length:  # pragma: no cover
            raise LookupError(f"incomplete phonenumbers metadata for +{code}")
        self._general = _compile(general.national_number_pattern)
        self._possible_lengths = tuple(general.possible_length)
        self._local_lengths = frozenset(general.possible_length_local_only)
        self._prefix = _compile(main.national_prefix_for_parsing)
        self._transform = main.national_prefix_transform_rule or None
        regions: list[_Region] = []
        for region_code in region_codes:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region_code)
            if metadata is None:  # pragma: no cover - mirrors the library's `continue`
                continue
            leading = metadata.leading_digits
            info = _info_for("", region_code)
            regions.append(
                _Region(
                    code=region_code,
                    leading_digits=None if leading is None else re.compile(leading),
                    validator=_Validator(metadata),
                    same_calling_code=(
                        region_code == _NON_GEO_REGION or metadata.country_code == code
                    ),
                    country_code=info.country_code,
                    continent_code=info.continent_code,
                )
            )
        self.regions = tuple(regions)

    def _viable(self, number: str) -> bool:
        return self._general is not None and self._general.fullmatch(number) is not None

    def national_number(self, number: str) -> str:
        """The national significant number: `number` with a national prefix (and carrier
        code) stripped when parse() would strip it."""
        if self._prefix is None:
            return number
        # _maybe_strip_national_prefix_carrier_code
        match = self._prefix.match(number)
        if match is None:
            return number
        groups = match.groups()
        # A transform rule without a group would crash the library; no metadata has one.
        if self._transform is None or not groups or groups[-1] is None:
            stripped = number[match.end() :]
        else:
            stripped = self._prefix.sub(self._transform, number, count=1)
        if self._viable(number) and not self._viable(stripped):
            return number
        # parse() keeps the stripped number unless _test_number_length calls it too short,
        # local-only or of an impossible length (a longer-than-possible one is kept).
        length = len(stripped)
        lengths = self._possible_lengths
        if length in self._local_lengths or length < lengths[0]:
            return number
        if length in lengths or length > lengths[-1]:
            return stripped
        return number

    def valid_region(self, nsn: str) -> _Region | None:
        """The number's region when the number is valid there, else None."""
        # region_code_for_number / _region_code_for_number_from_list, then
        # is_valid_number_for_region; a region picked by validation is not validated twice.
        if len(self.regions) == 1:
            region = self.regions[0]
        else:
            for region in self.regions:
                if region.leading_digits is not None:
                    if region.leading_digits.match(nsn):
                        break
                elif region.validator.is_valid(nsn):
                    return region if region.same_calling_code else None
            else:
                return None
        if region.same_calling_code and region.validator.is_valid(nsn):
            return region
        return None


_CALLING_CODES: dict[int, _CallingCode] = {}


def _calling_code(code: int) -> _CallingCode:
    # Built on first use so that start-up does not compile patterns for ~215 calling codes;
    # a race builds the same object twice, which is harmless.
    try:
        return _CALLING_CODES[code]
    except KeyError:
        built = _CALLING_CODES[code] = _CallingCode(code)
        return built


def _info_fast(digits: str) -> PhoneInfo:
    # parse(): _is_viable_phone_number needs three digits after a "+", and
    # _maybe_extract_country_code more than two.
    if len(digits) < 3:
        raise InvalidPhone(_REASON_INVALID)
    # _extract_country_code: the first 1, 2 or 3 digits that are a known calling code.
    if digits[0] == "0":
        raise InvalidPhone(_REASON_COUNTRY_CODE)
    for size in (1, 2, 3):
        if digits[:size] in _COUNTRY_CODE_PREFIXES:
            break
    else:
        raise InvalidPhone(_REASON_COUNTRY_CODE)
    code = int(digits[:size])
    rest = digits[size:]
    if len(rest) < _MIN_LENGTH_FOR_NSN:
        raise InvalidPhone(_REASON_INVALID)
    calling_code = _calling_code(code)
    nsn = calling_code.national_number(rest)
    if len(nsn) > _MAX_LENGTH_FOR_NSN:
        raise InvalidPhone(_REASON_INVALID)
    # The library would store int(nsn) plus a count of leading zeros; formatting it back
    # (national_significant_number) always gives `nsn` again, so the string is used directly.
    region = calling_code.valid_region(nsn)
    if region is None:
        raise InvalidPhone(_REASON_INVALID)
    return PhoneInfo(f"+{code}{nsn}", region.country_code, region.continent_code)
