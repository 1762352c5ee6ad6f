"""The demo: the audience of an Italian retailer that sends SMS, and the segments its
marketing team keeps. Generated without a database; `segmenti demo` (cli/demo.py) writes
it into a new user through the CSV import machinery and the segment service.

Everything is a pure function of the seed and the run date (`today`): the same pair gives
the same contacts on every machine, and every date is counted back from `today`, so the
story reads the same whichever day it runs.

Contacts (docs/import-export.md, "Demo data", says what and why):
  * most in Italy, some in France, the UK, Sweden, the US, Canada and Australia, each
    with a name from its own country and a city that matches its number;
  * numbers from ranges the regulators reserve for fiction where a country has one that
    libphonenumber accepts, so a demo list sent by mistake reaches nobody (the
    `NumberBlock`s of `MARKETS`); Italy has none: see `_ITALY`;
  * custom parameters a shop keeps: plan, city, language, signup_date,
    last_purchase_date, total_spent, loyalty_tier, consent_source; about 4% opted out.
  * the first contacts are a fixed cast (`CAST`), so every catalogue segment has members
    at any size from len(CAST) up.
Segments: `CATALOGUE`, named the way an operator names them.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, Final

from segmenti import phones

PARAMETER_KEYS: Final = (
    "plan",
    "city",
    "language",
    "signup_date",
    "last_purchase_date",
    "total_spent",
    "loyalty_tier",
    "consent_source",
)
OPT_OUT_SHARE: Final = 0.04
# The shop opened this many days before the run date: no sign-up is older.
HISTORY_DAYS: Final = 8 * 365


# -- numbers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberBlock:
    """Consecutive numbers `+<prefix><n>`, n from `first` to `last` written on `width`
    digits, or the explicit `numbers` (E.164 without "+") when a regulator lists them one
    by one. `source` says who reserved them."""

    prefix: str
    width: int
    first: int
    last: int
    source: str
    numbers: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.numbers) if self.numbers else self.last - self.first + 1

    def number(self, index: int) -> str:
        if self.numbers:
            return f"+{self.numbers[index]}"
        return f"+{self.prefix}{self.first + index:0{self.width}d}"


_OFCOM: Final = "Ofcom, numbers reserved for drama (geographic)"
_ARCEP: Final = "ARCEP, numbers reserved for fiction (geographic)"
_NANP: Final = "NANPA, 555-0100 to 555-0199 reserved for fiction in every area code"


def _uk(area: str, exchange: str) -> NumberBlock:
    return NumberBlock(f"44{area}{exchange}", 3, 0, 999, _OFCOM)


def _france(prefix: str) -> NumberBlock:
    return NumberBlock(f"33{prefix}", 4, 0, 9_999, _ARCEP)


def _nanp(area_code: str) -> NumberBlock:
    return NumberBlock(f"1{area_code}55501", 2, 0, 99, _NANP)


# Italy has no range reserved for fiction. libphonenumber accepts 9-digit mobile numbers
# anywhere in 32-39 because the oldest TIM numbers had 9 digits; the 39 block (3 Italia,
# now WindTre) was opened in 2003 with 10-digit numbers only, so a 9-digit 39x number is
# the least likely to belong to anyone. Not a regulator's guarantee: never send to demo
# data (docs/import-export.md).
_ITALY: Final = NumberBlock("3939", 7, 0, 9_999_999, "none reserved: 9-digit 39x")
_FRANCE_PARIS: Final = _france("19900")
_FRANCE_WEST: Final = _france("26191")
_FRANCE_NORTH_EAST: Final = _france("35301")
_FRANCE_SOUTH_EAST: Final = _france("46571")
_FRANCE_SOUTH_WEST: Final = _france("53649")
# ACMA's 30 fictitious mobile numbers, listed one by one.
_AUSTRALIA: Final = NumberBlock(
    "61",
    9,
    0,
    0,
    "ACMA, fictitious mobile numbers",
    tuple(
        f"61491{n}"
        for n in (
            "570006", "570156", "570157", "570158", "570159", "570110", "570313", "570737",
            "571266", "571491", "571804", "572549", "572665", "572983", "573770", "573087",
            "574118", "574632", "575254", "575789", "576398", "576801", "577426", "577644",
            "578957", "578148", "578888", "579212", "579760", "579455",
        )
    ),
)  # fmt: skip
# PTS (Sweden): 070-174 06 05 to 070-174 06 99, mobile.
_SWEDEN: Final = NumberBlock("46701740", 3, 605, 699, "PTS, numbers reserved for fiction")


@dataclass(frozen=True)
class City:
    name: str
    weight: float
    block: NumberBlock
    language: str = ""  # when not the country's


@dataclass(frozen=True)
class Market:
    country: str
    weight: float
    language: str
    cities: tuple[City, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]


_FR_FIRST: Final = (
    "Camille", "Léa", "Manon", "Chloé", "Inès", "Julie", "Louis", "Hugo", "Lucas", "Thomas",
    "Nicolas", "Mathieu", "Antoine", "Élodie", "Sophie", "Pierre",
)  # fmt: skip
_FR_LAST: Final = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Roux",
)  # fmt: skip
_EN_FIRST: Final = (
    "Oliver", "George", "Harry", "Jack", "James", "William", "Olivia", "Amelia", "Emily",
    "Isla", "Sophie", "Grace", "Charlotte", "Thomas", "Daniel", "Hannah",
)  # fmt: skip
_UK_LAST: Final = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans",
    "Thomas", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "Hughes",
)  # fmt: skip
_US_FIRST: Final = (
    "Michael", "Jennifer", "David", "Jessica", "Christopher", "Ashley", "Matthew", "Sarah",
    "Joshua", "Emily", "Daniel", "Maria", "Anthony", "Nicole", "Ryan", "Megan",
)  # fmt: skip
_US_LAST: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Garcia", "Rodriguez",
    "Wilson", "Anderson", "Taylor", "Moore", "Russo", "Romano", "Murphy",
)  # fmt: skip

MARKETS: Final = (
    Market(
        "IT",
        88,
        "it",
        (
            City("Roma", 16, _ITALY), City("Milano", 15, _ITALY), City("Napoli", 9, _ITALY),
            City("Torino", 8, _ITALY), City("Palermo", 6, _ITALY), City("Genova", 5, _ITALY),
            City("Bologna", 5, _ITALY), City("Firenze", 4.5, _ITALY), City("Bari", 3.5, _ITALY),
            City("Catania", 3, _ITALY), City("Verona", 2.5, _ITALY), City("Venezia", 2.5, _ITALY),
            City("Padova", 2, _ITALY), City("Brescia", 2, _ITALY), City("Bergamo", 1.5, _ITALY),
            City("Monza", 1.5, _ITALY), City("Trieste", 1.5, _ITALY), City("Parma", 1.5, _ITALY),
            City("Cagliari", 1.5, _ITALY), City("Lecce", 1, _ITALY),
        ),
        (
            "Giulia", "Francesca", "Chiara", "Sara", "Martina", "Alessia", "Valentina", "Elena",
            "Federica", "Sofia", "Anna", "Marco", "Alessandro", "Luca", "Andrea", "Francesco",
            "Matteo", "Lorenzo", "Davide", "Simone", "Giuseppe", "Paolo", "Stefano", "Roberto",
        ),
        (
            "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
            "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa",
            "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro",
            "Caruso",
        ),
    ),
    Market(
        "FR",
        3,
        "fr",
        (
            City("Paris", 10, _FRANCE_PARIS), City("Lyon", 4, _FRANCE_SOUTH_EAST),
            City("Marseille", 4, _FRANCE_SOUTH_EAST), City("Nice", 3, _FRANCE_SOUTH_EAST),
            City("Toulouse", 3, _FRANCE_SOUTH_WEST), City("Bordeaux", 2, _FRANCE_SOUTH_WEST),
            City("Nantes", 2, _FRANCE_WEST), City("Lille", 2, _FRANCE_NORTH_EAST),
            City("Strasbourg", 2, _FRANCE_NORTH_EAST),
        ),
        _FR_FIRST,
        _FR_LAST,
    ),
    Market(
        "GB",
        3,
        "en",
        (
            City("London", 10, _uk("207946", "0")), City("Manchester", 3, _uk("161496", "0")),
            City("Birmingham", 3, _uk("121496", "0")), City("Leeds", 2, _uk("113496", "0")),
            City("Glasgow", 2, _uk("141496", "0")), City("Liverpool", 2, _uk("151496", "0")),
            City("Bristol", 2, _uk("117496", "0")), City("Edinburgh", 2, _uk("131496", "0")),
            City("Newcastle upon Tyne", 1, _uk("191498", "0")),
        ),
        _EN_FIRST,
        _UK_LAST,
    ),
    Market(
        "SE",
        0.5,
        "sv",
        (City("Stockholm", 3, _SWEDEN), City("Göteborg", 2, _SWEDEN), City("Malmö", 1, _SWEDEN)),
        (
            "Alice", "Maja", "Elsa", "Astrid", "Wilma", "Ebba", "Erik", "Lars", "Oscar", "Hugo",
            "William", "Axel", "Karin", "Anders",
        ),
        (
            "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
            "Persson", "Svensson", "Gustafsson", "Lindberg", "Lindqvist",
        ),
    ),
    Market(
        "US",
        2.5,
        "en",
        (
            City("New York", 8, _nanp("212")), City("Los Angeles", 4, _nanp("213")),
            City("Chicago", 3, _nanp("312")), City("Miami", 2, _nanp("305")),
            City("Boston", 2, _nanp("617")), City("San Francisco", 2, _nanp("415")),
            City("Philadelphia", 1, _nanp("215")), City("Houston", 1, _nanp("713")),
        ),
        _US_FIRST,
        _US_LAST,
    ),
    Market(
        "CA",
        1,
        "en",
        (
            City("Toronto", 4, _nanp("416")),
            City("Montréal", 3, _nanp("514"), language="fr"),
            City("Vancouver", 2, _nanp("604")),
        ),
        _EN_FIRST[:8] + _FR_FIRST[:8],
        ("Tremblay", "Gagnon", "Roy", "Côté", "Smith", "Brown", "Wilson", "MacDonald", "Lee"),
    ),
    Market(
        "AU",
        0.5,
        "en",
        (
            City("Sydney", 3, _AUSTRALIA), City("Melbourne", 3, _AUSTRALIA),
            City("Brisbane", 1, _AUSTRALIA),
        ),
        ("Jack", "Noah", "Oliver", "William", "Charlotte", "Olivia", "Mia", "Ava", "Chloe", "Ruby"),
        ("Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Martin", "Kelly"),
    ),
)  # fmt: skip
_MARKET: Final = {market.country: market for market in MARKETS}


class _Pool:
    """The numbers of one block, each used once, in an order the seed shuffles: the index
    walks a permutation (offset + i * step modulo the size, with a step near the golden
    ratio of the size and coprime with it, so neighbours in the walk are far apart)."""

    def __init__(self, block: NumberBlock, rng: random.Random) -> None:
        self.block = block
        step = max(1, int(block.size * 0.618_034))
        while math.gcd(step, block.size) != 1:
            step += 1
        self.step = step
        self.offset = rng.randrange(block.size)
        self.used = 0

    def take(self) -> str | None:
        """The next number (E.164), None once all are used. Every number of every block
        validates (tests/unit/test_demo.py checks them with libphonenumber itself), so
        the hot path skips `normalize_phone`."""
        if self.used == self.block.size:
            return None
        index = (self.offset + self.used * self.step) % self.block.size
        self.used += 1
        return self.block.number(index)


# -- contacts ---------------------------------------------------------------------------

PLANS: Final = (("free", 50), ("basic", 30), ("pro", 15), ("business", 5))
# (tier, spent at least): a tier follows what a customer has spent.
LOYALTY_TIERS: Final = (("platinum", 1_500.0), ("gold", 500.0), ("silver", 150.0), ("bronze", 0.01))
SHOPS: Final = {
    "Milano": ("shop:milano-duomo", "shop:milano-citylife"),
    "Roma": ("shop:roma-termini", "shop:roma-eur"),
    "Napoli": ("shop:napoli-toledo",),
    "Torino": ("shop:torino-lingotto",),
    "Bologna": ("shop:bologna-centro",),
    "Firenze": ("shop:firenze-centro",),
}
EVENT: Final = "event:fiera-milano"
# Where consent was given: Italians mostly in a shop, contacts abroad mostly online.
_CONSENT_IN_ITALY: Final = (("shop", 40), ("web:newsletter", 25), ("web:checkout", 15),
                            ("app", 12), (EVENT, 8))  # fmt: skip
_CONSENT_ABROAD: Final = (("shop", 5), ("web:newsletter", 40), ("web:checkout", 35),
                          ("app", 18), (EVENT, 2))  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoContact:
    phone: phones.PhoneInfo
    name: str
    has_opted_out: bool
    custom_parameters: dict[str, str]


@dataclass(frozen=True)
class Persona:
    """One contact of the cast: what it must be; the rest is drawn as for anyone."""

    country: str
    city: str | None
    plan: str
    spent: float
    signup_days_ago: int
    purchase_days_ago: int | None
    consent: str
    language: str | None = None


# The first contacts of every demo, so each catalogue segment has members however few
# contacts are asked for; never opted out.
CAST: Final = (
    Persona("IT", "Milano", "pro", 820.0, 400, 3, "shop:milano-duomo"),
    Persona("IT", "Roma", "free", 0.0, 45, None, "web:newsletter"),
    Persona("IT", "Torino", "basic", 35.5, 200, 20, "web:checkout"),
    Persona("IT", "Roma", "free", 120.0, 700, 30, "shop:roma-termini"),
    Persona("IT", "Bologna", "business", 2_400.0, 1_500, 10, "shop:bologna-centro"),
    Persona("GB", "London", "basic", 60.0, 300, 15, "web:newsletter"),
    Persona("US", "New York", "pro", 310.0, 900, 45, "web:checkout", language="it"),
    Persona("FR", "Paris", "basic", 95.0, 500, 25, "app"),
    Persona("AU", "Sydney", "free", 20.0, 250, 100, "web:newsletter"),
    Persona("IT", "Napoli", "pro", 180.0, 1_000, 200, "shop:napoli-toledo"),
    Persona("IT", "Bergamo", "basic", 55.0, 12, 5, "app"),
    Persona("IT", None, "free", 40.0, 150, 40, EVENT),
    Persona("IT", "Brescia", "basic", 640.0, 1_200, 75, EVENT),
    Persona("IT", "Firenze", "pro", 90.0, 2_000, 240, "shop:firenze-centro"),
    Persona("CA", "Toronto", "free", 25.0, 60, 30, "web:newsletter"),
    Persona("SE", "Stockholm", "basic", 70.0, 365, 50, "app"),
)


class _Generator:
    def __init__(self, *, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.pools: dict[NumberBlock, _Pool] = {}
        for market in MARKETS:
            for city in market.cities:
                if city.block not in self.pools:
                    self.pools[city.block] = _Pool(city.block, self.rng)
        # Every date the demo can write, formatted once.
        self.days = [(today - timedelta(days=n)).isoformat() for n in range(HISTORY_DAYS + 1)]

    def number(self, market: Market, city: City) -> tuple[Market, City, phones.PhoneInfo]:
        """A number for `city`; when its reserved block is used up, another city of the
        market, then Italy (the reserved ranges abroad hold some 60,000 numbers in all)."""
        e164 = self.pools[city.block].take()
        if e164 is None:
            italy = MARKETS[0]
            fallbacks = [(market, other) for other in market.cities]
            fallbacks += [(italy, other) for other in italy.cities]
            for market, city in fallbacks:  # noqa: B007 - the pair found is returned
                e164 = self.pools[city.block].take()
                if e164 is not None:
                    break
            else:  # pragma: no cover - Italy's block holds 10 million
                raise RuntimeError("the demo's number blocks are used up")
        return market, city, phones.PhoneInfo(e164, market.country, _CONTINENT[market.country])

    def contact(self, persona: Persona | None = None) -> DemoContact:
        rng = self.rng
        if persona is None:
            market = MARKETS[bisect(_MARKET_WEIGHTS, rng.random() * _MARKET_WEIGHTS[-1])]
            weights = _CITY_WEIGHTS[market.country]
            city = market.cities[bisect(weights, rng.random() * weights[-1])]
        else:
            market = _MARKET[persona.country]
            city = next(c for c in market.cities if c.name == (persona.city or "Milano"))
        market, city, phone = self.number(market, city)
        name = f"{rng.choice(market.first_names)} {rng.choice(market.last_names)}"
        if persona is None:
            parameters, opted_out = self.parameters(market, city)
        else:
            parameters, opted_out = self.persona_parameters(persona, market, city), False
        return DemoContact(phone, name, opted_out, parameters)

    def parameters(self, market: Market, city: City) -> tuple[dict[str, str], bool]:
        rng = self.rng
        plan = _PLAN_NAMES[bisect(_PLAN_WEIGHTS, rng.random() * _PLAN_WEIGHTS[-1])]
        # Sign-ups lean recent (the list grows), over the shop's whole history.
        signup = min(int(rng.expovariate(1 / 700)), HISTORY_DAYS)
        purchase: int | None = None
        spent = 0.0
        if rng.random() < 0.8:
            purchase = min(int(rng.expovariate(1 / 110)), signup)
            # Log-normal basket totals (median about 75 EUR), larger on paid plans.
            spent = rng.lognormvariate(4.3, 1.1) * _PLAN_SPEND[plan]
        abroad = market.country != "IT"
        sources, weights = _CONSENT[abroad]
        consent = sources[bisect(weights, rng.random() * weights[-1])]
        if consent == "shop":
            consent = rng.choice(SHOPS.get(city.name) or _ALL_SHOPS)
        language = city.language or market.language
        if abroad and rng.random() < 0.15:
            language = "it"  # Italians abroad
        parameters = self.fill(
            plan,
            city.name if rng.random() < 0.95 else None,
            language if rng.random() < 0.97 else None,
            signup,
            purchase,
            spent,
            consent,
        )
        # Opt-outs grow with a contact's age on the list: 2% for the newest, 6% the oldest.
        opted_out = rng.random() < OPT_OUT_SHARE * (0.5 + signup / HISTORY_DAYS)
        return parameters, opted_out

    def persona_parameters(self, persona: Persona, market: Market, city: City) -> dict[str, str]:
        return self.fill(
            persona.plan,
            persona.city,
            persona.language or city.language or market.language,
            persona.signup_days_ago,
            persona.purchase_days_ago,
            persona.spent,
            persona.consent,
        )

    def fill(  # noqa: PLR0913 - one contact's parameters, in PARAMETER_KEYS order
        self,
        plan: str,
        city: str | None,
        language: str | None,
        signup: int,
        purchase: int | None,
        spent: float,
        consent: str,
    ) -> dict[str, str]:
        parameters = {"plan": plan}
        if city is not None:
            parameters["city"] = city
        if language is not None:
            parameters["language"] = language
        parameters["signup_date"] = self.days[signup]
        if purchase is not None:
            parameters["last_purchase_date"] = self.days[purchase]
        parameters["total_spent"] = f"{spent:.2f}"
        if spent >= _LOWEST_TIER:
            parameters["loyalty_tier"] = next(t for t, floor in LOYALTY_TIERS if spent >= floor)
        parameters["consent_source"] = consent
        return parameters


# Cumulative weights: a draw is one bisect.
_MARKET_WEIGHTS: Final = list(accumulate(market.weight for market in MARKETS))
_CITY_WEIGHTS: Final = {m.country: list(accumulate(c.weight for c in m.cities)) for m in MARKETS}
_PLAN_NAMES: Final = [plan for plan, _ in PLANS]
_PLAN_WEIGHTS: Final = list(accumulate(weight for _, weight in PLANS))
_LOWEST_TIER: Final = LOYALTY_TIERS[-1][1]
_CONTINENT: Final = {m.country: phones.continent_for_country(m.country) for m in MARKETS}
_PLAN_SPEND: Final = {"free": 0.7, "basic": 1.0, "pro": 1.6, "business": 3.0}
_ALL_SHOPS: Final = tuple(shop for shops in SHOPS.values() for shop in shops)
_CONSENT: Final = {
    abroad: ([source for source, _ in table], list(accumulate(weight for _, weight in table)))
    for abroad, table in ((False, _CONSENT_IN_ITALY), (True, _CONSENT_ABROAD))
}


def contacts(count: int, *, seed: int = 1, today: date) -> Iterator[DemoContact]:
    """`count` distinct contacts, one at a time (memory stays flat): the cast first."""
    generator = _Generator(seed=seed, today=today)
    for index in range(count):
        yield generator.contact(CAST[index] if index < len(CAST) else None)


# -- segments ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DemoSegment:
    """One segment of the catalogue, as API parameters in JSON form. A bulk or custom
    segment names the contacts it takes (`picks`); the CLI fills in their numbers or ids
    once it has seen them."""

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    picks: Callable[[DemoContact], bool] | None = None
    limit: int = 0

    def api_params(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, **self.params}


def _flat(
    name: str,
    *rules: tuple[str, str, str],
    countries: tuple[str, ...] = (),
    continents: tuple[str, ...] = (),
) -> DemoSegment:
    params: dict[str, Any] = {}
    if rules:
        params["filters_custom_parameter_key"] = [key for key, _, _ in rules]
        params["filters_custom_parameter_condition"] = [condition for _, condition, _ in rules]
        params["filters_custom_parameter_value"] = [value for _, _, value in rules]
    if countries:
        params["filters_countries"] = list(countries)
    if continents:
        params["filters_continents"] = list(continents)
    return DemoSegment(name, "filter", params)


def _tree(name: str, tree: Mapping[str, Any]) -> DemoSegment:
    return DemoSegment(name, "filter", {"filter": dict(tree)})


def _leaf(key: str, condition: str, value: Any = None) -> dict[str, Any]:
    leaf = {"key": key, "condition": condition}
    return leaf if value is None else {**leaf, "value": value}


def _is_staff_pick(contact: DemoContact) -> bool:
    # The team's own phones: the cast's Italian members, the ones who test every campaign.
    return contact.phone.country_code == "IT" and not contact.has_opted_out


def _met_at_the_fair(contact: DemoContact) -> bool:
    return contact.custom_parameters.get("consent_source") == EVENT


ITALIAN_SPEAKERS_ABROAD: Final = tuple(m.country for m in MARKETS if m.country != "IT")

CATALOGUE: Final = (
    _flat("Clienti Pro a Milano", ("plan", "exact", "pro"), ("city", "exact", "Milano")),
    _flat("VIP: spent over 500", ("total_spent", "bigger_than", "500")),
    _flat("Newsletter opt-in via shop", ("consent_source", "starts_with", "shop:")),
    _flat("Iscritti dal sito web", ("consent_source", "starts_with", "web:")),
    _flat("Opt-in al checkout online", ("consent_source", "ends_with", "checkout")),
    _flat("Mai passati in negozio", ("consent_source", "not_starts_with", "shop:")),
    _flat(
        "Newsletter dal sito, senza acquisto online",
        ("consent_source", "starts_with", "web:"),
        ("consent_source", "not_ends_with", "checkout"),
    ),
    _flat("Contatti non raccolti in fiera", ("consent_source", "not_contains", "event")),
    _flat("Negozio Milano Duomo", ("consent_source", "exact", "shop:milano-duomo")),
    _flat("Clienti dei negozi di Roma", ("consent_source", "contains", "roma")),
    _flat("Platinum members", ("loyalty_tier", "exact", "platinum")),
    _flat("Business accounts", ("plan", "exact", "business")),
    _flat("Iscritti senza acquisti", ("total_spent", "lower_than", "0.01")),
    _flat(
        "Carrello piccolo: sotto 50 €",
        ("total_spent", "bigger_than", "0"),
        ("total_spent", "lower_than", "50"),
    ),
    _flat("Big spender in Europe", ("total_spent", "bigger_than", "1000"), continents=("EU",)),
    _flat("Free a Roma: proposta upgrade", ("plan", "exact", "free"), ("city", "exact", "Roma")),
    _flat(
        "Napoli: spesa oltre 100 €",
        ("city", "exact", "Napoli"),
        ("total_spent", "bigger_than", "100"),
    ),
    _flat(
        "Iscritti via app, piano Basic",
        ("consent_source", "exact", "app"),
        ("plan", "exact", "basic"),
    ),
    _flat("Clienti non italofoni", ("language", "not_exact", "it")),
    _flat("Italiani all'estero", ("language", "exact", "it"), countries=ITALIAN_SPEAKERS_ABROAD),
    _flat("UK customers", countries=("GB",)),
    _flat("Clienti in Francia", countries=("FR",)),
    _flat("USA e Canada", countries=("US", "CA")),
    _flat("Clienti in Oceania", continents=("OC",)),
    DemoSegment("Lista test interna", "custom", picks=_is_staff_pick, limit=5),
    DemoSegment("Fiera Milano: contatti dallo stand", "bulk", picks=_met_at_the_fair, limit=400),
    # Nested filters (docs/filter-trees.md): groups, value lists, presence and dates
    # relative to the day the segment is read, never a calendar date.
    _tree("Inactive for 90 days", _leaf("last_purchase_date", "date_before", "-90d")),
    _tree("Nuovi iscritti: ultimi 30 giorni", _leaf("signup_date", "date_after", "-30d")),
    _tree("Acquisto negli ultimi 7 giorni", _leaf("last_purchase_date", "date_after", "-7d")),
    _tree("Clienti in Lombardia", _leaf("city", "in", ["Milano", "Bergamo", "Brescia", "Monza"])),
    _tree("Gold e Platinum", _leaf("loyalty_tier", "in", ["gold", "platinum"])),
    _tree("Fuori dall'Italia", {"not": {"country": ["IT"]}}),
    _tree("Profilo senza città", _leaf("city", "not_exists")),
    _tree(
        "Clienti fedeli fuori Milano",
        {
            "all": [
                _leaf("loyalty_tier", "in", ["gold", "platinum"]),
                {"country": ["IT"]},
                {"not": _leaf("city", "exact", "Milano")},
            ]
        },
    ),
    # `not_in` also takes contacts without the key: `exists` keeps those whose language
    # is unknown out of a translation's audience.
    _tree(
        "Da tradurre: lingua né italiano né inglese",
        {"all": [_leaf("language", "exists"), _leaf("language", "not_in", ["it", "en"])]},
    ),
    _tree(
        "Win-back: Gold e Platinum fermi da 60 giorni",
        {
            "all": [
                _leaf("loyalty_tier", "in", ["gold", "platinum"]),
                _leaf("last_purchase_date", "date_before", "-60d"),
            ]
        },
    ),
    _tree(
        "Riattivazione: Pro o VIP inattivi da 6 mesi",
        {
            "all": [
                {
                    "any": [
                        _leaf("plan", "exact", "pro"),
                        _leaf("total_spent", "bigger_than", "500"),
                    ]
                },
                _leaf("last_purchase_date", "date_before", "-180d"),
            ]
        },
    ),
)  # fmt: skip


class Picker:
    """Collects, as contacts stream past, the numbers each bulk or custom segment of the
    catalogue takes: the first `limit` contacts it picks, in order."""

    def __init__(self, segments: tuple[DemoSegment, ...]) -> None:
        self.wanted = [segment for segment in segments if segment.picks is not None]
        self.numbers: dict[str, list[str]] = {segment.name: [] for segment in self.wanted}
        self.open = list(self.wanted)

    def see(self, contact: DemoContact) -> None:
        for segment in self.open:
            assert segment.picks is not None
            if segment.picks(contact):
                taken = self.numbers[segment.name]
                taken.append(contact.phone.e164)
                if len(taken) >= segment.limit:
                    self.open = [s for s in self.open if s is not segment]
