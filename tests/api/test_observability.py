"""Operability: request ids, one log line per request, Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from segmenti import observability
from segmenti.settings import Settings
from tests.conftest import User


def samples(client: object, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of metric `name` in /metrics, by its sorted labels."""
    response = client.get("/metrics")  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_requests_are_counted_by_route_template_and_status(alice: User) -> None:
    key = (("method", "GET"), ("route", "/api/segments/{segment_id}"), ("status", "404"))
    before = samples(alice.client, "segmenti_http_requests_total").get(key, 0)
    assert alice.get("/api/segments/424242").status_code == 404
    assert alice.get("/api/segments/434343").status_code == 404
    after = samples(alice.client, "segmenti_http_requests_total")
    assert after[key] == before + 2
    # No raw ids in labels: one series per route template.
    assert not any("424242" in value for labels in after for _, value in labels)
    latency = samples(alice.client, "segmenti_http_request_duration_seconds_count")
    assert latency[key] >= 2


def test_a_trailing_slash_is_labelled_with_its_route(alice: User) -> None:
    key = (("method", "GET"), ("route", "/api/contacts"), ("status", "200"))
    before = samples(alice.client, "segmenti_http_requests_total").get(key, 0)
    assert alice.get("/api/contacts/").status_code == 200
    assert samples(alice.client, "segmenti_http_requests_total")[key] == before + 1


def test_unknown_paths_share_one_label(client: object) -> None:
    client.get("/no/such/path/1")  # type: ignore[attr-defined]
    counted = samples(client, "segmenti_http_requests_total")
    assert any(dict(labels)["route"] == "<unmatched>" for labels in counted)
    assert not any("/no/such" in dict(labels)["route"] for labels in counted)


def test_segment_evaluation_time_and_pool_are_exported(alice: User) -> None:
    def evaluations() -> dict[str, float]:
        found = samples(alice.client, "segmenti_segment_evaluation_seconds_count")
        return {dict(labels)["operation"]: value for labels, value in found.items()}

    before = evaluations()
    alice.make_segment(filters_countries=["IT"])  # counted from scratch
    alice.make_contact("+393331234501")  # adjusts the filter segment's count
    after = evaluations()
    assert after["count_filter"] == before.get("count_filter", 0) + 1
    assert after["contacts_changed"] >= before.get("contacts_changed", 0) + 1
    pool = samples(alice.client, "segmenti_db_pool_connections")
    assert {dict(labels)["state"] for labels in pool} >= {"checked_out", "idle"}


def test_a_request_id_is_made_or_kept_and_echoed(client: object) -> None:
    made = client.get("/health").headers["x-request-id"]  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    again = client.get("/health").headers["x-request-id"]  # type: ignore[attr-defined]
    assert again != made
    kept = client.get("/health", headers={"X-Request-Id": "abc-123.4"})  # type: ignore[attr-defined]
    assert kept.headers["x-request-id"] == "abc-123.4"
    for insane in ('a"b<script>', "x" * 200, "-starts-with-dash"):
        answered = client.get("/health", headers={"X-Request-Id": insane})  # type: ignore[attr-defined]
        assert re.fullmatch(r"[0-9a-f]{32}", answered.headers["x-request-id"]), insane


def test_errors_carry_the_request_id_too(alice: User) -> None:
    response = alice.post(
        "/api/segments", json={"type": "nonsense"}, headers={"X-Request-Id": "r1"}
    )
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "r1"


def test_one_log_line_per_request_with_its_fields(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="segmenti.access"):
        alice.get("/api/segments/77", headers={"X-Request-Id": "trace-77"})
    lines = [record for record in caplog.records if record.name == "segmenti.access"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["request_id"] == "trace-77"
    assert fields["route"] == "/api/segments/{segment_id}"
    assert fields["path"] == "/api/segments/77"
    assert fields["status"] == 404
    assert fields["user_id"] == alice.id
    assert fields["duration_ms"] >= 0


@pytest.fixture
def segmenti_logger() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("segmenti", "uvicorn")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.mark.usefixtures("segmenti_logger")
def test_log_json_writes_one_json_object_per_line(
    alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    observability.configure_logging(Settings(log_json=True))
    observability.configure_logging(Settings(log_json=True))  # idempotent: one handler
    alice.get("/api/segments", headers={"X-Request-Id": "json-1"})
    lines = [line for line in capsys.readouterr().err.splitlines() if "json-1" in line]
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["logger"] == "segmenti.access"
    assert document["request_id"] == "json-1"
    assert document["status"] == 200
    assert document["route"] == "/api/segments"


def test_multiprocess_directory_only_with_several_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environ: dict[str, str] = {}
    monkeypatch.setattr(observability.os, "environ", environ)
    monkeypatch.setattr(observability.tempfile, "gettempdir", lambda: str(tmp_path))
    assert observability.prepare_multiprocess(1, 8000) is None and not environ
    stale = tmp_path / f"segmenti-metrics-{os.getuid()}-8000"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"from a previous run")
    made = observability.prepare_multiprocess(2, 8000)
    assert made == str(stale) == environ["PROMETHEUS_MULTIPROC_DIR"]
    assert list(stale.iterdir()) == []  # a previous run's values are not summed in
    operators = tmp_path / "mine"
    operators.mkdir()
    (operators / "keep").write_text("x")
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(operators)
    assert observability.prepare_multiprocess(4, 8000) == str(operators)
    assert (operators / "keep").exists()  # an operator's directory is left alone
