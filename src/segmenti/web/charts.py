"""A segment's history as a picture: an SVG drawn here, on the server (no script, no
chart library, nothing fetched). Presentation attributes only, no <style>: the SVG is
served under a policy that allows no style sheet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from xml.sax.saxutils import escape

from segmenti.web.i18n import N_, Language

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 34
TOTAL_COLOUR = "#2458a6"
ENTERED_COLOUR = "#2e7d32"
EXITED_COLOUR = "#c62828"

TITLE = N_("Contacts of the segment, last %(days)s days")
EMPTY = N_("No history yet")
TOTAL_LABEL = N_("contacts")
ENTERED_LABEL = N_("entered")
EXITED_LABEL = N_("exited")


def history_svg(rows: Sequence[Mapping[str, Any]], *, days: int, language: Language) -> str:
    """The total as a line, with each day's entries (up) and exits (down) as bars; its
    words, numbers and dates in `language`."""
    title = language.gettext(TITLE) % {"days": language.number(days)}
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    if not rows:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#666666">'
            f"{escape(language.gettext(EMPTY))}</text></svg>"
        )
        return "".join(parts)
    top = max(max(int(r["total_contacts"]) for r in rows), 1)
    moves = max(max(int(r["entered"]), int(r["exited"])) for r in rows) or 1
    step = plot_w / max(len(rows) - 1, 1)
    bar = max(min(step * 0.6, 14.0), 1.0)
    mid_bar_h = plot_h * 0.18  # entries/exits drawn in a band at the bottom

    def x(index: int) -> float:
        return LEFT + (index * step if len(rows) > 1 else plot_w / 2)

    def y(total: int) -> float:
        return TOP + plot_h - (total / top) * (plot_h - mid_bar_h)

    for fraction in (0.0, 0.5, 1.0):
        value = round(top * fraction)
        level = y(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{level:.1f}" x2="{WIDTH - RIGHT}" y2="{level:.1f}" '
            'stroke="#dddddd"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" fill="#555555">'
            f"{escape(language.number(value))}</text>"
        )
    base = TOP + plot_h
    for index, row in enumerate(rows):
        up = int(row["entered"]) / moves * mid_bar_h / 2
        down = int(row["exited"]) / moves * mid_bar_h / 2
        centre = base - mid_bar_h / 2
        if up:
            parts.append(
                f'<rect x="{x(index) - bar / 2:.1f}" y="{centre - up:.1f}" width="{bar:.1f}" '
                f'height="{up:.1f}" fill="{ENTERED_COLOUR}"/>'
            )
        if down:
            parts.append(
                f'<rect x="{x(index) - bar / 2:.1f}" y="{centre:.1f}" width="{bar:.1f}" '
                f'height="{down:.1f}" fill="{EXITED_COLOUR}"/>'
            )
    points = " ".join(f"{x(i):.1f},{y(int(r['total_contacts'])):.1f}" for i, r in enumerate(rows))
    if len(rows) == 1:
        parts.append(
            f'<circle cx="{x(0):.1f}" cy="{y(int(rows[0]["total_contacts"])):.1f}" r="4" '
            f'fill="{TOTAL_COLOUR}"/>'
        )
    else:
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{TOTAL_COLOUR}" stroke-width="2"/>'
        )
    first, last = rows[0]["date"], rows[-1]["date"]
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 10}" fill="#555555">{escape(_day(language, first))}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 10}" text-anchor="end" fill="#555555">'
        f"{escape(_day(language, last))}</text>"
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 10}" text-anchor="middle" fill="#555555">'
        f'<tspan fill="{TOTAL_COLOUR}">— {escape(language.gettext(TOTAL_LABEL))}</tspan>  '
        f'<tspan fill="{ENTERED_COLOUR}">▮ {escape(language.gettext(ENTERED_LABEL))}</tspan>  '
        f'<tspan fill="{EXITED_COLOUR}">▮ {escape(language.gettext(EXITED_LABEL))}</tspan></text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _day(language: Language, value: date | str) -> str:
    """A history row's date (a `date`, or its ISO text) in the language."""
    return language.day(value if isinstance(value, date) else date.fromisoformat(str(value)))
