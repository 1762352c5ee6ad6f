"""The benchmark's data, built from a fixed seed: contacts with realistic custom
parameters, loaded with bulk inserts, and segment definitions of every kind.

Phone numbers are valid by construction: each region's example mobile number from
libphonenumber's metadata with its last digits replaced, kept only when `normalize_phone`
accepts it (which also gives its country and continent, as the API would store them).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from sqlalchemy import Engine, insert, text

from segmenti.db.tables import contact_parameters, contacts
from segmenti.membership import conditions, filters
from segmenti.membership.filters import fold, parse_number
from segmenti.phones import InvalidPhone, PhoneInfo, normalize_phone

# Share of contacts per region: a mostly Italian customer base with a long tail.
REGIONS = {
    "IT": 40,
    "US": 12,
    "GB": 8,
    "DE": 8,
    "FR": 7,
    "ES": 6,
    "BR": 5,
    "IN": 4,
    "CH": 3,
    "NG": 2,
    "AU": 2,
    "JP": 2,
    "MX": 1,
}
LANGUAGE_OF = {"IT": "it", "GB": "en", "US": "en", "AU": "en", "IN": "en", "NG": "en"}
LANGUAGE_OF |= {"DE": "de", "CH": "de", "FR": "fr", "ES": "es", "MX": "es", "BR": "pt"}
LANGUAGE_OF |= {"JP": "ja"}
PLANS = {"free": 60, "pro": 25, "business": 10, "enterprise": 5}
CITIES = [
    "Milano", "Roma", "Napoli", "Torino", "Palermo", "Genova", "Bologna", "Firenze",
    "Bari", "Catania", "Venezia", "Verona", "Messina", "Padova", "Trieste", "Brescia",
    "London", "Berlin", "Paris", "Madrid", "New York", "São Paulo", "Mumbai", "Zürich",
    "Lagos", "Sydney", "Tokyo", "Ciudad de México", "Lyon", "München", "Sevilla",
]  # fmt: skip
OPTED_OUT_SHARE = 0.03
FIRST_SIGNUP = date(2019, 1, 1)
SIGNUP_DAYS = 2500


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    phone: PhoneInfo
    parameters: dict[str, str]
    has_opted_out: bool


def _weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _example_prefixes() -> dict[str, tuple[str, int]]:
    """region -> (E.164 prefix to keep, how many trailing digits to vary)."""
    prefixes = {}
    for region in REGIONS:
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        national = len(str(example.national_number))
        varied = min(7, national - 3)
        prefixes[region] = (e164[: len(e164) - varied], varied)
    return prefixes


def phone_numbers(rng: random.Random, count: int, *, taken: set[str]) -> Iterator[PhoneInfo]:
    """`count` distinct valid numbers, none of them in `taken` (which grows)."""
    prefixes = _example_prefixes()
    regions = list(REGIONS)
    weights = list(REGIONS.values())
    made = 0
    while made < count:
        region = rng.choices(regions, weights=weights)[0]
        prefix, varied = prefixes[region]
        e164 = prefix + str(rng.randrange(10**varied)).zfill(varied)
        if e164 in taken:
            continue
        try:
            info = normalize_phone(e164)
        except InvalidPhone:
            continue
        taken.add(e164)
        made += 1
        yield info


def parameters_for(rng: random.Random, phone: PhoneInfo) -> dict[str, str]:
    parameters = {"plan": _weighted(rng, PLANS)}
    if rng.random() < 0.95:
        # Ages cluster around 35; a few are written as decimals.
        age = max(16, min(95, int(rng.gauss(38, 13))))
        parameters["age"] = str(age) if rng.random() < 0.98 else f"{age}.5"
    if rng.random() < 0.9:
        # Zipf-like: a few big cities hold most contacts.
        parameters["city"] = CITIES[min(len(CITIES) - 1, int(rng.paretovariate(1.2)) - 1)]
    if rng.random() < 0.85:
        default = LANGUAGE_OF.get(phone.country_code or "", "en")
        parameters["language"] = default if rng.random() < 0.9 else rng.choice(["en", "it", "es"])
    # Skewed towards recent sign-ups.
    days = int(SIGNUP_DAYS * (1 - rng.random() ** 2.5))
    parameters["signup_date"] = (FIRST_SIGNUP + timedelta(days=days)).isoformat()
    return parameters


def make_contacts(rng: random.Random, count: int, *, taken: set[str]) -> Iterator[Contact]:
    for number, phone in enumerate(phone_numbers(rng, count, taken=taken), start=1):
        yield Contact(
            id=number,
            phone=phone,
            parameters=parameters_for(rng, phone),
            has_opted_out=rng.random() < OPTED_OUT_SHARE,
        )


def load_contacts(
    engine: Engine, *, user_id: int, contact_list: list[Contact], batch: int = 50_000
) -> None:
    """Bulk inserts into contacts and contact_parameters, the rows the services would
    write. On SQLite the secondary indexes are dropped during the load and rebuilt after
    (one sort instead of millions of random B-tree inserts)."""
    now = datetime(2026, 1, 1)
    dropped = _drop_indexes(engine) if engine.dialect.name == "sqlite" else []
    for start in range(0, len(contact_list), batch):
        chunk = contact_list[start : start + batch]
        contact_rows: list[dict[str, Any]] = [
            {
                "id": c.id,
                "user_id": user_id,
                "name": f"Contact {c.id}",
                "phone_number": c.phone.e164,
                "custom_parameters": c.parameters,
                "country_code": c.phone.country_code,
                "continent_code": c.phone.continent_code,
                "has_opted_out": c.has_opted_out,
                "datetime": now,
            }
            for c in chunk
        ]
        parameter_rows: list[dict[str, Any]] = [
            {
                "contact_id": c.id,
                "user_id": user_id,
                "key": key,
                "value_folded": fold(value),
                "value_number": parse_number(value),
            }
            for c in chunk
            for key, value in c.parameters.items()
        ]
        with engine.begin() as connection:
            connection.execute(insert(contacts), contact_rows)
            connection.execute(insert(contact_parameters), parameter_rows)
    if dropped:
        with engine.begin() as connection:
            for sql in dropped:
                connection.exec_driver_sql(sql)
            connection.exec_driver_sql("ANALYZE")
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            # Rows were inserted with their ids: move the sequence past them.
            connection.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('contacts', 'id'), "
                "(SELECT max(id) FROM contacts))"
            )
            connection.exec_driver_sql("ANALYZE")


def _drop_indexes(engine: Engine) -> list[str]:
    with engine.begin() as connection:
        # Unique indexes stay: foreign keys (contact_parameters -> contacts (user_id, id))
        # need them, and SQLite refuses inserts into a child whose parent key has none.
        rows = connection.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name IN ('contacts', 'contact_parameters') "
                "AND sql NOT LIKE 'CREATE UNIQUE INDEX%'"
            )
        ).all()
        for name, _sql in rows:
            connection.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in rows]


# -- segments -------------------------------------------------------------------------

CONDITION_VALUES: dict[str, list[str]] = {
    "plan": list(PLANS),
    "city": [c.casefold()[:4] for c in CITIES] + [c.casefold() for c in CITIES],
    "language": sorted(set(LANGUAGE_OF.values())),
    "signup_date": ["2026", "2025-0", "-01-", "-12-31", "2024-06"],
}


def random_condition(rng: random.Random) -> filters.Condition:
    condition = rng.choice(conditions.NAMES)
    if conditions.named(condition).numeric:
        key = rng.choice(["age", "age", "signup_date"])
        value = str(rng.randint(18, 70)) if key == "age" else "2025"
        return filters.Condition(key, condition, value)
    key = rng.choice(list(CONDITION_VALUES) + ["age", "nickname"])
    if key == "age":
        return filters.Condition(key, condition, str(rng.randint(18, 70)))
    if key == "nickname":  # a key no contact has
        return filters.Condition(key, condition, "x")
    value = rng.choice(CONDITION_VALUES[key])
    if rng.random() < 0.3:
        value = value.upper()
    return filters.Condition(key, condition, value)


def random_filter(rng: random.Random) -> filters.Filter:
    conditions = tuple(random_condition(rng) for _ in range(rng.randint(1, 5)))
    countries = continents = None
    roll = rng.random()
    if roll < 0.2:
        countries = tuple(sorted(set(rng.sample(list(REGIONS), rng.randint(1, 3)))))
    elif roll < 0.3:
        continents = tuple(sorted(set(rng.sample(["EU", "NA", "SA", "AS", "AF", "OC"], 2))))
    return filters.Filter(conditions=conditions, countries=countries, continents=continents)


@dataclass(frozen=True)
class SegmentPlan:
    """One segment to create: exactly one of the three definitions is set."""

    name: str
    phone_numbers: list[str] | None = None
    contacts_ids: list[int] | None = None
    filter: filters.Filter | None = None


def segment_plans(
    rng: random.Random, count: int, *, contact_list: list[Contact]
) -> list[SegmentPlan]:
    """15% bulk lists, 15% hand-picked lists, 70% filters of 1 to 5 conditions."""
    plans = []
    for number in range(count):
        roll = rng.random()
        size = min(len(contact_list), int(rng.paretovariate(1.0) * 50))
        if roll < 0.15:
            picked = rng.sample(contact_list, size)
            plans.append(
                SegmentPlan(
                    f"segment {number:04d} bulk", phone_numbers=[c.phone.e164 for c in picked]
                )
            )
        elif roll < 0.30:
            picked = rng.sample(contact_list, size)
            plans.append(
                SegmentPlan(f"segment {number:04d} custom", contacts_ids=[c.id for c in picked])
            )
        else:
            plans.append(SegmentPlan(f"segment {number:04d} filter", filter=random_filter(rng)))
    return plans
