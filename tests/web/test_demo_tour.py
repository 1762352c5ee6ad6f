"""The dashboard tour of docs/dashboard.md, on the demo's data, in Chromium: a real
`segmenti serve` over a database `segmenti demo` filled. It checks what the tour shows
(the catalogue's segments with their counts, a segment's members, the builder counting
the demo's contacts) and, with SEGMENTI_TEST_SCREENSHOTS=DIR, saves the tour's
screenshots there (`docs/screenshots`): the docs' pictures are made from the demo by
this test, never by hand.

Selectors are ids, names and links rather than visible words, so the tour survives the
dashboard's wording changing."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segmenti import demo
from segmenti.cli import app as cli
from tests.served import SEGMENTI, free_port, wait_until_healthy
from tests.web.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, _screenshot, chromium

__all__ = ["chromium"]  # the fixture, shared with test_browser

# The tour's run date and size: small enough to load in a second, large enough that
# every segment of the catalogue has members in the pictures.
TODAY = "2026-12-01"
CONTACTS = 3_000


def _italian_vips() -> int:
    people = demo.contacts(CONTACTS, seed=1, today=date.fromisoformat(TODAY))
    return sum(
        c.phone.country_code == "IT"
        and not c.has_opted_out
        and float(c.custom_parameters["total_spent"]) > 500
        for c in people
    )


@pytest.fixture
def demo_server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of `segmenti serve` over a database holding the demo."""
    env = {**os.environ, "SEGMENTI_DATABASE_URL": database_url}
    made = CliRunner().invoke(
        cli, ["demo", "--contacts", str(CONTACTS), "--today", TODAY, "--json"], env=env
    )
    assert made.exit_code == 0, made.output
    api_key = json.loads(made.stdout)["api_key"]
    port = free_port()
    env |= {"SEGMENTI_SECRET_KEY": "demo-tour-" + "k" * 40, "SEGMENTI_LOG_LEVEL": "warning"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        command = [str(SEGMENTI), "serve", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(base, process, output=log_path.read_text)
            yield base, api_key
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_dashboard_tour_on_the_demo(
    chromium: Path, demo_server: tuple[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, api_key = demo_server
    catalogue = [segment.name for segment in demo.CATALOGUE]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            script_errors: list[str] = []
            page.on("pageerror", lambda error: script_errors.append(str(error)))

            page.goto(base + "/")
            page.locator("#f-api_key").fill(api_key)
            page.locator("form button[type=submit]").first.click()
            page.wait_for_url(base + "/segments*")

            # The catalogue, oldest first as the team made it, each with its count.
            page.goto(base + "/segments?order_by=id&order_type=asc&results_per_page=50")
            rows = page.locator("table tbody tr")
            expect(rows).to_have_count(len(catalogue))
            for name in catalogue:
                expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
            _screenshot(page, tmp_path, "demo-segments.png")

            # One segment's page: its definition, its count and its first members.
            page.get_by_role("link", name="Clienti Pro a Milano", exact=True).click()
            expect(page.locator("[data-total]")).not_to_have_text("0")
            expect(page.locator(".definition")).to_contain_text("Milano")
            _screenshot(page, tmp_path, "demo-segment-page.png")

            # The builder: VIPs in Italy, counted live over the demo's contacts.
            page.goto(base + "/segments/new")
            count = page.locator("[data-count]")
            everyone = int(count.get_attribute("data-count") or "0")
            assert everyone > 0.9 * CONTACTS
            page.locator("#f-name").fill("VIP italiani")
            page.locator("#f-filters_custom_parameter_key-0").fill("total_spent")
            page.locator("#f-filters_custom_parameter_condition-0").select_option("bigger_than")
            page.locator("#f-filters_custom_parameter_value-0").fill("500")
            page.locator("#f-filters_countries").select_option(["IT"])
            expect(count).to_have_attribute("data-count", str(_italian_vips()))
            expect(page.locator(".preview tbody tr")).to_have_count(10)
            _screenshot(page, tmp_path, "demo-builder.png")

            # The contacts: names and cities of each country, numbers from fiction ranges.
            page.goto(base + "/contacts")
            expect(page.locator("table tbody tr").first).to_be_visible()
            _screenshot(page, tmp_path, "demo-contacts.png")
            assert script_errors == []
        finally:
            browser.close()
