"""Every failure answers a JSON:API error body (SPEC "Envelopes")."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from segmenti.app import create_app
from segmenti.settings import Settings
from tests.conftest import User


def assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["errors"][0]
    assert error["status"] == str(status)
    assert error["title"]
    return error


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer sgk_unknown", "sgk_nobearer"],
)
def test_missing_malformed_or_unknown_keys_are_401(
    client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("GET", "/api/segments"),
        ("POST", "/api/segments"),
        ("GET", "/api/contacts/1"),
        ("DELETE", "/api/segments/1"),
    ]:
        assert_error(client.request(method, path, headers=headers), 401)


def test_unknown_path_and_wrong_method_are_json(client: TestClient, alice: User) -> None:
    assert_error(client.get("/api/nothing-here"), 404)
    assert_error(client.get("/api"), 404)
    assert_error(client.get("/nothing"), 404)
    # A browser (Accept: text/html) outside /api/ gets the dashboard's HTML error page.
    page = client.get("/nothing", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert_error(alice.client.put("/api/segments", headers=alice.headers), 405)
    assert_error(alice.client.patch("/api/segments/1", headers=alice.headers), 405)


@pytest.mark.parametrize("body", [b"{bad json", b"[1, 2]", b'"text"', b"[" * 100_000, b"\xff\xfe"])
def test_malformed_json_is_400(alice: User, body: bytes) -> None:
    response = alice.post(
        "/api/segments", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


def test_unsupported_content_type_is_415(alice: User) -> None:
    response = alice.post("/api/segments", content=b"name=x", headers={"Content-Type": "text/csv"})
    assert_error(response, 415)


def test_oversize_bodies_are_413(database_url: str, make_user: Any) -> None:
    user = make_user()
    app = create_app(Settings(database_url=database_url, max_body_bytes=1000))
    with TestClient(app) as small:
        response = small.post(
            "/api/segments", headers=user.headers, data={"name": "x", "phone_numbers": "1" * 2000}
        )
        assert_error(response, 413)

        def chunks() -> Any:  # no Content-Length: the limit counts the streamed bytes
            for _ in range(10):
                yield b"a" * 500

        response = small.post(
            "/api/segments",
            headers={**user.headers, "Content-Type": "application/x-www-form-urlencoded"},
            content=chunks(),
        )
        assert_error(response, 413)
    app.state.db.dispose()


def test_unexpected_exceptions_are_a_generic_500_and_logged(
    alice: User, app: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segmenti.segments import service

    def explode(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "list_segments", explode)
    response = alice.get("/api/segments")
    error = assert_error(response, 500)
    assert "secret internals" not in response.text
    assert error["title"] == "Internal server error"
    assert any("secret internals" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_openapi_documents_every_endpoint_and_bracketed_fields(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/segments"]) == {"get", "post"}
    assert set(paths["/api/segments/{segment_id}"]) == {"get", "post", "delete"}
    assert set(paths["/api/contacts"]) == {"get", "post"}
    form = paths["/api/segments"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "filters_countries[]" in form["schema"]["properties"]
    patterns = form["schema"]["patternProperties"]
    assert any("filters_custom_parameter_condition" in p for p in patterns)
    query = {p["name"] for p in paths["/api/segments"]["get"]["parameters"]}
    assert {"page", "results_per_page", "order_by", "order_type", "type", "search"} <= query
    assert client.get("/docs").status_code == 200
