"""Throughput of phone normalization: the phonenumbers.parse path against the fast path.

    .venv/bin/python bench/bench_phones.py [--count 100000] [--seed 1]

Two corpora: "world" draws from the example numbers of every region (the worst case for the
library, whose pattern cache thrashes across countries), "italy" is Italian mobiles only
(a typical single-market import). Subscriber digits are randomized, so a share of the numbers
is invalid, as in real uploads. The slow path is measured twice: as shipped, and after
phonenumbers.enable_pattern_cache(), which is process-wide and cannot be undone, so it runs
last.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from segmenti.phones import InvalidPhone, PhoneInfo, normalize_phone, normalize_phone_slow


def world_corpus(rng: random.Random, count: int) -> list[str]:
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                examples.append(phonenumbers.format_number(example, PhoneNumberFormat.E164))
    return [_randomize(rng, rng.choice(examples)) for _ in range(count)]


def italy_corpus(rng: random.Random, count: int) -> list[str]:
    return [f"+393{rng.randrange(10**9):09d}" for _ in range(count)]


def _randomize(rng: random.Random, e164: str) -> str:
    return e164[:-4] + f"{rng.randrange(10_000):04d}"


def formatted(numbers: list[str]) -> list[str]:
    """The same numbers as people type them: 00 prefix, spaces, dots and dashes."""
    return [f"00{n[1:3]} {n[3:6]}.{n[6:9]}-{n[9:]}" for n in numbers]


def rate(fn: Callable[[str], PhoneInfo], numbers: list[str]) -> tuple[float, int]:
    valid = 0
    start = time.perf_counter()
    for number in numbers:
        try:
            fn(number)
        except InvalidPhone:
            continue
        valid += 1
    return len(numbers) / (time.perf_counter() - start), valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpora = {
        "world": world_corpus(rng, args.count),
        "italy": italy_corpus(rng, args.count),
    }
    corpora["world, formatted"] = formatted(corpora["world"])

    # Loads the metadata and builds the fast path's per-calling-code tables, which a server
    # does once; the figures below are for the steady state.
    for numbers in corpora.values():
        rate(normalize_phone, numbers[:5_000])
        rate(normalize_phone_slow, numbers[:5_000])

    print(f"{args.count:,} numbers per corpus, numbers/s (valid share)")
    runs: list[tuple[str, Callable[[str], PhoneInfo]]] = [
        ("slow: phonenumbers.parse", normalize_phone_slow),
        ("fast: normalize_phone", normalize_phone),
    ]
    for label, fn in runs:
        for name, numbers in corpora.items():
            per_second, valid = rate(fn, numbers)
            print(f"  {label:38} {name:17} {per_second:>11,.0f}/s  ({valid / len(numbers):.0%})")
    phonenumbers.enable_pattern_cache()
    for name, numbers in corpora.items():
        rate(normalize_phone_slow, numbers[:5_000])
        per_second, valid = rate(normalize_phone_slow, numbers)
        label = "slow + enable_pattern_cache()"
        print(f"  {label:38} {name:17} {per_second:>11,.0f}/s  ({valid / len(numbers):.0%})")


if __name__ == "__main__":
    main()
