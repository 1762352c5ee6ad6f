"""The import benchmark's contacts and segment definitions: a frozen copy of what
`segmenti.demo` generated until the demo became a story of its own (commit 8b34278), kept
here unchanged so bench_import's figures stay comparable across runs. Do not change it.
Everything is a pure function of the seed, so `--seed 1` gives the same data on every
machine and every run.

Contacts:
  * numbers valid for their countries: each country's example mobile number from
    libphonenumber's metadata with its last digits varied, kept only when
    `normalize_phone` accepts it, and never repeated (the digits walk a permutation);
  * spread over every inhabited continent, skewed to a few markets (Italy first);
  * custom parameters plan, age, city, language and signup_date, with skew (most plans
    are free, ages cluster in the thirties, cities follow Zipf's law, sign-ups lean
    recent) and gaps (not every contact has every key); about 3% have opted out.
Segments: one bulk in seven, one custom in seven, the rest filters of 1 to 5 conditions
cycling through every condition type, some with countries or continents.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import phonenumbers
from phonenumbers import PhoneNumberType

from segmenti import phones

# The ten reference conditions, spelled out so conditions added later to the registry do
# not change which segments this generates.
NAMES: Final = (
    "exact", "not_exact", "contains", "not_contains", "starts_with", "not_starts_with",
    "ends_with", "not_ends_with", "bigger_than", "lower_than",
)  # fmt: skip


@dataclass(frozen=True)
class Country:
    code: str
    weight: float
    cities: tuple[str, ...]
    languages: tuple[str, ...]


COUNTRIES: Final = (
    Country("IT", 20, ("Milano", "Roma", "Napoli", "Torino", "Bologna", "Palermo"), ("it",)),
    Country("US", 12, ("New York", "Los Angeles", "Chicago", "Houston", "Miami"), ("en", "es")),
    Country("GB", 7, ("London", "Manchester", "Birmingham", "Glasgow"), ("en",)),
    Country("DE", 7, ("Berlin", "Hamburg", "München", "Köln"), ("de",)),
    Country("FR", 6, ("Paris", "Lyon", "Marseille", "Toulouse"), ("fr",)),
    Country("ES", 6, ("Madrid", "Barcelona", "Valencia", "Sevilla"), ("es", "ca")),
    Country("BR", 5, ("São Paulo", "Rio de Janeiro", "Belo Horizonte"), ("pt",)),
    Country("IN", 5, ("Mumbai", "Delhi", "Bengaluru", "Chennai"), ("hi", "en")),
    Country("MX", 3, ("Ciudad de México", "Guadalajara", "Monterrey"), ("es",)),
    Country("NG", 3, ("Lagos", "Abuja", "Kano"), ("en",)),
    Country("AU", 3, ("Sydney", "Melbourne", "Brisbane"), ("en",)),
    Country("JP", 3, ("Tokyo", "Osaka", "Nagoya"), ("ja",)),
    Country("NL", 2, ("Amsterdam", "Rotterdam", "Utrecht"), ("nl",)),
    Country("PL", 2, ("Warszawa", "Kraków", "Wrocław"), ("pl",)),
    Country("CA", 2, ("Toronto", "Montréal", "Vancouver"), ("en", "fr")),
    Country("AR", 2, ("Buenos Aires", "Córdoba", "Rosario"), ("es",)),
    Country("ZA", 2, ("Johannesburg", "Cape Town", "Durban"), ("en", "zu", "af")),
    Country("EG", 2, ("Cairo", "Alexandria", "Giza"), ("ar",)),
    Country("ID", 2, ("Jakarta", "Surabaya", "Bandung"), ("id",)),
    Country("CO", 1, ("Bogotá", "Medellín", "Cali"), ("es",)),
    Country("KE", 1, ("Nairobi", "Mombasa"), ("sw", "en")),
    Country("MA", 1, ("Casablanca", "Rabat", "Marrakech"), ("ar", "fr")),
    Country("PH", 1, ("Manila", "Cebu", "Davao"), ("tl", "en")),
    Country("NZ", 1, ("Auckland", "Wellington", "Christchurch"), ("en",)),
)

FIRST_NAMES: Final = (
    "Maria", "Giulia", "Luca", "Marco", "Anna", "James", "Emma", "Olivia", "Noah", "Liam",
    "Sofia", "Lucas", "Mateo", "Ana", "João", "Priya", "Arjun", "Yuki", "Haruto", "Chidi",
    "Amara", "Fatima", "Omar", "Lena", "Jonas", "Camille", "Hugo", "Zanele", "Wiremu", "Ines",
)  # fmt: skip
LAST_NAMES: Final = (
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Smith", "Johnson", "Brown", "Garcia",
    "Martínez", "Silva", "Santos", "Müller", "Schmidt", "Martin", "Bernard", "Sharma", "Patel",
    "Sato", "Suzuki", "Okafor", "Adeyemi", "Hassan", "Kowalski", "de Vries", "Nguyen",
    "Dlamini", "Tremblay", "Fernández", "O'Brien",
)  # fmt: skip

PLANS: Final = (("free", 62), ("basic", 24), ("pro", 11), ("enterprise", 3))
PARAMETER_KEYS: Final = ("plan", "age", "city", "language", "signup_date")
# Sign-ups lean recent: days before this date follow an exponential law (mean ~1.4 years).
LAST_SIGNUP: Final = date(2026, 6, 30)
FIRST_SIGNUP: Final = date(2018, 1, 1)
OPT_OUT_SHARE: Final = 0.03


class _Numbers:
    """Distinct valid numbers of one country: the example mobile number with its last
    `width` digits replaced by a permutation of 0 .. 10**width - 1 (multiplying by a
    number coprime with 10 permutes the residues), skipping what fails validation."""

    _STEP: Final = 7_919  # a prime, so coprime with every power of ten

    def __init__(self, region: str, rng: random.Random) -> None:
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        assert example is not None, region
        nsn = phonenumbers.national_significant_number(example)
        self.width = min(7, len(nsn) - 2)
        self.prefix = f"+{example.country_code}{nsn[: len(nsn) - self.width]}"
        self.modulus = 10**self.width
        self.offset = rng.randrange(self.modulus)
        self.counter = 0

    def next(self) -> phones.PhoneInfo:
        while self.counter < self.modulus:
            digits = (self.offset + self.counter * self._STEP) % self.modulus
            self.counter += 1
            try:
                return phones.normalize_phone(f"{self.prefix}{digits:0{self.width}d}")
            except phones.InvalidPhone:
                continue
        raise RuntimeError(f"no more numbers for {self.prefix}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class DemoContact:
    phone: phones.PhoneInfo
    name: str
    has_opted_out: bool
    custom_parameters: dict[str, str]


def contacts(count: int, *, seed: int = 1) -> Iterator[DemoContact]:
    """`count` distinct contacts, generated one at a time (memory stays flat)."""
    rng = random.Random(seed)
    numbers = {country.code: _Numbers(country.code, rng) for country in COUNTRIES}
    weights = [country.weight for country in COUNTRIES]
    plans = [plan for plan, _ in PLANS]
    plan_weights = [weight for _, weight in PLANS]
    span = (LAST_SIGNUP - FIRST_SIGNUP).days
    for _ in range(count):
        country = rng.choices(COUNTRIES, weights)[0]
        parameters: dict[str, str] = {"plan": rng.choices(plans, plan_weights)[0]}
        if rng.random() < 0.88:
            parameters["age"] = str(min(max(int(rng.gauss(36, 12)), 16), 95))
        if rng.random() < 0.95:
            cities = country.cities
            parameters["city"] = rng.choices(
                cities, [1 / rank for rank in range(1, len(cities) + 1)]
            )[0]
        if rng.random() < 0.97:
            languages = country.languages
            parameters["language"] = languages[0] if rng.random() < 0.85 else rng.choice(languages)
        days_back = min(int(rng.expovariate(1 / 500)), span)
        parameters["signup_date"] = (LAST_SIGNUP - timedelta(days=days_back)).isoformat()
        yield DemoContact(
            phone=numbers[country.code].next(),
            name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            has_opted_out=rng.random() < OPT_OUT_SHARE,
            custom_parameters=parameters,
        )


@dataclass(frozen=True)
class DemoSegment:
    """A segment definition as API parameters (JSON form). Bulk and custom segments name
    their members by phone number: a custom segment's ids are known only once stored."""

    name: str
    type: str
    params: dict[str, Any]
    phone_numbers: tuple[str, ...] = ()


