"""The dashboard's words for what the services say in English.

Services raise errors in the API's words, and the API and the CLI keep them (clients
depend on them). A dashboard page shows them in its own language: an error's title
and detail, and an import report's reasons, are looked up here. A message the catalog
holds as is (a fixed sentence) is translated directly; one with values in it is
matched by one of `PATTERNS`, and its values are put into the translated sentence
(condition names as the words the form shows). A detail no pattern knows is shown in
English, marked `lang="en"` by the templates (`Language.is_translated`).

tests/web/test_i18n.py produces these messages from the real services and checks that
each one reaches an Italian page translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from segmenti.membership import conditions
from segmenti.web.i18n import DEFAULT, N_, Language

# The conditions' words, by the condition registry's ids (the registry keeps the API's
# English labels; these are the dashboard's, in its catalogs).
CONDITION_WORDS = {
    "exact": N_("is"),
    "not_exact": N_("is not"),
    "contains": N_("contains"),
    "not_contains": N_("does not contain"),
    "starts_with": N_("starts with"),
    "not_starts_with": N_("does not start with"),
    "ends_with": N_("ends with"),
    "not_ends_with": N_("does not end with"),
    "bigger_than": N_("is greater than"),
    "lower_than": N_("is less than"),
    "in": N_("is one of"),
    "not_in": N_("is none of"),
    "exists": N_("is present"),
    "not_exists": N_("is absent"),
    "date_after": N_("is a date after"),
    "date_before": N_("is a date before"),
}
assert set(CONDITION_WORDS) == set(conditions.REGISTRY), "a condition has no words"

# Every error title (errors.SegmentiError and its subclasses; tests check the list).
ERROR_TITLES = (
    N_("Internal server error"),
    N_("Invalid parameter"),
    N_("Unauthorized"),
    N_("Forbidden"),
    N_("Not found"),
    N_("Method not allowed"),
    N_("Conflict"),
    N_("Cannot distribute"),
    N_("Idempotency key reused"),
    N_("Request timeout"),
    N_("Payload too large"),
    N_("Unsupported media type"),
    N_("Too many requests"),
    N_("Service unavailable"),
    N_("Query took too long"),
    N_("Import stopped"),
    N_("Invalid file"),
)

# Fixed sentences of the services and the dashboard's own errors.
SENTENCES = (
    N_("enter an API key"),
    N_("unknown or revoked API key"),
    N_("choose a CSV file to import"),
    N_("name is required"),
    N_("phone_number is required"),
    N_("contacts_ids must list at least one id"),
    N_("phone_numbers must list at least one number"),
    N_("the query string must not contain NUL characters"),
    N_("this form has expired or did not come from this site: reload the page and send it again"),
    N_("the file is empty: the first line must name the columns"),
    N_("the header has no phone_number column"),
    # Why a phone number is refused (phones.InvalidPhone reasons)
    N_("not a valid phone number"),
    N_("unknown country code"),
    N_("missing country code: start with + or 00"),
    N_("empty phone number"),
    N_("too long for a phone number"),
    N_("+ is only allowed at the start"),
    N_("only digits, spaces, dots, dashes and brackets are allowed"),
    # An import's row reasons
    N_("has_opted_out: must be 1/0, true/false or yes/no"),
    N_("NUL characters are not allowed"),
    # Webhooks (issue 15): the form, and why a URL is refused (webhooks/addresses.py)
    N_("url is required"),
    N_("the URL contains spaces or control characters"),
    N_("the URL must start with http:// or https://"),
    N_("the URL has no host"),
    N_("the URL must not carry a user name or password"),
    N_("an unspecified address"),
    N_("a loopback address"),
    N_("a link-local address"),
    N_("a multicast address"),
    N_("a private address"),
    N_("a reserved address"),
    N_("not a public address"),
    N_("no answer"),
)

# Where an entry of a list of bad ones was (`line 3: ...` of an import's invalid rows).
LINE = N_("line %(line)s")
_LISTED_LINE = re.compile(r"^line (?P<line>\d+)$")


@dataclass(frozen=True)
class Pattern:
    """An English message with values in it, and the sentence it becomes. Named groups
    are the sentence's placeholders; `reason` is itself translated, `condition` shown
    as the condition's words."""

    english: re.Pattern[str]
    sentence: str


