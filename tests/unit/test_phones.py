from __future__ import annotations

import random
import re
from typing import Any

import phonenumbers
import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

from segmenti import phones
from segmenti.phones import (
    CONTINENT_BY_COUNTRY,
    CONTINENTS,
    InvalidPhone,
    PhoneInfo,
    continent_for_country,
    country_name,
    is_country,
    normalize_phone,
    normalize_phone_slow,
)

E164 = re.compile(r"\+[1-9][0-9]{2,17}")


def outcome(fn: Any, arg: str) -> PhoneInfo | tuple[str, str]:
    """A comparable result: the PhoneInfo, or the InvalidPhone reason."""
    try:
        info = fn(arg)
    except InvalidPhone as exc:
        return ("invalid", exc.reason)
    assert isinstance(info, PhoneInfo)
    return info


# --- Countries and continents ----------------------------------------------------------------


def test_every_pycountry_country_has_a_continent() -> None:
    missing = sorted(
        c.alpha_2 for c in pycountry.countries if c.alpha_2 not in CONTINENT_BY_COUNTRY
    )
    assert missing == []
    assert set(CONTINENT_BY_COUNTRY.values()) <= CONTINENTS
    assert {"AF", "AN", "AS", "EU", "NA", "OC", "SA"} == CONTINENTS


def test_continent_table_lists_each_country_once() -> None:
    listed = [code for codes in phones._COUNTRIES_BY_CONTINENT.values() for code in codes.split()]
    assert len(listed) == len(set(listed))
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in listed)
    iso = {c.alpha_2 for c in pycountry.countries}
    # Only the documented non-ISO extras may appear beyond pycountry's list.
    assert set(CONTINENT_BY_COUNTRY) - iso == {"XK"}


def test_every_phonenumbers_region_gets_a_known_country_and_continent() -> None:
    for region in phonenumbers.SUPPORTED_REGIONS:
        country = phones._COUNTRY_FOR_REGION.get(region, region)
        assert country in CONTINENT_BY_COUNTRY, region


@pytest.mark.parametrize(
    ("country", "continent"),
    [
        ("IT", "EU"),
        ("RU", "EU"),
        ("CY", "EU"),
        ("TR", "AS"),
        ("GE", "AS"),
        ("AM", "AS"),
        ("AZ", "AS"),
        ("KZ", "AS"),
        ("EG", "AF"),
        ("AQ", "AN"),
        ("PA", "NA"),
        ("CR", "NA"),
        ("JM", "NA"),
        ("TT", "NA"),
        ("GL", "NA"),
        ("FK", "SA"),
        ("BR", "SA"),
        ("AU", "OC"),
        ("NG", "AF"),
        ("JP", "AS"),
        ("US", "NA"),
    ],
)
def test_each_country_is_on_its_conventional_continent(country: str, continent: str) -> None:
    assert continent_for_country(country) == continent


def test_an_unknown_or_empty_country_has_no_continent_and_case_is_ignored() -> None:
    assert continent_for_country(None) is None
    assert continent_for_country("") is None
    assert continent_for_country("ZZ") is None
    assert continent_for_country("it") == "EU"


def test_is_country_takes_upper_case_iso_codes_and_kosovo() -> None:
    assert is_country("IT")
    assert is_country("AQ")
    assert not is_country("it")
    assert not is_country("ZZ")
    assert is_country("XK")  # libphonenumber gives +383 numbers XK; filters must reach them
    assert not is_country("")
    assert not is_country("ITA")


def test_country_names_are_common_names_and_unknown_codes_stay_codes() -> None:
    assert country_name("IT") == "Italy"
    assert country_name("TW") == "Taiwan"  # common_name, not the ISO long form
    assert country_name("XK") == "Kosovo"
    assert country_name("ZZ") == "ZZ"


# --- Normalization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+393331234567",
        "+39 333 123.45-67",
        "+39 333 1234567",
        "+39-333-123-45-67",
        "+39.333.123.45.67",
        "+39 (333) 1234567",
        "(+39) 333 1234567",
        "(0039) 333 1234567",
        "0039 333 1234567",
        "00393331234567",
        "  +39\t333\u00a0123 4567\n",
        "+39\u2009333\u202f1234567",
        "\ufeff+39 333 1234567",
        "+39 333 123\u201345\u201367",
    ],
)
def test_formatting_is_dropped(raw: str) -> None:
    assert normalize_phone(raw) == PhoneInfo("+393331234567", "IT", "EU")
    assert normalize_phone_slow(raw) == normalize_phone(raw)