# Values each condition type is tried with, per key: they hit real data, so segments have
# members, and some deliberately match nothing or everything.
_TEXT_VALUES: Final = {
    "plan": ("free", "pro", "basic", "enterprise", "PRO", "e"),
    "city": ("Milano", "Roma", "London", "São Paulo", "mil", "o", "Paris"),
    "language": ("it", "en", "es", "pt", "de"),
    "signup_date": ("2026", "2025-", "2024-12", "-01", "2019"),
}
_NUMBER_VALUES: Final = {"age": ("18", "25", "30", "40", "50", "65", "29.5")}
_CONTINENTS: Final = ("EU", "NA", "SA", "AS", "AF", "OC")


def segments(count: int, *, seed: int = 1, numbers: Sequence[str] = ()) -> Iterator[DemoSegment]:
    """`count` segment definitions. `numbers` (phone numbers of existing contacts) feed the
    bulk and custom segments; without them those become filters too."""
    rng = random.Random(seed * 7_919 + 17)
    cycle = 0
    for index in range(count):
        kind = ("filter", "bulk", "filter", "custom", "filter", "filter", "filter")[index % 7]
        if kind != "filter" and numbers:
            size = min(len(numbers), rng.choice((5, 20, 50, 200, 1000)))
            picked = tuple(rng.sample(list(numbers), size))
            name = f"{'Imported list' if kind == 'bulk' else 'Hand-picked'} #{index + 1}"
            if kind == "bulk":
                params: dict[str, Any] = {
                    "name": name,
                    "type": "bulk",
                    "phone_numbers": list(picked),
                }
            else:
                params = {"name": name, "type": "custom"}
            yield DemoSegment(name, kind, params, picked)
            continue
        conditions = []
        # Mostly one to three conditions, on distinct keys, as people write them.
        how_many = rng.choices((1, 2, 3, 4, 5), (35, 30, 20, 10, 5))[0]
        keys = rng.sample(("plan", "age", "city", "language", "signup_date"), how_many)
        for position, key in enumerate(keys):
            # The first condition walks the condition types in turn, so every type appears.
            if position == 0:
                condition = NAMES[cycle % len(NAMES)]
                cycle += 1
            elif key == "age":
                condition = rng.choice(("bigger_than", "lower_than", "not_exact"))
            else:
                condition = rng.choice(NAMES[:8])
            if condition in ("bigger_than", "lower_than"):
                key = "age"
            value = rng.choice(_NUMBER_VALUES["age"] if key == "age" else _TEXT_VALUES[key])
            conditions.append((key, condition, value))
        params = {
            "type": "filter",
            "filters_custom_parameter_key": [key for key, _, _ in conditions],
            "filters_custom_parameter_condition": [condition for _, condition, _ in conditions],
            "filters_custom_parameter_value": [value for _, _, value in conditions],
        }
        if rng.random() < 0.3:
            params["filters_countries"] = rng.sample([c.code for c in COUNTRIES], rng.randint(1, 3))
        if rng.random() < 0.15:
            params["filters_continents"] = rng.sample(_CONTINENTS, rng.randint(1, 2))
        label = ", ".join(f"{key} {condition} {value}" for key, condition, value in conditions)
        name = f"{label} #{index + 1}"[:256]
        params["name"] = name
        yield DemoSegment(name, "filter", params)