def _pattern(regex: str, sentence: str) -> Pattern:
    return Pattern(re.compile(regex, re.DOTALL), sentence)


_FIELD = r"(?P<field>[\w\[\]\-]+)"
_QUOTED = r"(?P<value>'.*'|\".*\")"

PATTERNS = (
    _pattern(
        rf"^{_FIELD} must be a number for (?P<condition>\w+), got {_QUOTED}$",
        N_("%(field)s must be a number for “%(condition)s”, got %(value)s"),
    ),
    _pattern(
        rf"^{_FIELD} must be (?P<low>\d+) to (?P<high>\d+) characters, got (?P<got>\d+)$",
        N_("%(field)s must be %(low)s to %(high)s characters, got %(got)s"),
    ),
    _pattern(
        rf"^{_FIELD} must be (?P<low>\d+) to (?P<high>\d+) characters$",
        N_("%(field)s must be %(low)s to %(high)s characters"),
    ),
    _pattern(
        rf"^{_FIELD} must be at most (?P<high>\d+) characters$",
        N_("%(field)s must be at most %(high)s characters"),
    ),
    _pattern(
        rf"^{_FIELD} must not contain NUL characters$",
        N_("%(field)s must not contain NUL characters"),
    ),
    _pattern(
        rf"^{_FIELD} {_QUOTED} must not begin or end with a space$",
        N_("%(field)s %(value)s must not begin or end with a space"),
    ),
    _pattern(
        rf"^{_FIELD} has no (?P<other>[\w\[\]]+)$",
        N_("%(field)s has no %(other)s"),
    ),
    _pattern(
        rf"^{_FIELD} must be one of (?P<allowed>.*), got {_QUOTED}$",
        N_("%(field)s must be one of %(allowed)s, got %(value)s"),
    ),
    _pattern(
        rf"^{_FIELD} must be an integer from 1 to (?P<high>\d+), got {_QUOTED}$",
        N_("%(field)s must be an integer from 1 to %(high)s, got %(value)s"),
    ),
    _pattern(
        rf"^phone_number {_QUOTED}: (?P<reason>.*)$",
        N_("phone_number %(value)s: %(reason)s"),
    ),
    _pattern(
        r"^phone_number: (?P<reason>.*)$",
        N_("phone_number: %(reason)s"),
    ),
    _pattern(
        r"^a contact with phone number (?P<phone>\S+) already exists$",
        N_("a contact with phone number %(phone)s already exists"),
    ),
    _pattern(
        r"^(?P<count>\d+) invalid phone number\(s\), nothing was saved\. First: (?P<listed>.*)$",
        N_("%(count)s invalid phone number(s), nothing was saved. First: %(listed)s"),
    ),
    _pattern(
        r"^a bulk segment takes at most (?P<high>\d+) distinct phone numbers, got (?P<got>\d+)$",
        N_("a bulk segment takes at most %(high)s distinct phone numbers, got %(got)s"),
    ),
    _pattern(
        rf"^contacts_ids must be positive integers, got {_QUOTED}$",
        N_("contacts_ids must be positive integers, got %(value)s"),
    ),
    _pattern(
        r"^(?P<count>\d+) of contacts_ids are not your contacts: (?P<listed>.*)$",
        N_("%(count)s of contacts_ids are not your contacts: %(listed)s"),
    ),
    _pattern(
        r"^a filter takes at most (?P<high>\d+) conditions, got (?P<got>\d+)$",
        N_("a filter takes at most %(high)s conditions, got %(got)s"),
    ),
    _pattern(
        rf"^{_FIELD}: unknown ISO 3166-1 alpha-2 country {_QUOTED}$",
        N_("%(field)s: unknown country %(value)s (an ISO 3166-1 alpha-2 code)"),
    ),
    _pattern(
        rf"^{_FIELD}: unknown continent \(AF, AN, AS, EU, NA, OC, SA\) {_QUOTED}$",
        N_("%(field)s: unknown continent %(value)s (AF, AN, AS, EU, NA, OC, SA)"),
    ),
    _pattern(
        r"^(?P<reason>.+): nothing was written$",
        N_("%(reason)s: nothing was written"),
    ),
    _pattern(
        r"^(?P<reason>.+): (?P<batches>\d+) batch\(es\) were committed, covering lines 2 to "
        r"(?P<line>\d+); the rest was not written$",
        N_(
            "%(reason)s: %(batches)s batch(es) were committed, covering lines 2 to %(line)s; "
            "the rest was not written"
        ),
    ),
    _pattern(
        rf"^{_FIELD}: unknown condition {_QUOTED}; allowed: (?P<allowed>.*)$",
        N_("%(field)s: unknown condition %(value)s; allowed: %(allowed)s"),
    ),
    _pattern(
        r"^(?P<count>\d+) invalid row\(s\), nothing was imported\. First: (?P<listed>.*)$",
        N_("%(count)s invalid row(s), nothing was imported. First: %(listed)s"),
    ),
    _pattern(
        r"^the file is not UTF-8 text \(near line (?P<line>\d+)\): save it as CSV UTF-8$",
        N_("the file is not UTF-8 text (near line %(line)s): save it as CSV UTF-8"),
    ),
    _pattern(
        r"^line (?P<line>\d+): the file is not valid CSV \((?P<why>.*)\)$",
        N_("line %(line)s: the file is not valid CSV (%(why)s)"),
    ),
    _pattern(
        r"^(?P<field>[^:]+): at most (?P<high>\d+) characters, got (?P<got>\d+)$",
        N_("%(field)s: at most %(high)s characters, got %(got)s"),
    ),
    _pattern(
        r"^the form body could not be read: (?P<why>.*)$",
        N_("the form body could not be read: %(why)s"),
    ),
    # Webhooks and snapshots (issue 15): their forms, services and deliverer.
    _pattern(
        rf"^{_FIELD} must be positive integers, got {_QUOTED}$",
        N_("%(field)s must be positive integers, got %(value)s"),
    ),
    _pattern(
        rf"^events must be among (?P<allowed>.*), got {_QUOTED}$",
        N_("events must be among %(allowed)s, got %(value)s"),
    ),
    _pattern(
        r"^events must list one of (?P<allowed>.*)$",
        N_("events must list one of %(allowed)s"),
    ),
    _pattern(
        r"^events is required: (?P<allowed>.*)$",
        N_("events is required: %(allowed)s"),
    ),
    _pattern(
        r"^segments_ids may name at most (?P<high>\d+) segments$",
        N_("segments_ids may name at most %(high)s segments"),
    ),
    _pattern(
        r"^segments_ids names segments that do not exist: (?P<ids>.*)$",
        N_("segments_ids names segments that do not exist: %(ids)s"),
    ),
    _pattern(
        rf"^{_FIELD} must be an event id \(an integer from 0 to (?P<high>\d+)\), got {_QUOTED}$",
        N_("%(field)s must be an event id (an integer from 0 to %(high)s), got %(value)s"),
    ),
    _pattern(
        rf"^segment_id must be a segment id, got {_QUOTED}$",
        N_("segment_id must be a segment id, got %(value)s"),
    ),
    _pattern(
        r"^a user may have at most (?P<high>\d+) webhooks$",
        N_("a user may have at most %(high)s webhooks"),
    ),
    _pattern(
        r"^a user may keep at most (?P<high>\d+) snapshots: delete one first$",
        N_("a user may keep at most %(high)s snapshots: delete one first"),
    ),
    _pattern(
        r"^webhook (?P<id>\d+) does not exist$",
        N_("webhook %(id)s does not exist"),
    ),
    _pattern(
        r"^snapshot (?P<id>\d+) does not exist$",
        N_("snapshot %(id)s does not exist"),
    ),
    _pattern(
        r"^url is refused: (?P<reason>.*)$",
        N_("url is refused: %(reason)s"),
    ),
    _pattern(
        r"^refused: (?P<reason>.*)$",
        N_("refused: %(reason)s"),
    ),
    _pattern(
        r"^the URL is longer than (?P<high>\d+) characters$",
        N_("the URL is longer than %(high)s characters"),
    ),
    _pattern(
        r"^the URL is not valid: (?P<why>.*)$",
        N_("the URL is not valid: %(why)s"),
    ),
    _pattern(
        rf"^the host {_QUOTED} could not be resolved$",
        N_("the host %(value)s could not be resolved"),
    ),
    _pattern(
        r"^the host (?P<value>'.*'|\".*\") resolves to (?P<address>\S+), (?P<reason>.*)$",
        N_("the host %(value)s resolves to %(address)s, %(reason)s"),
    ),
    _pattern(
        r"^(?P<reason>.+) \(inside an IPv6 address\)$",
        N_("%(reason)s (inside an IPv6 address)"),
    ),
    _pattern(
        r"^timed out after (?P<seconds>[\d.]+) s$",
        N_("timed out after %(seconds)s s"),
    ),
    _pattern(
        r"^the receiver answered 410 Gone on (?P<when>.*)$",
        N_("the receiver answered 410 Gone on %(when)s"),
    ),
    _pattern(
        r"^delivery (?P<id>\d+) failed (?P<count>\d+) times, the last on (?P<when>[^(]*) "
        r"\((?P<reason>.*)\); retries exhausted$",
        N_(
            "delivery %(id)s failed %(count)s times, the last on %(when)s (%(reason)s); "
            "retries exhausted"
        ),
    ),
    _pattern(
        r"^status (?P<status>\d+)$",
        N_("status %(status)s"),
    ),
    # The dashboard's own flash messages with values (events_views.py).
    _pattern(
        r"^Test event sent; the receiver answered (?P<status>\d+) in (?P<ms>\d+) ms\.$",
        N_("Test event sent; the receiver answered %(status)s in %(ms)s ms."),
    ),
    _pattern(
        r"^Test event sent; the receiver failed: (?P<reason>.*)\.$",
        N_("Test event sent; the receiver failed: %(reason)s."),
    ),
    _pattern(
        r"^Events after (?P<id>\d+) will be sent again\.$",
        N_("Events after %(id)s will be sent again."),
    ),
)