def test_trunk_prefix_in_brackets_is_dropped_like_libphonenumber() -> None:
    # "+44 (0)20 ..." is how UK numbers are printed; libphonenumber strips the 0.
    assert normalize_phone("+44 (0)20 7946 0018").e164 == "+442079460018"
    assert normalize_phone("+33 (0)6 12 34 56 78").e164 == "+33612345678"


@pytest.mark.parametrize(
    ("raw", "country", "continent"),
    [
        ("+39 333 1234567", "IT", "EU"),
        ("+1 201 555 0123", "US", "NA"),
        ("+1 604 555 0123", "CA", "NA"),
        ("+1 876 523 0123", "JM", "NA"),
        ("+81 3 1234 5678", "JP", "AS"),
        ("+55 11 96123 4567", "BR", "SA"),
        ("+61 412 345 678", "AU", "OC"),
        ("+234 802 123 4567", "NG", "AF"),
        ("+7 912 345 6789", "RU", "EU"),
        ("+7 701 234 5678", "KZ", "AS"),
        ("+39 06 698 12345", "VA", "EU"),
        ("+44 1624 756789", "IM", "EU"),
        ("+383 28 012 345", "XK", "EU"),
        ("+247 62889", "SH", "AF"),  # Ascension: phonenumbers says AC
        ("+290 8999", "SH", "AF"),  # Tristan da Cunha: phonenumbers says TA
        ("+800 1234 5678", None, None),  # non-geographic (region "001")
    ],
)
def test_country_and_continent_come_from_the_number(
    raw: str, country: str | None, continent: str | None
) -> None:
    info = normalize_phone(raw)
    assert (info.country_code, info.continent_code) == (country, continent)
    assert normalize_phone_slow(raw) == info


