"""Faults with real processes: a writer killed with SIGKILL in the middle of a bulk
create leaves a consistent database, and `segmenti serve` finishes in-flight requests
when asked to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx2 as httpx
from sqlalchemy import func, select

from segmenti import auth
from segmenti.db.tables import contacts, segment_members, segments
from tests.counting import count_forms
from tests.served import SEGMENTI, free_port, wait_until_healthy

BATCH = 2_000

# Creates bulk segments of BATCH new numbers each, one transaction per segment. Before
# committing batch `crash_at`, it reports "written" and waits to be killed: every row of
# that segment is written, none committed.
WRITER = """
import sys, time
from segmenti.db.engine import Database
from segmenti.segments import service
from segmenti.segments.service import SegmentInput, normalize_bulk
from segmenti.settings import Settings

url, user_id, batch, crash_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = Database(Settings(database_url=url))
for n in range(crash_at + 1):
    numbers = [f"+39333{n:02d}{i:05d}" for i in range(batch)]
    data = SegmentInput(name=f"bulk {n}", bulk=normalize_bulk(numbers, limit=batch))
    with db.write() as session:
        service.create_segment(session, user_id=user_id, data=data)
        if n == crash_at:
            print("written", flush=True)
            time.sleep(120)
    print("committed", n, flush=True)
"""


def read_line(stream: IO[str], timeout: float) -> str:
    """The next line of a child's output, or a failure instead of a hang."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"no output within {timeout} s"
    return found[0].strip()


def test_sigkill_in_the_middle_of_a_bulk_create_leaves_a_consistent_database(
    database_url: str, db: Any
) -> None:
    with db.write() as session:
        user_id, _key = auth.create_user(session, name="victim")
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, database_url, str(user_id), str(BATCH), "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(child.stdout, 60) == "committed 0"  # type: ignore[arg-type]
        assert read_line(child.stdout, 60) == "committed 1"  # type: ignore[arg-type]
        assert read_line(child.stdout, 60) == "written"  # type: ignore[arg-type]
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with db.read() as session:
        names = (
            session.execute(
                select(segments.c.name).where(segments.c.user_id == user_id).order_by(segments.c.id)
            )
            .scalars()
            .all()
        )
        total = session.execute(
            select(func.count()).select_from(contacts).where(contacts.c.user_id == user_id)
        ).scalar_one()
        orphans = session.execute(
            select(func.count())
            .select_from(contacts)
            .where(
                contacts.c.user_id == user_id,
                ~contacts.c.id.in_(
                    select(segment_members.c.contact_id).where(segment_members.c.user_id == user_id)
                ),
            )
        ).scalar_one()
    # The killed transaction left nothing: two segments, their contacts, no others.
    assert names == ["bulk 0", "bulk 1"]
    assert total == 2 * BATCH
    assert orphans == 0
    for totals in count_forms(db, user_id).values():
        assert set(totals.values()) == {BATCH}, totals


def in_progress(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("segmenti_http_requests_in_progress "):
            return float(line.split()[1])
    return 0.0


def test_serve_finishes_in_flight_requests_on_sigterm(tmp_path: Path) -> None:
    # SQLite on both backends' runs: what is tested is the server's shutdown.
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SEGMENTI_DATABASE_URL": url, "SEGMENTI_LOG_JSON": "true"}
    server = subprocess.Popen(
        [str(SEGMENTI), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api_key = ""
        deadline = time.monotonic() + 60
        while not api_key:
            line = read_line(server.stdout, 60)  # type: ignore[arg-type]
            if line.startswith("sgk_"):
                api_key = line
            assert time.monotonic() < deadline
        wait_until_healthy(base, server, seconds=deadline - time.monotonic())
        answers: list[Any] = []
        numbers = "\n".join(f"+39333{n:07d}" for n in range(15_000))

        def slow_create() -> None:
            answers.append(
                httpx.post(
                    f"{base}/api/segments",
                    headers={"Authorization": f"Bearer {api_key}"},
                    data={"name": "in flight", "phone_numbers": numbers},
                    timeout=60,
                )
            )

        request = threading.Thread(target=slow_create)
        request.start()
        while in_progress(base) < 2:  # the bulk create plus this scrape
            assert request.is_alive(), "the create finished before the stop could be sent"
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        request.join(60)
        assert answers and answers[0].status_code == 201, answers
        # uvicorn re-raises the signal once shut down, so the exit reports SIGTERM.
        assert server.wait(60) in (0, -signal.SIGTERM)
        lines = [line for line in server.stderr.read().splitlines() if line.strip()]  # type: ignore[union-attr]
        records = [json.loads(line) for line in lines]  # SEGMENTI_LOG_JSON: every line
        created = [r for r in records if r.get("route") == "/api/segments"]
        assert [r["status"] for r in created] == [201]
        assert any(r["logger"].startswith("uvicorn") for r in records)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
