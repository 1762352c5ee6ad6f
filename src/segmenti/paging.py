"""Page parameters shared by every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from segmenti import errors

RESULTS_PER_PAGE = (10, 25, 50, 100, 250, 500, 1000)
DEFAULT_RESULTS_PER_PAGE = 25
MAX_PAGE = 10**9


@dataclass(frozen=True)
class Page:
    number: int = 1
    size: int = DEFAULT_RESULTS_PER_PAGE

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @classmethod
    def parse(cls, page: str | None, results_per_page: str | None) -> Page:
        number = 1
        if page is not None:
            text = page.strip()
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
                raise errors.Invalid(
                    f"page must be an integer from 1 to {MAX_PAGE}, got {page[:40]!r}",
                    parameter="page",
                )
            number = int(text)
        size = DEFAULT_RESULTS_PER_PAGE
        if results_per_page is not None:
            text = results_per_page.strip()
            if not (text.isascii() and text.isdigit()) or int(text) not in RESULTS_PER_PAGE:
                allowed = ", ".join(map(str, RESULTS_PER_PAGE))
                raise errors.Invalid(
                    f"results_per_page must be one of {allowed}, got {results_per_page[:40]!r}",
                    parameter="results_per_page",
                )
            size = int(text)
        return cls(number, size)

    def total_pages(self, total: int) -> int:
        return (total + self.size - 1) // self.size