@pytest.mark.parametrize("raw", ["333 1234567", "3331234567", "03331234567", "0 39 333 1234567"])
def test_a_number_without_a_country_code_is_invalid(raw: str) -> None:
    with pytest.raises(InvalidPhone) as exc:
        normalize_phone(raw)
    assert exc.value.reason == "missing country code: start with + or 00"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty phone number"),
        ("   ", "empty phone number"),
        ("( ) - .", "empty phone number"),
        ("+39 333 CALL ME", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("+1-800-FLOWERS", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("tel:+393331234567", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("+39 333 1234567 ext. 12", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("+39/333/1234567", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("+３９３３３１２３４５６７", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("+39 333 123456\u00b2", "only digits, spaces, dots, dashes and brackets are allowed"),
        ("++393331234567", "+ is only allowed at the start"),
        ("39+3331234567", "+ is only allowed at the start"),
        ("+", "not a valid phone number"),
        ("00", "not a valid phone number"),
        ("+39", "not a valid phone number"),
        ("+39 123", "not a valid phone number"),
        ("+39 333 12345678901", "not a valid phone number"),
        ("+1 200 555 0123", "not a valid phone number"),
        ("+999 1234567", "unknown country code"),
        ("+0039 333 1234567", "unknown country code"),
        ("+" + "3" * 32, "too long for a phone number"),
        ("00 39 333 1234567 1234567 1234567 12345", "too long for a phone number"),
    ],
)
def test_each_invalid_number_is_refused_with_its_reason(raw: str, reason: str) -> None:
    for fn in (normalize_phone, normalize_phone_slow):
        with pytest.raises(InvalidPhone) as exc:
            fn(raw)
        assert exc.value.reason == reason
        assert str(exc.value) == reason


def test_invalid_phone_is_a_value_error() -> None:
    assert issubclass(InvalidPhone, ValueError)


@pytest.mark.parametrize("raw", [None, b"+393331234567", 393331234567])
def test_non_strings_are_invalid(raw: Any) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_length_limit_counts_characters_after_cleaning() -> None:
    # 32 characters after cleaning is accepted as far as length goes (then invalid as a number)
    raw = "+" + "3" * 31
    with pytest.raises(InvalidPhone) as exc:
        normalize_phone(" ".join(raw))
    assert exc.value.reason == "not a valid phone number"


# --- The fast path agrees with phonenumbers.parse ----------------------------------------------


def _example_numbers() -> list[phonenumbers.PhoneNumber]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                numbers.append(example)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            numbers.append(example)
    return numbers


def _mutate(rng: random.Random, digits: str) -> str:
    if not digits:
        return rng.choice("123456789")
    kind = rng.randrange(6)
    at = rng.randrange(len(digits))
    if kind == 0:  # change a digit
        return digits[:at] + rng.choice("0123456789") + digits[at + 1 :]
    if kind == 1:  # drop a digit
        return digits[:at] + digits[at + 1 :]
    if kind == 2:  # insert a digit
        return digits[:at] + rng.choice("0123456789") + digits[at:]
    if kind == 3:  # truncate
        return digits[: rng.randrange(1, len(digits) + 1)]
    if kind == 4:  # extend
        return digits + "".join(rng.choices("0123456789", k=rng.randint(1, 3)))
    # same prefix, other subscriber digits: mostly still valid
    return digits[:-4] + "".join(rng.choices("0123456789", k=4))


def _corpus(seed: int = 20240601) -> list[str]:
    """Digit strings as they come after the "+": valid numbers of every region and type,
    national prefixes written after the country code, near misses, and noise."""
    rng = random.Random(seed)
    examples = _example_numbers()
    base: list[str] = []
    for number in examples:
        assert number.country_code is not None
        code = str(number.country_code)
        nsn = phonenumbers.national_significant_number(number)
        base.append(code + nsn)
        # The national format brings trunk prefixes and carrier codes (AR "15", MX "1", ...).
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        base.append(code + re.sub(r"\D", "", national))
        region = phonenumbers.region_code_for_number(number) or "001"
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
        prefix = metadata.national_prefix if metadata is not None else None
        # sorted: set order varies with hash randomization, and the corpus must not.
        for trunk in sorted({"0", "00", "1", "8", "9", "15", prefix or "0"}):
            base.append(code + trunk + nsn)
    corpus = list(base)
    for _ in range(16_000):
        corpus.append(_mutate(rng, rng.choice(base)))
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for _ in range(4_000):
        tail = "".join(rng.choices("0123456789", k=rng.randint(0, 16)))
        corpus.append(str(rng.choice(codes)) + tail)
    for _ in range(3_000):
        corpus.append("".join(rng.choices("0123456789", k=rng.randint(0, 20))))
    return corpus


def test_fast_path_matches_phonenumbers_on_a_large_corpus() -> None:
    # Without it the library recompiles most patterns on every call (the `re` cache is too
    # small for the metadata), which only makes this test slow.
    phonenumbers.enable_pattern_cache()
    corpus = _corpus()
    assert len(corpus) >= 20_000
    valid = 0
    mismatches = []
    for digits in corpus:
        slow = outcome(phones._info_slow, digits)
        fast = outcome(phones._info_fast, digits)
        if slow != fast:
            mismatches.append((digits, slow, fast))
        if isinstance(fast, PhoneInfo):
            valid += 1
            assert E164.fullmatch(fast.e164)
    assert mismatches[:10] == []
    # The corpus must exercise both verdicts to mean anything.
    assert valid > 5_000
    assert len(corpus) - valid > 5_000


def test_every_example_number_is_valid() -> None:
    for number in _example_numbers():
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        info = normalize_phone(e164)
        assert info.e164 == e164
        region = phonenumbers.region_code_for_number(number)
        if region is not None and len(region) == 2:
            assert info.country_code == phones._COUNTRY_FOR_REGION.get(region, region)
            assert info.continent_code in CONTINENTS


_PHONE_ALPHABET = st.sampled_from(list("0123456789+ .-()\t\u00a0") + ["00", "+39", "+1", "+44"])


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_gives_phone_info_or_invalid_phone(raw: str) -> None:
    result = outcome(normalize_phone, raw)
    if isinstance(result, PhoneInfo):
        assert E164.fullmatch(result.e164)


@settings(max_examples=1_000, deadline=None)
@given(st.lists(_PHONE_ALPHABET, max_size=24).map("".join))
def test_phone_like_text_agrees_with_slow_path_and_is_idempotent(raw: str) -> None:
    result = outcome(normalize_phone, raw)
    assert result == outcome(normalize_phone_slow, raw)
    if isinstance(result, PhoneInfo):
        assert E164.fullmatch(result.e164)
        assert normalize_phone(result.e164) == result
        assert result.continent_code == continent_for_country(result.country_code)
