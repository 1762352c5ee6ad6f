"""A real `segmenti serve` delivers; SIGKILL between recording and delivering loses no
event: the next server sends every one of them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2

from tests.served import SEGMENTI, free_port, wait_until_healthy
from tests.webhooks.conftest import KEY
from tests.webhooks.receiver import receiving


def start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SEGMENTI), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def api_key_of(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = server.stdout.readline().strip()
        if line.startswith("sgk_"):
            return line
    raise AssertionError("segmenti serve printed no API key")


def test_sigkill_between_recording_and_delivering_loses_no_event(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SEGMENTI_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SEGMENTI_WEBHOOKS_ALLOW_PRIVATE": "1",
        "SEGMENTI_WEBHOOK_ENCRYPTION_KEY": KEY,
        "SEGMENTI_WEBHOOK_TIMEOUT_SECONDS": "30",
        "SEGMENTI_DELIVERER_LEASE_SECONDS": "2",
        "SEGMENTI_DELIVERER_POLL_SECONDS": "0.1",
        "SEGMENTI_WEBHOOK_RETRY_DELAYS": "0,0,0",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with receiving() as receiver:
        receiver.delays = [60.0]  # the first delivery hangs: the server dies mid-send
        server = start(env, port)
        try:
            headers: dict[str, Any] = {"Authorization": f"Bearer {api_key_of(server)}"}
            wait_until_healthy(base, server)
            created = httpx2.post(
                f"{base}/api/webhooks",
                headers=headers,
                json={"url": receiver.url, "events": ["segment.contact_entered"]},
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["data"]["secret"]
            httpx2.post(
                f"{base}/api/segments",
                headers=headers,
                json={"name": "Italy", "filters_countries": ["IT"]},
            ).raise_for_status()
            for n in range(10):
                httpx2.post(
                    f"{base}/api/contacts", headers=headers, json={"phone_number": f"+39333{n:07d}"}
                ).raise_for_status()
            deadline = time.monotonic() + 20
            while receiver.requests == 0:  # the first batch is out, and hangs
                assert time.monotonic() < deadline, "no delivery was attempted"
                time.sleep(0.05)
            for n in range(10, 20):  # recorded, not yet batched
                httpx2.post(
                    f"{base}/api/contacts", headers=headers, json={"phone_number": f"+39333{n:07d}"}
                ).raise_for_status()
            server.send_signal(signal.SIGKILL)
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        assert receiver.events() == []
        restarted = start(env, port)
        try:
            wait_until_healthy(base, restarted)
            received = receiver.wait_for(20, seconds=30)
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(30)
    phones = [event["phone_number"] for event in received]
    assert sorted(set(phones)) == [f"+39333{n:07d}" for n in range(20)]
    ids = [event["id"] for event in received]
    assert ids == sorted(ids)
