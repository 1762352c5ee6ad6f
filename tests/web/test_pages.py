"""The dashboard over HTTP (TestClient through the real app): sign-in, the form token,
tenancy, errors next to their fields in the API's words, and the forms' effects."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from segmenti import auth
from segmenti.db.engine import Database
from segmenti.db.tables import MAX_ID
from segmenti.membership import filters
from segmenti.membership.counts import count_filter
from segmenti.settings import Settings
from segmenti.web import SESSION_COOKIE, sessions
from segmenti.web.pages import field_id
from tests.conftest import User

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(client: TestClient, path: str = "/sign-in") -> str:
    match = TOKEN.search(client.get(path).text)
    assert match, f"no form token on {path}"
    return match[1]


def sign_in(user: User) -> str:
    """Signs the user in through the form; returns the session's form token."""
    response = user.client.post(
        "/sign-in",
        data={"csrf_token": form_token(user.client), "api_key": user.api_key},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return form_token(user.client, "/segments")


def field_error(page: str, parameter: str) -> str | None:
    match = re.search(
        rf'<p class="field-error" id="{re.escape(field_id(parameter))}-error">([^<]*)</p>', page
    )
    return html.unescape(match[1]) if match else None


def fresh_count(db: Database, user: User, segment_id: int) -> int:
    settings = user.segment(segment_id)["settings"]
    with db.read() as session:
        return count_filter(session, user_id=user.id, spec=filters.Filter.from_settings(settings))


# -- signing in ---------------------------------------------------------------------


def test_pages_send_a_signed_out_visitor_to_sign_in(client: TestClient) -> None:
    response = client.get("/segments?page=2", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fsegments%3Fpage%3D2"
    assert client.get("/", follow_redirects=False).headers["location"] == "/sign-in"


def test_sign_in_keeps_the_user_in_a_signed_httponly_lax_cookie(alice: User) -> None:
    token = form_token(alice.client)
    response = alice.client.post(
        "/sign-in",
        data={"csrf_token": token, "api_key": alice.api_key, "next": "/contacts"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/contacts"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    page = alice.client.get("/segments")
    assert page.status_code == 200 and "alice" in page.text
    assert page.headers["cache-control"] == "no-store"
    # A cookie whose signature does not match is no session at all.
    value = cookie.split(";")[0].split("=", 1)[1]
    alice.client.cookies.clear()
    alice.client.cookies.set(SESSION_COOKIE, value[:-2] + ("yy" if value.endswith("xx") else "xx"))
    assert alice.client.get("/segments", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil", ""])
def test_sign_in_only_redirects_within_the_site(alice: User, target: str) -> None:
    response = alice.client.post(
        "/sign-in",
        data={"csrf_token": form_token(alice.client), "api_key": alice.api_key, "next": target},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/segments"


class _Controls(HTMLParser):
    """Form controls a person fills in, and the ids that labels point at."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[str] = []
        self.labelled: set[str] = set()
        self.in_label = 0
        self.in_template = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "template":
            self.in_template += 1
        elif tag == "label":
            self.in_label += 1
            if found.get("for"):
                self.labelled.add(str(found["for"]))
        elif tag in ("input", "select", "textarea") and found.get("type") not in (
            "hidden",
            "submit",
        ):
            name = str(found.get("id") or found.get("name"))
            if self.in_label:
                self.labelled.add(name)
            if not self.in_template:
                self.controls.append(name)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1
        elif tag == "template":
            self.in_template -= 1


def test_every_field_of_every_page_has_a_label(alice: User) -> None:
    alice.make_contact("+393331234567", custom_parameters={"plan": "pro"})
    segment_id = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    pages = ["/sign-in"]
    sign_in(alice)
    pages += ["/segments", "/segments/new", f"/segments/{segment_id}/edit", "/contacts"]
    pages += ["/contacts/new", "/contacts/1/edit"]
    for path in pages:
        parser = _Controls()
        parser.feed(alice.client.get(path).text)
        assert parser.controls, path
        unlabelled = [name for name in parser.controls if name not in parser.labelled]
        assert unlabelled == [], path


@pytest.mark.parametrize("api_key", ["sgk_not-a-key", "", "   "])
def test_a_wrong_key_is_refused_next_to_the_field(client: TestClient, api_key: str) -> None:
    response = client.post("/sign-in", data={"csrf_token": form_token(client), "api_key": api_key})
    assert response.status_code == 401
    assert field_error(response.text, "api_key") in (
        "unknown or revoked API key",
        "enter an API key",
    )
    assert client.get("/segments", follow_redirects=False).status_code == 303


def test_revoking_the_key_signs_its_dashboard_sessions_out(alice: User, db: Database) -> None:
    sign_in(alice)
    assert alice.client.get("/segments").status_code == 200
    with db.write() as session:
        (key,) = auth.list_keys(session, user_id=alice.id)
        auth.revoke_key(session, key_id=key.id)
    response = alice.client.get("/segments", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")


def test_sign_out_ends_the_session(alice: User) -> None:
    token = sign_in(alice)
    response = alice.client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert response.headers["location"] == "/sign-in"
    assert alice.client.get("/segments", follow_redirects=False).status_code == 303


# -- the form token -----------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged", "é"])
def test_every_form_post_without_the_session_token_is_refused(
    alice: User, token: str | None
) -> None:
    sign_in(alice)
    segment_id = alice.make_segment(name="kept")
    contact_id = alice.make_contact("+393331234567")
    fields = {} if token is None else {"csrf_token": token}
    for path, data in [
        ("/segments/new", {"name": "sneaky", "type": "filter"}),
        (f"/segments/{segment_id}/edit", {"name": "renamed"}),
        (f"/segments/{segment_id}/delete", {}),
        ("/segments/preview", {}),
        ("/contacts/new", {"phone_number": "+393331234568"}),
        (f"/contacts/{contact_id}/delete", {}),
        ("/sign-out", {}),
        ("/sign-in", {"api_key": alice.api_key}),
    ]:
        response = alice.client.post(path, data={**data, **fields}, follow_redirects=False)
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("text/html")
        assert "this form has expired" in response.text
    assert [s["name"] for s in alice.get("/api/segments").json()["data"]] == ["kept"]
    assert alice.get("/api/contacts").json()["meta"]["total"] == 1
    assert alice.client.get("/segments").status_code == 200  # still signed in


# -- tenancy ------------------------------------------------------------------------


def test_another_users_segments_and_contacts_answer_404(alice: User, bob: User) -> None:
    segment_id = alice.make_segment(name="alice's")
    contact_id = alice.make_contact("+393331234567")
    token = sign_in(bob)
    for path in [
        f"/segments/{segment_id}",
        f"/segments/{segment_id}/edit",
        f"/segments/{segment_id}/delete",
        f"/contacts/{contact_id}/edit",
        f"/contacts/{contact_id}/delete",
    ]:
        response = bob.client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
    for path, data in [
        (f"/segments/{segment_id}/edit", {"name": "taken"}),
        (f"/segments/{segment_id}/delete", {}),
        (f"/contacts/{contact_id}/edit", {"phone_number": "+393331234567"}),
        (f"/contacts/{contact_id}/delete", {}),
    ]:
        assert bob.client.post(path, data={**data, "csrf_token": token}).status_code == 404
    assert "alice&#39;s" not in bob.client.get("/segments").text
    assert '<datalist id="parameter-keys"></datalist>' in bob.client.get("/segments/new").text
    assert "+393331234567" not in bob.client.get("/contacts").text
    assert alice.segment(segment_id)["name"] == "alice's"
    assert alice.get(f"/api/contacts/{contact_id}").status_code == 200


# -- errors -------------------------------------------------------------------------


ERROR_CASES = [
    ({"name": "", "type": "filter"}, "name"),
    (
        {
            "name": "n",
            "type": "filter",
            "filters_custom_parameter_key[3]": "age",
            "filters_custom_parameter_condition[3]": "bigger_than",
            "filters_custom_parameter_value[3]": "old",
        },
        "filters_custom_parameter_value[3]",
    ),
    (
        {
            "name": "n",
            "type": "filter",
            "filters_custom_parameter_key[0]": "plan",
            "filters_custom_parameter_condition[0]": "sounds_like",
        },
        "filters_custom_parameter_condition[0]",
    ),
    ({"name": "n", "type": "filter", "filters_countries[]": "XX"}, "filters_countries"),
    ({"name": "n", "type": "filter", "filters_continents[]": "ZZ"}, "filters_continents"),
    ({"name": "n", "type": "custom", "contacts_ids": "1, two"}, "contacts_ids"),
    ({"name": "n", "type": "custom", "contacts_ids": "424242"}, "contacts_ids"),
    ({"name": "n", "type": "bulk", "phone_numbers": "+393331234567\n12345"}, "phone_numbers"),
]


@pytest.mark.parametrize(("fields", "parameter"), ERROR_CASES)
def test_errors_show_next_to_their_field_in_the_api_words(
    alice: User, fields: dict[str, str], parameter: str
) -> None:
    token = sign_in(alice)
    api = alice.post("/api/segments", data=fields)
    assert api.status_code == 400
    (error,) = api.json()["errors"]
    assert error["source"]["parameter"] == parameter

    page = alice.client.post("/segments/new", data={**fields, "csrf_token": token})
    assert page.status_code == 400
    assert field_error(page.text, parameter) == error["detail"]
    assert f'id="{field_id(parameter)}"' in page.text  # the field the message stands by
    assert 'role="alert"' in page.text
    assert alice.get("/api/segments").json()["data"] == []


def test_contact_errors_show_next_to_their_field(alice: User) -> None:
    token = sign_in(alice)
    alice.make_contact("+393331234567")
    for fields, parameter, detail in [
        ({"phone_number": "12345"}, "phone_number", "phone_number '12345': missing country code"),
        ({"phone_number": "+39 333 123 4567"}, "phone_number", "already exists"),
        (
            {"phone_number": "+393331234568", "custom_parameter_value[2]": "x"},
            "custom_parameter_key[2]",
            "custom_parameter_key[2] must be 1 to 64 characters, got 0",
        ),
        (  # the API's rule, from the same function
            {
                "phone_number": "+393331234568",
                "custom_parameter_key[0]": " plan",
                "custom_parameter_value[0]": "x",
            },
            "custom_parameter_key[0]",
            "custom_parameter_key[0] ' plan' must not begin or end with a space",
        ),  # fmt: skip
    ]:
        page = alice.client.post("/contacts/new", data={**fields, "csrf_token": token})
        assert page.status_code in (400, 409)
        assert detail in (field_error(page.text, parameter) or ""), page.text
    assert alice.get("/api/contacts").json()["meta"]["total"] == 1


def test_dashboard_errors_are_html_and_api_errors_stay_json(
    client: TestClient, alice: User
) -> None:
    sign_in(alice)
    for path in [
        "/nothing",
        "/segments/not-a-number",
        "/segments/0",
        f"/contacts/{2**64}/edit",
        "/static/missing.css",
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
    for path in ["/api/nothing", "/api", "/api/segments/not-a-number"]:
        response = alice.get(path)
        assert response.status_code == 404, path
        assert response.json()["errors"][0]["status"] == "404"
    response = alice.client.get("/segments?order_by=colour")
    assert response.status_code == 400
    assert "order_by must be one of" in response.text
    for path in ["/segments?search=a%00b", "/contacts?search=%00"]:
        response = alice.client.get(path)
        assert response.status_code == 400, path
        assert "must not contain NUL characters" in response.text


def test_an_id_past_the_id_columns_is_not_found_on_the_dashboard_as_in_the_api(
    client: TestClient, alice: User
) -> None:
    """The dashboard's path ids are the API's (`ResourceId`, 1 to MAX_ID): one past what
    the id columns hold names nothing, so it is a 404 on every backend, never a query
    that overflows PostgreSQL's integer (which answered 500)."""
    token = sign_in(alice)
    past = MAX_ID + 1
    for path in [
        f"/segments/{past}",
        f"/segments/{past}/edit",
        f"/segments/{past}/delete",
        f"/contacts/{past}/edit",
        f"/contacts/{past}/delete",
    ]:
        assert client.get(path).status_code == 404, path
    for path in [f"/segments/{past}/delete", f"/contacts/{past}/delete"]:
        assert client.post(path, data={"csrf_token": token}).status_code == 404, path
    for path in [f"/api/segments/{past}", f"/api/contacts/{past}"]:
        assert alice.get(path).status_code == 404, path


# -- what the forms do --------------------------------------------------------------


def test_the_segment_form_saves_what_the_api_would(alice: User, db: Database) -> None:
    for number, plan in [
        ("+393331234567", "pro"),
        ("+393331234568", "free"),
        ("+33612345678", "pro"),
    ]:
        alice.make_contact(number, custom_parameters={"plan": plan})
    token = sign_in(alice)
    response = alice.client.post(
        "/segments/new",
        data={
            "csrf_token": token,
            "name": "  Pro in Italy ",
            "type": "filter",
            "filters_custom_parameter_key[0]": "plan",
            "filters_custom_parameter_condition[0]": "exact",
            "filters_custom_parameter_value[0]": "pro",
            "filters_custom_parameter_key[1]": "",  # a row left blank is no condition
            "filters_custom_parameter_value[1]": "",
            "filters_countries[]": ["IT"],
            "phone_numbers": "ignored: not a field of a filter segment",
            "action": "save",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    segment_id = int(response.headers["location"].rsplit("/", 1)[1])
    segment = alice.segment(segment_id)
    assert segment["name"] == "Pro in Italy"
    assert segment["settings"] == {
        "filters_custom_parameters": [{"key": "plan", "condition": "exact", "value": "pro"}],
        "filters_countries": ["IT"],
    }
    assert segment["total_contacts"] == fresh_count(db, alice, segment_id) == 1
    page = alice.client.get(f"/segments/{segment_id}")
    assert "Segment saved." in page.text and "+393331234567" in page.text

    # Saving with every condition removed replaces the definition: everyone.
    alice.client.post(
        f"/segments/{segment_id}/edit",
        data={"csrf_token": token, "name": "Everyone", "type": "filter"},
    )
    assert alice.segment(segment_id)["settings"] == {}
    assert alice.total(segment_id) == 3


def test_row_buttons_work_without_javascript(alice: User) -> None:
    token = sign_in(alice)
    base = {"csrf_token": token, "name": "n", "type": "filter"}
    added = alice.client.post(
        "/segments/new",
        data={**base, "filters_custom_parameter_key[4]": "plan", "action": "add"},
    )
    assert added.status_code == 200
    assert 'name="filters_custom_parameter_key[5]"' in added.text
    removed = alice.client.post(
        "/segments/new",
        data={
            **base,
            "filters_custom_parameter_key[0]": "plan",
            "filters_custom_parameter_key[1]": "age",
            "action": "remove:0",
        },
    )
    assert 'name="filters_custom_parameter_key[0]"' not in removed.text
    assert 'value="age"' in removed.text
    assert alice.get("/api/segments").json()["data"] == []  # nothing was saved


def test_the_preview_counts_and_lists_the_first_ten_members(alice: User) -> None:
    for i in range(12):
        alice.make_contact(f"+3933312345{i:02d}", custom_parameters={"n": str(i)})
    token = sign_in(alice)
    preview = alice.client.post(
        "/segments/preview",
        data={
            "csrf_token": token,
            "type": "filter",
            "filters_custom_parameter_key[0]": "n",
            "filters_custom_parameter_condition[0]": "lower_than",
            "filters_custom_parameter_value[0]": "11",
        },
    )
    assert 'data-count="11"' in preview.text
    shown = re.findall(r"\+3933312345\d\d", preview.text)
    assert shown == [f"+3933312345{i:02d}" for i in range(10)]
    invalid = alice.client.post(
        "/segments/preview",
        data={"csrf_token": token, "type": "filter", "filters_countries[]": "XX"},
    )
    assert 'data-error-parameter="filters_countries"' in invalid.text
    # The other two types too: ids of contacts, and numbers that would become contacts.
    chosen = alice.client.post(
        "/segments/preview",
        data={"csrf_token": token, "type": "custom", "contacts_ids": "3, 1"},
    )
    assert 'data-count="2"' in chosen.text
    numbers = alice.client.post(
        "/segments/preview",
        data={"csrf_token": token, "type": "bulk", "phone_numbers": "+393331234500\n+33612345678"},
    )
    assert 'data-count="2"' in numbers.text and "1 of them is not a contact yet" in numbers.text
    waiting = alice.client.post(
        "/segments/preview", data={"csrf_token": token, "type": "bulk", "phone_numbers": " "}
    )
    assert "Enter phone numbers" in waiting.text
    assert alice.get("/api/segments").json()["data"] == []
    assert alice.get("/api/contacts").json()["meta"]["total"] == 12  # nothing created
    # The builder offers the keys the user's contacts already have.
    assert '<option value="n">' in alice.client.get("/segments/new").text


def test_the_contact_form_writes_parameters_and_keeps_counts_exact(
    alice: User, db: Database
) -> None:
    segment_id = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    token = sign_in(alice)
    response = alice.client.post(
        "/contacts/new",
        data={
            "csrf_token": token,
            "phone_number": "+39 333 123 4567",
            "name": "Giulia",
            "has_opted_out": "0",
            "custom_parameter_key[0]": "plan",
            "custom_parameter_value[0]": "pro",
            "custom_parameter_key[1]": "",
            "custom_parameter_value[1]": "",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    (contact,) = alice.get("/api/contacts").json()["data"]
    assert contact["custom_parameters"] == {"plan": "pro"}
    assert alice.total(segment_id) == fresh_count(db, alice, segment_id) == 1

    edit = f"/contacts/{contact['id']}/edit"
    assert 'value="plan"' in alice.client.get(edit).text
    # Every parameter row removed and opted out: both saved (the checkbox is unticked by
    # sending only the hidden 0 before it).
    alice.client.post(
        edit,
        data={"csrf_token": token, "phone_number": "+393331234567", "has_opted_out": ["0", "1"]},
    )
    saved = alice.get(f"/api/contacts/{contact['id']}").json()["data"]
    assert saved["custom_parameters"] == {} and saved["has_opted_out"] is True
    assert alice.total(segment_id) == fresh_count(db, alice, segment_id) == 0

    alice.client.post(f"/contacts/{contact['id']}/delete", data={"csrf_token": token})
    assert alice.get(f"/api/contacts/{contact['id']}").status_code == 404


def test_lists_search_and_page(alice: User) -> None:
    for i in range(12):
        alice.make_contact(f"+3933312345{i:02d}", name=f"person {i}")
        alice.make_segment(name=f"{'weekly' if i % 2 else 'daily'} {i:02d}")
    sign_in(alice)
    page = alice.client.get(
        "/segments?search=WEEK&order_by=name&order_type=asc&results_per_page=10"
    )
    names = re.findall(r'<a href="/segments/\d+">([^<]+)</a>', page.text)
    assert names == [f"weekly {i:02d}" for i in (1, 3, 5, 7, 9, 11)]
    first = alice.client.get("/contacts?results_per_page=10")
    assert "1–10 of 12 contacts" in first.text
    assert 'href="/contacts?results_per_page=10&amp;page=2"' in first.text
    assert "11–12 of 12 contacts" in alice.client.get("/contacts?results_per_page=10&page=2").text
    assert "person 7" in alice.client.get("/contacts?search=person+7").text


def test_the_dashboard_searches_contacts_with_the_apis_rule(alice: User) -> None:
    alice.make_contact("+393471234567", name="Giulia")
    alice.make_contact("+14155552671", name="Bo")
    sign_in(alice)
    for text in ("0039 3471", "+39 347-123", "GIULIA"):
        page = alice.client.get("/contacts", params={"search": text}).text
        assert "Giulia" in page and "+14155552671" not in page, text


def test_the_import_page_imports_and_reports_bad_rows(alice: User, bob: User) -> None:
    token = sign_in(alice)
    segment_id = alice.make_segment(filters_countries=["IT"])
    assert 'type="file"' in alice.client.get("/contacts/import").text
    csv_text = (
        "phone_number,name,plan\n+393331234501,Ada,pro\nnot a number,X,free\n+14155552671,Bo,\n"
    )
    response = alice.client.post(
        "/contacts/import",
        data={"csrf_token": token},
        files={"file": ("contacts.csv", csv_text.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    page = html.unescape(response.text)
    assert "Contacts created</th><td>2<" in page and "Invalid (not imported)</th><td>1<" in page
    assert "<td>3</td>" in page  # the bad row's line number
    assert alice.total(segment_id) == 1
    contacts = alice.get("/api/contacts").json()["data"]
    assert sorted(c["name"] for c in contacts) == ["Ada", "Bo"]
    assert bob.get("/api/contacts").json()["meta"]["total"] == 0


def test_the_import_page_refuses_a_missing_file_or_token(alice: User) -> None:
    token = sign_in(alice)
    response = alice.client.post("/contacts/import", data={"csrf_token": token})
    assert response.status_code == 400 and "choose a CSV file" in response.text
    response = alice.client.post(
        "/contacts/import",
        data={"csrf_token": "forged"},
        files={"file": ("c.csv", b"phone_number\n+393331234501\n", "text/csv")},
    )
    assert response.status_code == 403
    assert alice.get("/api/contacts").json()["meta"]["total"] == 0


# -- the signing key ----------------------------------------------------------------


def test_an_unset_secret_is_made_once_and_kept_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data/segmenti.db")
    first = sessions.secret_key(settings)
    assert len(first) >= sessions.MIN_SECRET_LENGTH
    assert (tmp_path / "data" / "secret_key").read_text() == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    assert sessions.secret_key(settings) == first


def test_a_short_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SEGMENTI_SECRET_KEY"):
        sessions.secret_key(Settings(database_url="sqlite://", secret_key="short"))
    assert sessions.secret_key(Settings(secret_key="s" * 32)) == "s" * 32


def test_a_filter_tree_saves_from_its_json_field_without_javascript(alice: User) -> None:
    alice.make_contact("+393331234567", custom_parameters={"plan": "pro"})
    alice.make_contact("+393331234568", custom_parameters={"plan": "free"})
    alice.make_contact("+33612345678")
    token = sign_in(alice)
    base = {"csrf_token": token, "name": "Not pro", "type": "filter", "filter_mode": "tree"}
    tree = '{"not": {"key": "plan", "condition": "in", "value": ["pro"]}}'
    page = alice.client.post("/segments/new", data={**base, "filter": '{"any": []}'})
    assert page.status_code == 400
    assert "filter: 'any' takes at least one node" in html.unescape(page.text)
    response = alice.client.post(
        "/segments/new",
        # The rows' fields are posted too (hidden by the page), and ignored.
        data={**base, "filter": tree, "filters_custom_parameter_key[0]": "plan"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    segment_id = int(response.headers["location"].rsplit("/", 1)[1])
    assert alice.segment(segment_id)["settings"] == {
        "filter": {"not": {"key": "plan", "condition": "in", "value": ["pro"]}}
    }
    assert alice.total(segment_id) == 2
    shown = html.unescape(alice.client.get(f"/segments/{segment_id}").text)
    assert "Not:" in shown and "is one of" in shown
    edit = html.unescape(alice.client.get(f"/segments/{segment_id}/edit").text)
    assert '"not": {"key": "plan"' in edit  # the builder's JSON, as saved