def translate(language: Language, english: str) -> str | None:
    """`english` (a service's message) in `language`, or None when the catalog has no
    translation for it (the page then shows it as it is, marked as English)."""
    if language.code == DEFAULT:
        return english
    fixed = language.gettext(english)
    if fixed != english:
        return fixed
    for pattern in PATTERNS:
        match = pattern.english.match(english)
        if match is None:
            continue
        sentence = language.gettext(pattern.sentence)
        if sentence == pattern.sentence:
            return None
        values = match.groupdict()
        if "condition" in values:
            words = CONDITION_WORDS.get(values["condition"])
            values["condition"] = language.gettext(words) if words else values["condition"]
        if "reason" in values:
            values["reason"] = translate(language, values["reason"]) or values["reason"]
        if "listed" in values:
            values["listed"] = _translate_listed(language, values["listed"])
        return sentence % values
    return None


def _translate_listed(language: Language, listed: str) -> str:
    """The first bad entries of an error (`#2 '12': not a valid phone number; ...`,
    `line 3: phone_number: ...`), each one's reason translated where the catalog can."""
    entries = []
    for entry in listed.split("; "):
        where, _, reason = entry.partition(": ")
        line = _LISTED_LINE.match(where)
        if line is not None:
            where = language.gettext(LINE) % {"line": line["line"]}
        reason = translate(language, reason) or reason if reason else reason
        entries.append(f"{where}: {reason}" if reason else where)
    return "; ".join(entries)
