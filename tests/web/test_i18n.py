"""The dashboard in Italian and English over HTTP (TestClient through the real app): which
language a request gets, the switcher and its cookie, `<html lang>`, numbers, dates,
country names, condition words, errors and flash messages in the page's language, and
the API staying English whatever the browser prefers."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from segmenti import errors
from segmenti.checks import check_parameters
from segmenti.contacts import forms as contact_forms
from segmenti.db.engine import Database
from segmenti.forms import Params, parse_choice
from segmenti.paging import Page
from segmenti.segments import service as segments_service
from segmenti.segments import snapshots
from segmenti.segments.forms import filter_from_rows
from segmenti.settings import Settings
from segmenti.web import charts, i18n, messages, pages
from segmenti.webhooks import forms as webhook_forms
from segmenti.webhooks import sender
from segmenti.webhooks import service as webhooks_service
from segmenti.webhooks.deliverer import Deliverer
from tests.conftest import User
from tests.web.test_pages import field_error, sign_in

# The webhook tests' settings (a receiver on loopback allowed, three immediate retries),
# for the webhook pages in Italian; nothing else here depends on them.
from tests.webhooks.conftest import settings as settings  # noqa: PLC0414 - the fixture
from tests.webhooks.receiver import receiving

ITALIAN = {"Accept-Language": "it-IT,it;q=0.9,en;q=0.8"}
# A date and time as the Italian pages show them: `1 dic 2026, 14:05 CET`.
ITALIAN_MOMENT = r"\d{1,2} [a-z]{3} \d{4}, \d\d:\d\d CES?T"


def html_lang(page: str) -> str:
    match = re.search(r'<html lang="([^"]*)">', page)
    assert match, "no <html lang>"
    return match[1]


def script_messages(page: str) -> dict[str, str]:
    match = re.search(r'<script type="application/json" id="script-messages">(.*?)</script>', page)
    assert match, "no script messages"
    decoded: dict[str, str] = json.loads(match[1])
    return decoded


# -- which language -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("it", "it"),
        ("it-IT,it;q=0.9,en-US;q=0.8", "it"),
        ("IT-ch", "it"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9", "en"),  # not supported: English
        ("fr, it;q=0.5, en;q=0.4", "it"),  # the most preferred supported one
        ("en;q=0.5, it;q=0.8", "it"),  # quality, not order
        ("it;q=0, en", "en"),  # q=0 means "not this one"
        ("*", "en"),
        ("", "en"),
        ("it;q=abc", "it"),  # a malformed weight is ignored, not an error
        ("<script>, it", "it"),
        ("x" * 5000, "en"),
        (",".join(["fr"] * 100 + ["it"]), "en"),  # ranges past the 16th are not read
    ],
)
def test_the_language_comes_from_accept_language(header: str, language: str) -> None:
    assert i18n.from_accept_language(header) == language


@pytest.mark.parametrize(
    ("accept", "language"), [(ITALIAN["Accept-Language"], "it"), ("en-GB", "en"), ("de", "en")]
)
def test_a_page_follows_the_browser_in_html_lang_and_content_language(
    client: TestClient, accept: str, language: str
) -> None:
    response = client.get("/sign-in", headers={"Accept-Language": accept})
    assert html_lang(response.text) == language
    assert response.headers["content-language"] == language
    assert "Accept-Language" in response.headers["vary"]


def test_the_sign_in_button_reads_accedi_in_italian_and_sign_in_in_english(
    client: TestClient,
) -> None:
    italian = client.get("/sign-in", headers=ITALIAN).text
    assert '<button type="submit" class="primary">Accedi</button>' in italian
    assert "<title>Accedi · Segmenti</title>" in italian
    english = client.get("/sign-in", headers={"Accept-Language": "en"}).text
    assert '<button type="submit" class="primary">Sign in</button>' in english


# -- the switcher ---------------------------------------------------------------------


def test_every_page_links_to_the_other_language_back_to_itself(alice: User) -> None:
    sign_in(alice)
    for path in ("/segments?search=x&type=filter", "/contacts", "/contacts/import"):
        page = alice.client.get(path, headers=ITALIAN).text
        links = re.findall(
            r'<a href="(/language/[^"]+)" hreflang="(\w+)" lang="\w+">(\w+)</a>', page
        )
        assert [(hreflang, name) for _url, hreflang, name in links] == [("en", "English")]
        url = html.unescape(links[0][0])
        response = alice.client.get(url, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == path
        alice.client.cookies.delete(i18n.COOKIE)


def test_the_switcher_remembers_the_choice_in_a_cookie_over_the_browser(
    client: TestClient,
) -> None:
    response = client.get("/language/it?next=/sign-in", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{i18n.COOKIE}=it;")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "max-age=31536000" in cookie.lower() and "path=/" in cookie.lower()
    # The cookie wins over the browser's preference, both ways.
    assert html_lang(client.get("/sign-in", headers={"Accept-Language": "en"}).text) == "it"
    client.get("/language/en?next=/sign-in")
    assert html_lang(client.get("/sign-in", headers=ITALIAN).text) == "en"


@pytest.mark.parametrize(
    "code", ["fr", "IT", "it-IT", "it;q=1", "en%0d%0aSet-Cookie:%20x=1", "%2e%2e"]
)
def test_an_unsupported_language_sets_no_cookie_and_changes_nothing(
    client: TestClient, code: str
) -> None:
    response = client.get(f"/language/{code}", params={"next": "/contacts"}, follow_redirects=False)
    assert response.status_code in (303, 404)
    assert "set-cookie" not in response.headers
    assert "x=1" not in str(response.headers)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " //evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
        "/%0d%0aSet-Cookie:x=1",  # stays a path: percent-escapes are not decoded here
    ],
)
def test_the_switcher_returns_only_to_a_path_of_this_site(client: TestClient, target: str) -> None:
    response = client.get("/language/it", params={"next": target}, follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "\\" not in location and "evil.example" not in location.split("?")[0].lstrip("/")[:12]
    if target.startswith("/%0d"):
        assert location == target
    else:
        assert location == "/"


def test_a_cookie_with_an_unsupported_value_is_ignored(client: TestClient) -> None:
    client.cookies.set(i18n.COOKIE, '"><script>alert(1)</script>')
    response = client.get("/sign-in", headers=ITALIAN)
    assert html_lang(response.text) == "it" and response.headers["content-language"] == "it"
    assert "<script>alert" not in response.text


# -- what pages show in the language ------------------------------------------------------


def test_numbers_dates_and_zones_follow_the_language() -> None:
    italian = i18n.language("it", "Europe/Rome")
    english = i18n.language("en", "Europe/Rome")
    assert italian.number(1234567) == "1.234.567" and english.number(1234567) == "1,234,567"
    assert italian.moment("2026-12-01 13:05:00") == "1 dic 2026, 14:05 CET"
    assert english.moment("2026-12-01 13:05:00") == "Dec 1, 2026, 2:05\u202fPM CET"
    assert italian.moment(datetime(2026, 7, 1, 12, 0)) == "1 lug 2026, 14:00 CEST"
    assert i18n.language("it", "UTC").moment("2026-12-01 13:05:00") == "1 dic 2026, 13:05 UTC"
    assert italian.moment(None) is None


def test_the_display_time_zone_must_be_a_known_one() -> None:
    with pytest.raises(ValueError, match="SEGMENTI_DISPLAY_TIMEZONE"):
        Settings(display_timezone="Mars/Olympus")
    assert Settings.from_env({"SEGMENTI_DISPLAY_TIMEZONE": "UTC"}).display_timezone == "UTC"


def test_countries_and_continents_are_named_in_the_language() -> None:
    italian = i18n.language("it", "Europe/Rome")
    assert italian.country("DE") == "Germania" and italian.continent("SA") == "America del Sud"
    assert i18n.language("en", "Europe/Rome").country("DE") == "Germany"
    # Each language sorts by its own names: Germany before Italy, Germania after Francia.
    assert [name for _code, name in italian.countries_sorted(["IT", "DE", "FR"])] == [
        "Francia",
        "Germania",
        "Italia",
    ]


def test_a_segment_list_and_page_in_italian(alice: User) -> None:
    for i in range(3):
        alice.make_contact(f"+39 333 100 {i:04d}", custom_parameters={"age": str(30 + i)})
    alice.make_contact("+33 6 12 34 56 78", custom_parameters={"age": "50"})
    segment_id = alice.make_segment(
        name="Adulti",
        filters_custom_parameter_key=["age"],
        filters_custom_parameter_condition=["bigger_than"],
        filters_custom_parameter_value=["20"],
        filters_countries=["IT", "FR"],
        filters_continents=["EU"],
    )
    sign_in(alice)
    listing = alice.client.get("/segments", headers=ITALIAN).text
    assert '<a class="button primary" href="/segments/new">Nuovo segmento</a>' in listing
    assert re.search(r'<td class="nowrap">\d{1,2} [a-z]{3} \d{4}, \d\d:\d\d CES?T</td>', listing)
    assert "1–1 di 1 segmento" in listing
    page = html.unescape(alice.client.get(f"/segments/{segment_id}", headers=ITALIAN).text)
    assert "<code>age</code> maggiore di <q>20</q>" in page
    assert "Il paese è Italia (IT), Francia (FR)" in page
    assert "Il continente è Europa" in page
    assert "1–4 di 4 membri" in page
    assert "<td>Italia</td>" in page and "<td>Francia</td>" in page
    english = html.unescape(
        alice.client.get(f"/segments/{segment_id}", headers={"Accept-Language": "en"}).text
    )
    assert "<code>age</code> is greater than <q>20</q>" in english and "1–4 of 4 members" in english


def test_the_builder_offers_condition_words_and_localized_countries(alice: User) -> None:
    sign_in(alice)
    page = alice.client.get("/segments/new", headers=ITALIAN).text
    assert '<option value="starts_with">inizia con</option>' in page
    assert '<option value="bigger_than">maggiore di</option>' in page
    assert '<option value="exact" selected>è</option>' in page
    assert '<option value="DE">Germania (DE)</option>' in page
    assert '<optgroup label="America del Sud">' in page


def test_a_validation_error_is_shown_in_italian_next_to_its_field(alice: User) -> None:
    token = sign_in(alice)
    response = alice.client.post(
        "/segments/new",
        headers=ITALIAN,
        data={
            "csrf_token": token,
            "action": "save",
            "name": "Anziani",
            "type": "filter",
            "filters_custom_parameter_key[0]": "age",
            "filters_custom_parameter_condition[0]": "bigger_than",
            "filters_custom_parameter_value[0]": "l'anno scorso",
        },
    )
    assert response.status_code == 400
    assert field_error(response.text, "filters_custom_parameter_value[0]") == (
        "filters_custom_parameter_value[0] deve essere un numero per «maggiore di», "
        'ma è "l\'anno scorso"'
    )
    assert "<h2>Impossibile salvare</h2>" in response.text


def test_a_flash_message_is_shown_in_the_language_of_the_page_showing_it(alice: User) -> None:
    token = sign_in(alice)
    response = alice.client.post(
        "/contacts/new",
        headers=ITALIAN,
        data={"csrf_token": token, "action": "save", "phone_number": "+39 333 123 4567"},
    )
    assert '<p class="flash" role="status">Contatto salvato.</p>' in response.text
    assert "<td>Italia</td>" in response.text


def test_the_import_report_in_italian(alice: User) -> None:
    token = sign_in(alice)
    csv_text = "phone_number,name\n+393331234501,Ada\nnot a number,X\n+393331234502,Bo\n"
    response = alice.client.post(
        "/contacts/import",
        headers=ITALIAN,
        data={"csrf_token": token},
        files={"file": ("contacts.csv", csv_text.encode(), "text/csv")},
    )
    page = html.unescape(response.text)
    assert "Contatti creati</th><td>2<" in page and "Non valide (non importate)</th><td>1<" in page
    assert (
        "<td>numero di telefono: sono ammessi solo cifre, spazi, punti, trattini e parentesi</td>"
        in page
    )
    refused = alice.client.post(
        "/contacts/import", headers=ITALIAN, data={"csrf_token": token}, files={"file": ("", b"")}
    )
    assert "scegli un file CSV da importare" in refused.text


def test_an_error_page_in_italian(alice: User) -> None:
    sign_in(alice)
    response = alice.client.get("/segments/999999", headers=ITALIAN)
    assert response.status_code == 404
    assert "<h1>Non trovato</h1>" in response.text and "Torna alla dashboard" in response.text


def test_the_script_gets_its_words_as_json_even_with_apostrophes(alice: User) -> None:
    sign_in(alice)
    page = alice.client.get("/segments/new", headers=ITALIAN).text
    words = script_messages(page)
    assert set(words) == set(pages.SCRIPT_MESSAGE_IDS) and words
    italian = words["The count could not be updated: press “Update the count”."]
    assert "l'anteprima" in italian
    # tojson escapes what could end the script element or start markup.
    raw = re.search(r'id="script-messages">(.*?)</script>', page, re.DOTALL)
    assert raw and "'" not in raw[1] and "<" not in raw[1]


def test_the_api_and_its_errors_stay_english_whatever_the_browser_prefers(alice: User) -> None:
    alice.client.cookies.set(i18n.COOKIE, "it")
    response = alice.post(
        "/api/segments",
        headers=ITALIAN,
        json={
            "name": "x",
            "filters_custom_parameter_key": ["age"],
            "filters_custom_parameter_condition": ["bigger_than"],
            "filters_custom_parameter_value": ["old"],
        },
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["title"] == "Invalid parameter"
    assert error["detail"] == (
        "filters_custom_parameter_value[0] must be a number for bigger_than, got 'old'"
    )
    assert "content-language" not in response.headers


# -- the pages of events, webhooks and snapshots (issue 15) ------------------------------


def test_the_webhook_pages_in_italian(alice: User, db: Database, settings: Settings) -> None:
    token = sign_in(alice)
    listing = alice.client.get("/webhooks", headers=ITALIAN).text
    assert "<title>Webhook · Segmenti</title>" in listing
    assert "<p>Ancora nessun webhook.</p>" in listing
    assert (
        "Ogni webhook riceve lotti firmati di eventi <code>segment.contact_entered</code> e "
        '<code>segment.contact_exited</code> (<a href="/docs">documentazione dell'
    ) in listing
    assert '<button type="submit">Crea il webhook</button>' in listing
    refused = alice.client.post(
        "/webhooks",
        headers=ITALIAN,
        data={
            "csrf_token": token,
            "url": "ftp://example.com/",
            "events[]": ["segment.contact_exited"],
        },
    )
    assert refused.status_code == 400
    assert field_error(refused.text, "url") == (
        "URL rifiutato: l'URL deve iniziare con http:// o https://"
    )
    with receiving() as receiver:
        receiver.statuses = [500] * 4  # the first delivery fails 4 times: retries exhausted
        created = alice.client.post(
            "/webhooks",
            headers=ITALIAN,
            data={
                "csrf_token": token,
                "url": receiver.url,
                "events[]": ["segment.contact_entered", "segment.contact_exited"],
                "segments_ids": "",
            },
        )
        assert created.status_code == 201, created.text
        assert re.search(r"<h1>Webhook \d+ creato</h1>", created.text)
        assert "mostrato <strong>solo questa volta</strong>" in created.text
        webhook_id = alice.get("/api/webhooks").json()["data"][0]["id"]
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331234567")
        assert Deliverer(db, settings).run_once() == 4
        tested = alice.client.post(
            f"/webhooks/{webhook_id}/test", headers=ITALIAN, data={"csrf_token": token}
        )
        assert re.search(
            r'<p class="flash" role="status">Evento di prova inviato; il destinatario ha '
            r"risposto 200 in \d+ ms\.</p>",
            tested.text,
        )
    page = html.unescape(tested.text)
    assert f"<h1>Webhook {webhook_id}</h1>" in page
    assert 'aria-label="Tentativi di consegna"' in page and "<h2>Consegne</h2>" in page
    assert '<button type="submit" data-action="replay">Reinvia</button>' in page
    assert "<dd data-state>disattivato</dd>" in page
    assert re.search(
        r"Disattivato: la consegna \d+ è fallita 4 volte, l'ultima il .+ \(stato 500\); "
        r"tentativi esauriti</p>",
        page,
    )
    assert len(re.findall(rf'<td class="nowrap">{ITALIAN_MOMENT}</td>', page)) == 4
    assert "1–4 di 4 tentativi di consegna" in page
    replayed = alice.client.post(
        f"/webhooks/{webhook_id}/replay",
        headers=ITALIAN,
        data={"csrf_token": token, "after_event_id": "0"},
    )
    assert (
        '<p class="flash" role="status">Gli eventi successivi a 0 saranno inviati di nuovo.</p>'
        in replayed.text
    )
    bad_replay = alice.client.post(
        f"/webhooks/{webhook_id}/replay",
        headers=ITALIAN,
        data={"csrf_token": token, "after_event_id": "ieri"},
    )
    assert bad_replay.status_code == 400
    assert "after_event_id deve essere l&#39;id di un evento" in bad_replay.text
    english = alice.client.get(f"/webhooks/{webhook_id}", headers={"Accept-Language": "en"}).text
    assert 'aria-label="Delivery attempts"' in english and "1–4 of 4 delivery attempts" in english


def test_a_snapshot_and_a_segments_history_in_italian(alice: User) -> None:
    token = sign_in(alice)
    for i in range(3):
        alice.make_contact(f"+39 333 100 {i:04d}")
    segment_id = alice.make_segment(name="Italia", filters_countries=["IT"])
    page = alice.client.get(f"/segments/{segment_id}", headers=ITALIAN).text
    assert "<h2>Storico</h2>" in page and "Istantanee di questo segmento</a>" in page
    assert 'alt="Contatti del segmento negli ultimi 90 giorni' in page
    chart = alice.client.get(f"/segments/{segment_id}/history.svg", headers=ITALIAN)
    assert chart.headers["content-language"] == "it" and "Accept-Language" in chart.headers["vary"]
    assert "<title>Contatti del segmento, ultimi 90 giorni</title>" in chart.text
    assert re.search(r">\d{1,2} [a-z]{3} \d{4}</text>", chart.text), chart.text
    assert "▮ entrati</tspan>" in chart.text and "▮ usciti</tspan>" in chart.text
    english_chart = alice.client.get(f"/segments/{segment_id}/history.svg").text
    assert re.search(r">[A-Z][a-z]{2} \d{1,2}, \d{4}</text>", english_chart), english_chart
    assert "▮ entered</tspan>" in english_chart

    listing = alice.client.get(f"/segments/{segment_id}/snapshots", headers=ITALIAN).text
    assert f'<h1>Istantanee di <a href="/segments/{segment_id}">Italia</a></h1>' in listing
    assert "Ancora nessuna istantanea" in listing
    taken = alice.client.post(
        f"/segments/{segment_id}/snapshots", headers=ITALIAN, data={"csrf_token": token}
    )
    assert '<p class="flash" role="status">Istantanea creata.</p>' in taken.text
    assert re.search(r"<h1>Istantanea \d+</h1>", taken.text)
    assert re.search(rf"<dt>Creata</dt><dd>{ITALIAN_MOMENT}</dd>", taken.text)
    assert 'aria-label="Membri come erano allora"' in taken.text
    assert taken.text.count('<td data-status="active">attivo</td>') == 3
    assert "<td>Italia</td>" in taken.text and "1–3 di 3 membri" in taken.text
    listing = alice.client.get(f"/segments/{segment_id}/snapshots", headers=ITALIAN).text
    assert re.search(rf'<td class="nowrap">{ITALIAN_MOMENT}</td><td>3</td>', listing)
    assert "1–1 di 1 istantanea" in listing


def test_the_history_chart_draws_numbers_and_dates_in_the_language() -> None:
    rows = [
        {"date": "2026-11-30", "total_contacts": 1234567, "entered": 3, "exited": 1},
        {"date": "2026-12-01", "total_contacts": 1234569, "entered": 2, "exited": 0},
    ]
    italian = charts.history_svg(rows, days=90, language=i18n.language("it", "Europe/Rome"))
    assert ">1.234.569</text>" in italian and ">30 nov 2026</text>" in italian
    assert ">1 dic 2026</text>" in italian
    english = charts.history_svg(rows, days=90, language=i18n.language("en", "Europe/Rome"))
    assert ">1,234,569</text>" in english and ">Nov 30, 2026</text>" in english
    empty = charts.history_svg([], days=90, language=i18n.language("it", "Europe/Rome"))
    assert "Ancora nessuno storico" in empty


# -- the message table ------------------------------------------------------------------


def test_every_error_title_has_words_in_the_catalogs() -> None:
    def subclasses(kind: type) -> list[type]:
        return [kind, *(s for sub in kind.__subclasses__() for s in subclasses(sub))]

    titles = {kind.title for kind in subclasses(errors.SegmentiError)}  # type: ignore[attr-defined]
    assert titles <= set(messages.ERROR_TITLES)
    italian = i18n.language("it", "UTC")
    assert all(italian.gettext(title) != title for title in messages.ERROR_TITLES)


@pytest.mark.parametrize("sentence", messages.SENTENCES)
def test_every_fixed_sentence_is_translated(sentence: str) -> None:
    assert messages.translate(i18n.language("it", "UTC"), sentence) not in (None, sentence)


def _raised(make: Callable[[], object]) -> str:
    with pytest.raises(errors.SegmentiError) as caught:
        make()
    detail = caught.value.detail
    assert detail
    return detail


def _rows(*rows: tuple[str, str, str], countries: list[str] | None = None) -> object:
    return filter_from_rows(
        [(index, *row) for index, row in enumerate(rows)],
        countries=countries,
        continents=None,
        max_conditions=3,
    )


# Errors the dashboard's forms can meet, raised by the real services: each one's English
# must be matched by the message table, so a reworded service message fails here rather
# than showing English on an Italian page.
SERVICE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("not a number", lambda: _rows(("age", "bigger_than", "old")), "deve essere un numero"),
    ("key too long", lambda: _rows(("k" * 65, "exact", "x")), "deve avere da 1 a 64"),
    ("value too long", lambda: _rows(("k", "exact", "v" * 600)), "al massimo 512"),
    ("NUL in a key", lambda: _rows(("k\x00", "exact", "v")), "caratteri NUL"),
    ("too many conditions", lambda: _rows(*[("k", "exact", "v")] * 4), "al massimo 3 condizioni"),
    ("unknown condition", lambda: _rows(("k", "near", "v")), "condizione sconosciuta"),
    ("unknown country", lambda: _rows(countries=["XX"]), "sconosciut"),
    ("bad phone", lambda: contact_forms.phone_number("12"), "numero di telefono '12'"),
    ("long name", lambda: contact_forms.contact_name("n" * 300), "deve avere da 0 a 256"),
    (
        "key with a space",
        lambda: check_parameters([("custom_parameter_key[0]", " plan", "pro")]),
        "non deve iniziare",
    ),
    (
        "bad bulk numbers",
        lambda: segments_service.normalize_bulk(["12", "+39 333 123 4567"], limit=10),
        "I primi: #1 '12': manca il prefisso internazionale",
    ),
    (
        "too many bulk numbers",
        lambda: segments_service.normalize_bulk(["+39 333 123 4567", "+39 333 123 4568"], limit=1),
        "al massimo 1 numeri",
    ),
    ("bad ids", lambda: segments_service.parse_contacts_ids(["x"]), "interi positivi"),
    ("no ids", lambda: segments_service.parse_contacts_ids([""]), "almeno un id"),
    ("bad page", lambda: Page.parse("0", None), "deve essere un intero da 1"),
    ("bad page size", lambda: Page.parse(None, "7"), "deve essere uno tra"),
    ("bad type", lambda: parse_choice("type", "x", ("filter",), None), "deve essere uno tra"),
    # Webhooks (issue 15): the form's fields
    ("no url", lambda: _webhook(("events", "segment.contact_entered")), "l'URL è obbligatorio"),
    ("no events", lambda: _webhook(("url", "https://example.com/")), "gli eventi sono obbligatori"),
    ("empty events", lambda: _webhook(*_URL, ("events", ",")), "scegli almeno un evento tra"),
    (
        "unknown event",
        lambda: _webhook(*_URL, ("events", "segment.moved")),
        "gli eventi devono essere tra segment.contact_entered, segment.contact_exited, ma è",
    ),
    (
        "bad segments ids",
        lambda: _webhook(*_URL, *_EVENTS, ("segments_ids", "x")),
        "segments_ids devono essere interi positivi",
    ),
    (
        "too many segments ids",
        lambda: _webhook(*_URL, *_EVENTS, ("segments_ids", ",".join(map(str, range(1, 1100))))),
        "al massimo 1000 segmenti",
    ),
    (
        "bad event id",
        lambda: webhook_forms.event_id("after_event_id", "ieri"),
        "after_event_id deve essere l'id di un evento (un intero da 0 a",
    ),
    ("bad segment id", lambda: webhook_forms.segment_id("x"), "deve essere l'id di un segmento"),
    # ... and why a URL is refused (SSRF), as checked when a webhook is written
    ("not http", lambda: _refused("ftp://example.com/"), "deve iniziare con http:// o https://"),
    ("no host", lambda: _refused("http:///hook"), "l'URL non ha un host"),
    ("credentials", lambda: _refused("https://u:p@example.com/"), "nome utente o password"),
    ("control character", lambda: _refused("https://exa\tmple.com/"), "caratteri di controllo"),
    ("long url", lambda: _refused("https://example.com/" + "a" * 2100), "supera i 2048 caratteri"),
    ("bad port", lambda: _refused("http://example.com:99999/"), "l'URL non è valido: Port out"),
    ("loopback", lambda: _refused("http://127.0.0.1/"), "un indirizzo di loopback"),
    ("loopback v6", lambda: _refused("http://[::1]/"), "un indirizzo di loopback"),
    (
        "private",
        lambda: _refused("http://10.1.2.3/"),
        "corrisponde a 10.1.2.3, un indirizzo privato",
    ),
    ("link-local", lambda: _refused("http://169.254.169.254/"), "un indirizzo link-local"),
    ("unspecified", lambda: _refused("http://0.0.0.0/"), "un indirizzo non specificato"),
    ("multicast", lambda: _refused("http://224.0.0.1/"), "un indirizzo multicast"),
    ("reserved", lambda: _refused("http://[::2]/"), "un indirizzo riservato"),
    ("unique-local", lambda: _refused("http://[fc00::1]/"), "un indirizzo privato"),
    ("shared", lambda: _refused("http://100.64.0.1/"), "non è un indirizzo pubblico"),
    (
        "inside IPv6",
        lambda: _refused("http://[::ffff:10.0.0.1]/"),
        "un indirizzo privato (dentro un indirizzo IPv6)",
    ),
]

_URL = (("url", "https://example.com/"),)
_EVENTS = (("events", "segment.contact_entered"),)


def _webhook(*pairs: tuple[str, str]) -> object:
    return webhook_forms.webhook_input(Params.from_pairs(list(pairs)), creating=True)


def _refused(url: str) -> None:
    """The check a webhook's URL passes when written, as the dashboard makes it (no DNS:
    every host here is an address literal)."""
    webhooks_service.check_input(
        webhooks_service.WebhookInput(url=url), Settings(webhooks_allow_private=False)
    )


@pytest.mark.parametrize(
    ("make", "italian"),
    [pytest.param(make, italian, id=name) for name, make, italian in SERVICE_ERRORS],
)
def test_service_errors_reach_an_italian_page_translated(
    make: Callable[[], object], italian: str
) -> None:
    english = _raised(make)
    translated = messages.translate(i18n.language("it", "UTC"), english)
    assert translated is not None, f"no translation for {english!r}"
    assert italian in translated, translated
    assert messages.translate(i18n.language("en", "UTC"), english) == english


def test_a_refused_delivery_attempt_is_shown_in_italian() -> None:
    """The deliverer's own check of the address, as an attempt's error records it."""
    outcome = sender.post(
        "http://10.1.2.3/hook",
        b"{}",
        {},
        allow_private=False,
        connect_timeout=1,
        total_timeout=1,
    )
    assert outcome.error is not None
    translated = messages.translate(i18n.language("it", "UTC"), outcome.error)
    assert translated == "rifiutato: l'host '10.1.2.3' corrisponde a 10.1.2.3, un indirizzo privato"


def test_the_snapshot_limit_is_shown_in_italian(alice: User, db: Database) -> None:
    segment_id = alice.make_segment(filters_countries=["IT"])
    english = _raised(
        lambda: snapshots.create_snapshot(
            db, user_id=alice.id, segment_id=segment_id, settings=Settings(snapshots_per_user=0)
        )
    )
    assert messages.translate(i18n.language("it", "UTC"), english) == (
        "un utente può conservare al massimo 0 istantanee: eliminane prima una"
    )


def test_a_missing_webhook_or_snapshot_is_named_in_italian(alice: User) -> None:
    sign_in(alice)
    for path, italian in (
        ("/webhooks/999999", "il webhook 999999 non esiste"),
        ("/snapshots/999999", "l&#39;istantanea 999999 non esiste"),
    ):
        response = alice.client.get(path, headers=ITALIAN)
        assert response.status_code == 404
        assert f"<p>{italian}</p>" in response.text


@pytest.mark.parametrize(
    ("body", "italian"),
    [
        (b"", "il file è vuoto"),
        (b"name,plan\nAda,pro\n", "l'intestazione non ha la colonna phone_number"),
        (b"phone_number\n+393331234567\n\xff\xfe\n", "il file non è testo UTF-8"),
    ],
)
def test_import_errors_are_shown_in_italian(alice: User, body: bytes, italian: str) -> None:
    token = sign_in(alice)
    response = alice.client.post(
        "/contacts/import",
        headers=ITALIAN,
        data={"csrf_token": token},
        files={"file": ("contacts.csv", body, "text/csv")},
    )
    assert response.status_code == 400
    error = re.search(
        r'<p class="notice error" role="alert" id="file-error"([^>]*)>([^<]*)', response.text
    )
    assert error and 'lang="en"' not in error[1]
    assert italian in html.unescape(error[2])


def test_an_error_the_table_does_not_know_is_shown_in_english_marked_as_such(
    alice: User,
) -> None:
    sign_in(alice)
    response = alice.client.get("/segments?results_per_page=abc", headers=ITALIAN)
    assert response.status_code == 400
    page = html.unescape(response.text)
    assert "<h1>Parametro non valido</h1>" in page
    english = i18n.language("it", "UTC")
    unknown = errors.Invalid("a message no pattern knows")
    assert messages.translate(english, unknown.detail or "") is None
