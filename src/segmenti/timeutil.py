"""UTC timestamps, stored naive and rendered as the API's "YYYY-MM-DD HH:MM:SS".

Every reader of the time of day goes through `now()`, so that tests can move the
clock (`clock_at`): filters with dates relative to today change membership at UTC
midnight, and the tests prove it without sleeping until then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime


def _system_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


_clock: Callable[[], datetime] = _system_now


def now() -> datetime:
    """The current UTC time, naive (the injectable clock)."""
    return _clock()


def utcnow() -> datetime:
    return now().replace(microsecond=0)


def today() -> date:
    """The current UTC day: what relative dates in filters (`-30d`) count from."""
    return now().date()


@contextmanager
def clock_at(read: Callable[[], datetime]) -> Iterator[None]:
    """Makes `read` the clock for as long as the block runs (tests, benchmarks)."""
    global _clock
    previous = _clock
    _clock = read
    try:
        yield
    finally:
        _clock = previous


def render(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
