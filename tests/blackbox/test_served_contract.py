"""The CLI and HTTP contract as a new user meets it: `segmenti users create NAME --json`
and `segmenti serve --host --port` as subprocesses on a fresh SQLite file, then real HTTP
over a socket (no TestClient). One server for the module; each test keeps to its own data
(its own phone numbers and parameter keys), so the tests do not depend on each other.

This smoke-tests what the in-process suite cannot: the console script, the JSON line the
CLI prints, uvicorn's real request handling (Host header, chunked bodies, 413 before the
body is read) and absolute links built from the real server address.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest

SEGMENTI = Path(sys.executable).parent / "segmenti"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
SEGMENT_KEYS = {
    "id",
    "user_id",
    "name",
    "settings",
    "type",
    "total_contacts",
    "last_datetime",
    "datetime",
}
CONTACT_KEYS = {
    "id",
    "user_id",
    "name",
    "phone_number",
    "custom_parameters",
    "continent_code",
    "country_code",
    "has_opted_out",
    "last_datetime",
    "datetime",
}

_numbers = itertools.count(1000)
_keys = itertools.count(1)


def new_number() -> str:
    """A valid Italian mobile number no other test uses."""
    return f"+39333{next(_numbers):07d}"


def new_key() -> str:
    return f"k{next(_keys)}_{os.getpid()}"


@dataclass
class Served:
    base: str
    alice: httpx.Client
    bob: httpx.Client
    alice_id: int


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(SEGMENTI), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _identity(output: str) -> dict[str, Any]:
    """The one JSON line of `users create --json`."""
    assert output.count("\n") == 1, output
    identity: dict[str, Any] = json.loads(output)
    assert set(identity) == {"user_id", "api_key"}
    assert isinstance(identity["user_id"], int) and isinstance(identity["api_key"], str)
    return identity


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("served")
    env = {**os.environ, "SEGMENTI_DATABASE_URL": f"sqlite:///{directory / 'segmenti.db'}"}
    # alice first: her command migrates the fresh file; bob and the server then start
    # side by side (the server finds users, so it creates none of its own).
    identities = [_identity(_cli(env, "users", "create", "alice", "--json"))]
    bob = subprocess.Popen(
        [str(SEGMENTI), "users", "create", "bob", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = _free_port()
    log = (directory / "serve.log").open("w")
    server = subprocess.Popen(
        [str(SEGMENTI), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        output, _ = bob.communicate(timeout=60)
        assert bob.returncode == 0
        identities.append(_identity(output))
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (directory / "serve.log").read_text()
            assert time.monotonic() < deadline, "segmenti serve did not start"
            time.sleep(0.1)
        clients = [
            httpx.Client(
                base_url=base,
                headers={"Authorization": f"Bearer {identity['api_key']}"},
                timeout=30,
            )
            for identity in identities
        ]
        yield Served(base, clients[0], clients[1], identities[0]["user_id"])
        for client in clients:
            client.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def form(**fields: Any) -> dict[str, Any]:
    """multipart/form-data fields, as curl --form sends them (lists repeat the name)."""
    return {
        "files": [
            (name, (None, str(value)))
            for name, values in fields.items()
            for value in (values if isinstance(values, list) else [values])
        ]
    }


def fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """multipart/form-data from (name, value) pairs, for bracketed names."""
    return {"files": [(name, (None, value)) for name, value in pairs]}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    error: dict[str, Any] = body["errors"][0]
    assert error["status"] == str(status)
    assert isinstance(error["title"], str) and error["title"]
    return error


def parameter_of(response: httpx.Response) -> str:
    return str(error_of(response, 400)["source"]["parameter"])


def make_contact(client: httpx.Client, number: str | None = None, **params: Any) -> int:
    response = client.post("/api/contacts", json={"phone_number": number or new_number(), **params})
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


def make_segment(client: httpx.Client, **params: Any) -> int:
    response = client.post("/api/segments", json={"name": "segment", **params})
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


def segment(client: httpx.Client, segment_id: int) -> dict[str, Any]:
    response = client.get(f"/api/segments/{segment_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def contacts_total(client: httpx.Client) -> int:
    return int(client.get("/api/contacts").json()["meta"]["total"])


# -- the reference's requests -----------------------------------------------------------


def test_the_reference_walkthrough_creates_lists_updates_and_deletes_a_custom_segment(
    served: Served,
) -> None:
    alice = served.alice
    ids = [make_contact(alice) for _ in range(5)]
    body = form(name="Example name", type="custom", contacts_ids=",".join(map(str, ids)))
    created = alice.post("/api/segments", **body)
    assert created.status_code == 201
    segment_id = created.json()["data"]["id"]
    assert created.json() == {"data": {"id": segment_id}}

    listed = alice.get("/api/segments/")
    assert listed.status_code == 200
    envelope = listed.json()
    assert set(envelope) == {"data", "meta", "links"}
    assert set(envelope["meta"]) == {"page", "results_per_page", "total", "total_pages"}
    assert set(envelope["links"]) == {"first", "last", "next", "prev", "self"}
    assert envelope["links"]["self"] == f"{served.base}/api/segments?page=1"
    mine = next(row for row in envelope["data"] if row["id"] == segment_id)

    one = alice.get(f"/api/segments/{segment_id}").json()
    assert set(one) == {"data"} and one["data"] == mine
    assert set(mine) == SEGMENT_KEYS
    assert mine == {
        "id": segment_id,
        "user_id": served.alice_id,
        "name": "Example name",
        "settings": {"contacts_ids": ids},
        "type": "custom",
        "total_contacts": 5,
        "last_datetime": None,
        "datetime": mine["datetime"],
    }
    assert DATETIME.match(mine["datetime"])

    updated = alice.post(f"/api/segments/{segment_id}", **body)
    assert updated.status_code == 200 and updated.json() == {"data": {"id": segment_id}}
    assert DATETIME.match(segment(alice, segment_id)["last_datetime"])

    deleted = alice.delete(f"/api/segments/{segment_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    error_of(alice.get(f"/api/segments/{segment_id}"), 404)
    error_of(alice.delete(f"/api/segments/{segment_id}"), 404)
    assert all(alice.get(f"/api/contacts/{i}").status_code == 200 for i in ids)


# -- envelopes, links, paging -------------------------------------------------------------


def test_links_are_absolute_canonical_and_keep_the_query(served: Served) -> None:
    alice, tag = served.alice, new_key()
    for i in range(3):
        make_segment(alice, name=f"{tag} {i}")
    body = alice.get(f"/api/segments/?results_per_page=10&search={tag}&order_type=asc").json()
    assert body["meta"] == {"page": 1, "results_per_page": 10, "total": 3, "total_pages": 1}
    assert [row["name"] for row in body["data"]] == [f"{tag} {i}" for i in range(3)]
    query = f"results_per_page=10&search={tag}&order_type=asc&page=1"
    assert body["links"] == {
        "first": f"{served.base}/api/segments?{query}",
        "last": f"{served.base}/api/segments?{query}",
        "next": None,
        "prev": None,
        "self": f"{served.base}/api/segments?{query}",
    }
    past = alice.get(f"/api/segments?results_per_page=10&search={tag}&page=4")
    assert past.status_code == 200 and past.json()["data"] == []
    assert past.json()["links"]["next"] is None
    empty = alice.get("/api/segments?search=no such name at all").json()
    assert empty["data"] == [] and empty["meta"]["total_pages"] == 0
    assert empty["links"]["last"] is None


def test_paging_parameters_are_validated(served: Served) -> None:
    for query, name in [
        ("page=0", "page"),
        ("page=x", "page"),
        ("results_per_page=7", "results_per_page"),
        ("order_by=phone", "order_by"),
        ("order_type=up", "order_type"),
        ("type=smart", "type"),
    ]:
        assert parameter_of(served.alice.get(f"/api/segments?{query}")) == name
        if name in ("page", "results_per_page"):
            assert parameter_of(served.alice.get(f"/api/contacts?{query}")) == name


# -- authentication and errors -----------------------------------------------------------


def test_every_missing_malformed_or_unknown_key_is_401(served: Served) -> None:
    # revoked keys: tests/cli/test_cli.py (the CLI in-process; auth caches nothing)
    for value in (None, "", "Bearer", "Basic abc", "Bearer sgk_nope", "sgk_nobearer"):
        headers = {} if value is None else {"Authorization": value}
        for method, path in [("GET", "/api/segments"), ("POST", "/api/segments/1")]:
            response = httpx.request(method, served.base + path, headers=headers)
            error_of(response, 401)


def test_errors_are_json_api_bodies(served: Served) -> None:
    alice = served.alice
    error_of(alice.get("/api/nothing-here"), 404)
    error_of(alice.get("/api/segments/abc"), 404)
    for huge in ("2147483648", "9223372036854775808", "99999999999999999999"):
        error_of(alice.get(f"/api/segments/{huge}"), 404)
        error_of(alice.post(f"/api/segments/{huge}", json={"name": "x"}), 404)
        error_of(alice.delete(f"/api/contacts/{huge}"), 404)
    error_of(alice.put("/api/segments/1", json={}), 405)
    error_of(alice.delete("/api/segments"), 405)
    error_of(alice.post("/api/segments", content=b'{"name": ', headers=_json), 400)
    error_of(alice.post("/api/segments", content=b"name=x", headers=_text), 415)
    # 413 is answered from Content-Length, before the body is sent
    status_line, body = _raw_post(served, "/api/segments", declared_length=20 * 1024 * 1024 + 1)
    assert status_line.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body)["errors"][0]["status"] == "413"


def _raw_post(served: Served, path: str, *, declared_length: int) -> tuple[bytes, bytes]:
    """Sends only the head of a POST that announces a body, and reads the answer."""
    host, port = served.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        key = served.alice.headers["Authorization"]
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared_length}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], body


_json = {"Content-Type": "application/json"}
_text = {"Content-Type": "text/plain"}
_urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}


# -- type inference and parameters of other types ---------------------------------------


def test_type_is_inferred_and_foreign_parameters_are_400(served: Served) -> None:
    alice = served.alice
    contact = make_contact(alice)
    bulk = make_segment(alice, phone_numbers=new_number())
    custom = make_segment(alice, contacts_ids=str(contact))
    plain = make_segment(alice)
    assert [segment(alice, i)["type"] for i in (bulk, custom, plain)] == [
        "bulk",
        "custom",
        "filter",
    ]
    both = {"name": "x", "phone_numbers": new_number(), "contacts_ids": str(contact)}
    assert parameter_of(alice.post("/api/segments", json=both)) in {
        "phone_numbers",
        "contacts_ids",
    }
    for params, name in [
        ({"type": "custom", "contacts_ids": "1", "phone_numbers": new_number()}, "phone_numbers"),
        ({"type": "bulk", "phone_numbers": new_number(), "contacts_ids": "1"}, "contacts_ids"),
        ({"type": "filter", "contacts_ids": "1"}, "contacts_ids"),
        ({"type": "bulk", "filters_countries": ["IT"], "phone_numbers": "+393331"}, None),
        ({"type": "bulk"}, "phone_numbers"),
        ({"type": "custom"}, "contacts_ids"),
        ({"type": "smart"}, "type"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 257}, "name"),
    ]:
        response = alice.post("/api/segments", json={"name": "x", **params})
        error = error_of(response, 400)
        if name is not None:
            assert error["source"]["parameter"] == name, (params, error)
    ignored = alice.post("/api/segments", json={"name": "ok", "colour": "red", "page": "x"})
    assert ignored.status_code == 201


# -- bulk ------------------------------------------------------------------------------


def test_bulk_normalizes_creates_and_reuses_contacts(served: Served) -> None:
    alice = served.alice
    existing_number = new_number()
    existing = make_contact(alice, existing_number, name="Kept")
    digits = [new_number()[1:] for _ in range(4)]
    raw = (
        f"00{digits[0]}\n"
        f"+{digits[1][:2]} ({digits[1][2:5]}) {digits[1][5:8]}-{digits[1][8:]};"
        f"+{digits[2][:2]}.{digits[2][2:]},"
        f"{existing_number}\r\n+{digits[0]}\n\n+{digits[3]}"
    )
    before = contacts_total(alice)
    segment_id = make_segment(alice, name="bulk", phone_numbers=raw)
    data = segment(alice, segment_id)
    expected = [f"+{digits[0]}", f"+{digits[1]}", f"+{digits[2]}", existing_number, f"+{digits[3]}"]
    assert data["type"] == "bulk"
    assert data["settings"]["phone_numbers"] == expected
    assert (
        len(data["settings"]["contacts_ids"]) == 5 and existing in data["settings"]["contacts_ids"]
    )
    assert data["total_contacts"] == 5
    assert contacts_total(alice) == before + 4
    kept = alice.get(f"/api/contacts/{existing}").json()["data"]
    assert kept["name"] == "Kept" and kept["last_datetime"] is None
    repeated = alice.post(
        "/api/segments", **form(name="r", phone_numbers=[new_number(), new_number()])
    )
    assert repeated.status_code == 201
    assert segment(alice, repeated.json()["data"]["id"])["total_contacts"] == 2


def test_bulk_with_an_invalid_number_lists_positions_and_writes_nothing(served: Served) -> None:
    alice = served.alice
    before_contacts = contacts_total(alice)
    before_segments = alice.get("/api/segments").json()["meta"]["total"]
    raw = f"{new_number()}\n3331234567\n{new_number()}\n+39abc\n+1 555"
    error = error_of(alice.post("/api/segments", json={"name": "b", "phone_numbers": raw}), 400)
    assert error["source"]["parameter"] == "phone_numbers"
    assert "#2" in error["detail"] and "#4" in error["detail"] and "#5" in error["detail"]
    assert contacts_total(alice) == before_contacts
    assert alice.get("/api/segments").json()["meta"]["total"] == before_segments


# -- custom ------------------------------------------------------------------------------


def test_custom_ids_must_be_yours_and_nothing_is_written(served: Served) -> None:
    alice, bob = served.alice, served.bob
    mine = [make_contact(alice) for _ in range(3)]
    theirs = make_contact(bob)
    segment_id = make_segment(alice, contacts_ids=f"{mine[2]}, {mine[0]},{mine[2]},{mine[1]}")
    assert segment(alice, segment_id)["settings"] == {"contacts_ids": [mine[2], mine[0], mine[1]]}
    repeated = alice.post(
        "/api/segments", **form(**{"name": "r", "contacts_ids[]": [str(mine[0]), str(mine[1])]})
    )
    assert segment(alice, repeated.json()["data"]["id"])["settings"]["contacts_ids"] == mine[:2]
    before = alice.get("/api/segments").json()["meta"]["total"]
    for ids in (f"{mine[0]},{theirs}", f"{mine[0]},2147483648", "1,x", "0", "-3"):
        error = error_of(alice.post("/api/segments", json={"name": "c", "contacts_ids": ids}), 400)
        assert error["source"]["parameter"] == "contacts_ids"
    error = error_of(
        alice.post("/api/segments", json={"contacts_ids": f"{theirs}", "name": "c"}), 400
    )
    assert str(theirs) in error["detail"]
    assert alice.get("/api/segments").json()["meta"]["total"] == before
    unchanged = alice.post(f"/api/segments/{segment_id}", json={"contacts_ids": str(theirs)})
    error_of(unchanged, 400)
    assert segment(alice, segment_id)["settings"]["contacts_ids"] == [mine[2], mine[0], mine[1]]
    assert segment(alice, segment_id)["last_datetime"] is None


# -- filters -----------------------------------------------------------------------------


def test_each_invalid_filter_parameter_is_a_400_naming_it(served: Served) -> None:
    k, c, v = (
        "filters_custom_parameter_key",
        "filters_custom_parameter_condition",
        "filters_custom_parameter_value",
    )
    cases: list[tuple[list[tuple[str, str]], str]] = [
        ([("filters_countries[]", "XX")], "filters_countries"),
        ([("filters_continents[]", "EUR")], "filters_continents"),
        ([(f"{k}[0]", "a"), (f"{c}[0]", "like")], f"{c}[0]"),
        ([(f"{k}[0]", "a" * 65)], f"{k}[0]"),
        ([(f"{k}[0]", "a"), (f"{v}[0]", "v" * 513)], f"{v}[0]"),
        ([(f"{k}[0]", "a"), (f"{c}[1]", "exact")], f"{c}[1]"),
        ([(f"{k}[0]", "a"), (f"{v}[3]", "x")], f"{v}[3]"),
        ([(f"{k}[0]", "a"), (f"{c}[0]", "bigger_than"), (f"{v}[0]", "1e2")], f"{v}[0]"),
        ([(f"{k}[0]", "a"), (f"{c}[0]", "lower_than"), (f"{v}[0]", "1,5")], f"{v}[0]"),
        ([(f"{k}[{i}]", f"k{i}") for i in range(51)], k),
        ([(f"{k}[a]", "x")], f"{k}[a]"),
    ]
    for pairs, name in cases:
        response = served.alice.post("/api/segments", **fields([("name", "f"), *pairs]))
        assert parameter_of(response) == name, pairs


def test_filter_conditions_take_values_literally_fold_case_and_compare_numbers(
    served: Served,
) -> None:
    alice, key, mine = served.alice, new_key(), new_key()
    values = {
        "pct": "50% off",
        "under": "a_b",
        "star": "x*y",
        "quote": 'O\'Brien "Bob"',
        "slash": "C:\\dir\\",
        "upper": "STRASSE",
        "ten": "10",
        "nine": "9.5",
        "neg": " -3 ",
        "half": ".5",
        "empty": "",
        "exp": "1e2",
    }
    for value in values.values():
        make_contact(alice, custom_parameters={key: value, mine: "yes"})
    make_contact(alice, custom_parameters={mine: "yes"})  # without the key

    def total(condition: str, value: str) -> int:
        # `mine` keeps the count to this test's contacts
        segment_id = make_segment(
            alice,
            filters_custom_parameter_key=[mine, key],
            filters_custom_parameter_condition=["exact", condition],
            filters_custom_parameter_value=["YES", value],
        )
        return int(segment(alice, segment_id)["total_contacts"])

    everyone = len(values) + 1
    assert total("exact", "strasse") == 1
    assert total("exact", "straße") == 1  # Unicode case folding
    assert total("contains", "%") == 1
    assert total("contains", "_") == 1
    assert total("contains", "*") == 1
    assert total("contains", "'brien \"b") == 1
    assert total("ends_with", "\\") == 1
    assert total("starts_with", "c:\\d") == 1
    assert total("starts_with", "%") == 0
    assert total("not_contains", "%") == everyone - 1
    assert total("not_exact", "") == everyone - 1
    assert total("not_starts_with", "a_") == everyone - 1
    assert total("not_ends_with", "zzz") == everyone
    assert total("contains", "") == len(values)
    assert total("bigger_than", "9") == 2  # 10 and 9.5: numbers, not strings
    assert total("lower_than", "9.75") == 3  # 9.5, -3, .5
    assert total("lower_than", "-2.5") == 1
    assert total("bigger_than", "99") == 0  # 1e2 is not a number


def test_countries_and_continents_any_case(served: Served) -> None:
    alice, mine = served.alice, new_key()
    serial = next(_numbers)
    for number in (new_number(), f"+49151{serial:08d}", f"+1415555{serial % 10000:04d}"):
        make_contact(alice, number, custom_parameters={mine: "1"})

    def total(**places: list[str]) -> int:
        # `mine` keeps the count to this test's three contacts (IT, DE, US)
        segment_id = make_segment(
            alice,
            filters_custom_parameter_key=[mine],
            filters_custom_parameter_value=["1"],
            **places,
        )
        return int(segment(alice, segment_id)["total_contacts"])

    assert total(filters_countries=["it", " De "]) == 2
    assert total(filters_countries=["us"]) == 1
    assert total(filters_continents=["eu"]) == 2
    assert total(filters_continents=["Na", "oc"]) == 1
    assert total(filters_countries=["IT"], filters_continents=["NA"]) == 0
    stored = segment(
        alice, make_segment(alice, filters_countries=["it"], filters_continents=["eu"])
    )
    assert stored["settings"] == {"filters_countries": ["IT"], "filters_continents": ["EU"]}


def test_php_brackets_urlencoded_multipart_and_json_are_equivalent(served: Served) -> None:
    alice, key = served.alice, new_key()
    make_contact(alice, custom_parameters={key: "Gold", "n" + key: "12"})
    pairs = [
        ("name", "same"),
        ("filters_custom_parameter_key[7]", key),
        ("filters_custom_parameter_value[7]", "gold"),
        ("filters_custom_parameter_key[2]", "n" + key),
        ("filters_custom_parameter_condition[2]", "bigger_than"),
        ("filters_custom_parameter_value[2]", "11.5"),
        ("filters_countries[]", "it"),
        ("filters_countries[]", "FR"),
        ("ignored_parameter", "x"),
    ]
    as_json = {
        "name": "same",
        "filters_custom_parameter_key": ["n" + key, key],
        "filters_custom_parameter_condition": ["bigger_than", "exact"],
        "filters_custom_parameter_value": ["11.5", "gold"],
        "filters_countries": ["it", "FR"],
    }
    made = [
        alice.post("/api/segments", **fields(pairs)),
        alice.post("/api/segments", content=urlencode(pairs), headers=_urlencoded),
        alice.post("/api/segments", json=as_json),
    ]
    assert made[1].request.headers["content-type"] == "application/x-www-form-urlencoded"
    settings = []
    for response in made:
        assert response.status_code == 201, response.text
        data = segment(alice, response.json()["data"]["id"])
        assert data["total_contacts"] == 1
        settings.append(data["settings"])
    assert (
        settings[0]
        == settings[1]
        == settings[2]
        == {
            "filters_custom_parameters": [
                {"key": "n" + key, "condition": "bigger_than", "value": "11.5"},
                {"key": key, "condition": "exact", "value": "gold"},
            ],
            "filters_countries": ["IT", "FR"],
        }
    )


def test_updates_replace_or_keep_settings_and_change_types(served: Served) -> None:
    alice, key = served.alice, new_key()
    contact = make_contact(alice, custom_parameters={key: "a"})
    spec = {"filters_custom_parameter_key": [key], "filters_custom_parameter_value": ["a"]}
    segment_id = make_segment(alice, name="first", **spec)
    assert segment(alice, segment_id)["total_contacts"] == 1

    renamed = alice.post(f"/api/segments/{segment_id}", **form(name="  second  "))
    assert renamed.status_code == 200
    data = segment(alice, segment_id)
    assert data["name"] == "second" and data["type"] == "filter"
    assert data["settings"]["filters_custom_parameters"][0]["key"] == key
    assert DATETIME.match(data["last_datetime"])

    alice.post(f"/api/segments/{segment_id}", json={"filters_countries": ["US"]})
    assert segment(alice, segment_id)["settings"] == {"filters_countries": ["US"]}
    assert (
        segment(alice, segment_id)["total_contacts"]
        == (alice.get("/api/contacts?country_code=us").json()["meta"]["total"])
    )

    error_of(alice.post(f"/api/segments/{segment_id}", json={"type": "custom"}), 400)
    error_of(alice.post(f"/api/segments/{segment_id}", json={"type": "bulk"}), 400)
    bad_filter = {"filters_countries": ["IT"], "filters_continents": ["XX"], "name": "bad"}
    error_of(alice.post(f"/api/segments/{segment_id}", json=bad_filter), 400)
    assert segment(alice, segment_id)["settings"] == {"filters_countries": ["US"]}
    assert segment(alice, segment_id)["name"] == "second"

    to_custom = alice.post(f"/api/segments/{segment_id}", json={"contacts_ids": str(contact)})
    assert to_custom.status_code == 200
    data = segment(alice, segment_id)
    assert (data["type"], data["settings"], data["total_contacts"]) == (
        "custom",
        {"contacts_ids": [contact]},
        1,
    )
    number = new_number()
    alice.post(f"/api/segments/{segment_id}", json={"type": "bulk", "phone_numbers": number})
    data = segment(alice, segment_id)
    assert data["type"] == "bulk" and data["settings"]["phone_numbers"] == [number]
    alice.post(f"/api/segments/{segment_id}", json={"type": "filter", **spec})
    data = segment(alice, segment_id)
    assert data["type"] == "filter" and data["total_contacts"] == 1
    error_of(alice.post("/api/segments/999999", json={"name": "x"}), 404)


def test_total_contacts_follows_contact_writes(served: Served) -> None:
    alice, key = served.alice, new_key()
    spec = {"filters_custom_parameter_key": [key], "filters_custom_parameter_value": ["in"]}
    live = make_segment(alice, **spec)
    first = make_contact(alice, custom_parameters={key: "in"})
    second = make_contact(alice, custom_parameters={key: "out"})
    custom = make_segment(alice, contacts_ids=f"{first},{second}")
    assert (segment(alice, live)["total_contacts"], segment(alice, custom)["total_contacts"]) == (
        1,
        2,
    )
    alice.post(
        f"/api/contacts/{second}",
        **fields([("custom_parameter_key[0]", key), ("custom_parameter_value[0]", "IN")]),
    )
    assert segment(alice, live)["total_contacts"] == 2
    alice.post(f"/api/contacts/{first}", data={"has_opted_out": "1"})
    assert (segment(alice, live)["total_contacts"], segment(alice, custom)["total_contacts"]) == (
        1,
        1,
    )
    assert alice.delete(f"/api/contacts/{second}").status_code == 204
    assert (segment(alice, live)["total_contacts"], segment(alice, custom)["total_contacts"]) == (
        0,
        0,
    )
    assert segment(alice, custom)["settings"]["contacts_ids"] == [first, second]


def test_a_contact_is_created_read_updated_found_and_deleted_by_its_owner_alone(
    served: Served,
) -> None:
    alice, bob, key = served.alice, served.bob, new_key()
    number = new_number()
    spaced = f"00{number[1:3]} {number[3:6]} {number[6:]}"
    created = alice.post(
        "/api/contacts/",
        **fields(
            [
                ("phone_number", spaced),
                ("name", "Ada"),
                ("custom_parameter_key[4]", key),
                ("custom_parameter_value[4]", "v"),
            ]
        ),
    )
    assert created.status_code == 201 and set(created.json()["data"]) == {"id"}
    contact_id = created.json()["data"]["id"]
    data = alice.get(f"/api/contacts/{contact_id}").json()["data"]
    assert set(data) == CONTACT_KEYS
    assert data == {
        "id": contact_id,
        "user_id": served.alice_id,
        "name": "Ada",
        "phone_number": number,
        "custom_parameters": {key: "v"},
        "continent_code": "EU",
        "country_code": "IT",
        "has_opted_out": False,
        "last_datetime": None,
        "datetime": data["datetime"],
    }
    assert DATETIME.match(data["datetime"])
    conflict = alice.post("/api/contacts", data={"phone_number": number})
    assert error_of(conflict, 409)["source"]["parameter"] == "phone_number"
    assert make_contact(bob, number)  # another user may hold the same number
    assert parameter_of(alice.post("/api/contacts", data={"name": "x"})) == "phone_number"
    assert parameter_of(alice.post("/api/contacts", data={"phone_number": "12"})) == "phone_number"
    updated = alice.post(
        f"/api/contacts/{contact_id}", json={"custom_parameters": {"b" + key: "w"}}
    )
    assert updated.status_code == 200 and updated.json() == {"data": {"id": contact_id}}
    data = alice.get(f"/api/contacts/{contact_id}").json()["data"]
    assert data["custom_parameters"] == {"b" + key: "w"} and data["name"] == "Ada"
    assert DATETIME.match(data["last_datetime"])
    found = alice.get(f"/api/contacts?search={number[3:]}").json()
    assert [row["id"] for row in found["data"]] == [contact_id]
    assert alice.get("/api/contacts?search=ada&country_code=it").json()["meta"]["total"] >= 1
    error_of(bob.get(f"/api/contacts/{contact_id}"), 404)
    error_of(bob.post(f"/api/contacts/{contact_id}", data={"name": "x"}), 404)
    error_of(bob.delete(f"/api/contacts/{contact_id}"), 404)
    deleted = alice.delete(f"/api/contacts/{contact_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    error_of(alice.get(f"/api/contacts/{contact_id}"), 404)


def test_tenants_see_nothing_of_each_other(served: Served) -> None:
    alice, bob = served.alice, served.bob
    segment_id = make_segment(alice, name="private")
    error_of(bob.get(f"/api/segments/{segment_id}"), 404)
    error_of(bob.post(f"/api/segments/{segment_id}", json={"name": "x"}), 404)
    error_of(bob.delete(f"/api/segments/{segment_id}"), 404)
    assert all(
        row["user_id"] != served.alice_id
        for row in bob.get("/api/segments?results_per_page=1000").json()["data"]
    )
    assert segment(alice, segment_id)["name"] == "private"


def test_item_paths_answer_the_same_with_a_trailing_slash(served: Served) -> None:
    alice = served.alice
    segment_id = make_segment(alice, name="slash")
    assert alice.get(f"/api/segments/{segment_id}/").json()["data"]["id"] == segment_id
    assert alice.post(f"/api/segments/{segment_id}/", data={"name": "s2"}).status_code == 200
    assert alice.delete(f"/api/segments/{segment_id}/").status_code == 204
    contact = make_contact(alice)
    assert alice.get(f"/api/contacts/{contact}/").status_code == 200


def test_simultaneous_bulk_creates_share_contacts_without_errors(served: Served) -> None:
    alice = served.alice
    shared = [new_number() for _ in range(30)]
    own = [[new_number() for _ in range(5)] for _ in range(6)]
    before = contacts_total(alice)

    def create(index: int) -> int:
        numbers = "\n".join(shared + own[index])
        with httpx.Client(base_url=served.base, headers=alice.headers, timeout=60) as client:
            return client.post(
                "/api/segments", json={"name": f"race {index}", "phone_numbers": numbers}
            ).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(create, range(6)))
    assert statuses == [201] * 6
    assert contacts_total(alice) == before + 30 + 6 * 5
