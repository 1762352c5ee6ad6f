"""Issue 15's dashboard pages in Chromium, against a real `segmenti serve` (with its
deliverer) and a webhook receiver on loopback that verifies signatures with the
`standardwebhooks` package: create a webhook (its secret shown once), test it, watch
its deliveries, replay; a segment's history chart; a snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.web.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, _free_port, _screenshot, _seed
from tests.web.test_browser import chromium as chromium  # noqa: PLC0414 - the fixture
from tests.webhooks.conftest import KEY
from tests.webhooks.receiver import Receiver, receiving


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Receiver]]:
    api_key = _seed(database_url)
    port = _free_port()
    env = {
        **os.environ,
        "SEGMENTI_DATABASE_URL": database_url,
        "SEGMENTI_SECRET_KEY": "browser-test-" + "k" * 40,
        "SEGMENTI_LOG_LEVEL": "warning",
        "SEGMENTI_WEBHOOKS_ALLOW_PRIVATE": "1",
        "SEGMENTI_WEBHOOK_ENCRYPTION_KEY": KEY,
        "SEGMENTI_DELIVERER_POLL_SECONDS": "0.1",
    }
    log = (tmp_path / "server.log").open("wb")
    command = [str(Path(sys.executable).with_name("segmenti")), "serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with receiving() as receiver:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=1):  # noqa: S310
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("no server:\n" + (tmp_path / "server.log").read_text())
                    time.sleep(0.1)
            yield base, api_key, receiver
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.close()


def test_webhook_snapshot_and_history_pages(
    chromium: Path, served: tuple[str, str, Receiver], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, api_key, receiver = served
    api: dict[str, Any] = {"headers": {"Authorization": f"Bearer {api_key}"}}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            # In English explicitly: the names looked up below are the English ones
            # (tests/web/test_i18n.py checks these pages in Italian).
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            page.set_default_timeout(TIMEOUT_MS)
            script_errors: list[str] = []
            page.on("pageerror", lambda error: script_errors.append(str(error)))
            expect.set_options(timeout=TIMEOUT_MS)
            page.goto(base + "/")
            page.get_by_label("API key").fill(api_key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Segments")).to_be_visible()

            # A webhook: the secret is shown once, on the page that created it.
            page.get_by_role("link", name="Webhooks").click()
            expect(page.get_by_text("No webhooks yet.")).to_be_visible()
            page.get_by_label("URL").fill(receiver.url)
            page.get_by_role("button", name="Create the webhook").click()
            secret = page.locator("[data-secret]").inner_text()
            assert secret.startswith("whsec_")
            receiver.secret = secret
            page.get_by_role("link", name="I have kept it").click()
            assert secret not in page.content()

            # Test: a signed test event, answered 200, verified by the receiver.
            page.get_by_role("button", name="Send a test event").click()
            expect(page.locator(".flash")).to_contain_text("answered 200")
            assert receiver.received[-1].verified

            # Writes through the API become deliveries, listed on the webhook's page.
            segment = httpx2.post(
                f"{base}/api/segments", json={"name": "Italy", "filters_countries": ["IT"]}, **api
            ).json()["data"]["id"]
            for n in range(3):
                created = httpx2.post(
                    f"{base}/api/contacts", json={"phone_number": f"+39333200{n:04d}"}, **api
                )
                assert created.status_code == 201, created.text
            assert len(receiver.wait_for(4)) == 4  # the test event and three entries
            page.reload()
            attempts = page.get_by_role("region", name="Delivery attempts").locator("tbody tr")
            expect(attempts.first).to_contain_text("200")
            page.get_by_label("Send again the events after id").fill("0")
            page.get_by_role("button", name="Replay").click()
            expect(page.locator(".flash")).to_have_text("Events after 0 will be sent again.")
            assert len(receiver.wait_for(7)) == 7  # the three again
            _screenshot(page, tmp_path, "webhook-page.png")

            # The segment's page: its history as a picture, drawn by the server.
            page.goto(f"{base}/segments/{segment}")
            chart = page.locator("img.history-chart")
            expect(chart).to_be_visible()
            page.wait_for_function(
                "() => document.querySelector('img.history-chart').naturalWidth > 0"
            )
            svg = httpx2.get(
                f"{base}/segments/{segment}/history.svg",
                cookies={c["name"]: c["value"] for c in page.context.cookies()},
            )
            assert svg.headers["content-type"].startswith("image/svg+xml")
            assert "<polyline" in svg.text or "<circle" in svg.text
            _screenshot(page, tmp_path, "segment-history.png")

            # A snapshot: taken from the segment's snapshots page, members with status.
            page.get_by_role("link", name="Snapshots of this segment").click()
            page.get_by_role("button", name="Take a snapshot now").click()
            expect(page.locator(".flash")).to_have_text("Snapshot taken.")
            expect(page.locator("[data-total]")).to_have_text("31")
            rows = page.get_by_role("region", name="Members as frozen").locator("tbody tr")
            expect(rows).to_have_count(25)
            expect(page.locator("[data-status]").first).to_have_attribute("data-status", "active")
            expect(page.locator("[data-status]").first).to_have_text("active")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            assert script_errors == []
        finally:
            browser.close()
