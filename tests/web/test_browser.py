"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
`segmenti serve` process on a loopback port.

Skipped only where /usr/bin/chromium is absent outside CI; in CI (CI=true, where .ci/run
installs it) a missing browser fails. SEGMENTI_TEST_SCREENSHOTS=DIR also saves the
dashboard's screenshots in each language there (`docs/screenshots`, shown by
docs/dashboard.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segmenti import auth
from segmenti.contacts import service as contacts_service
from segmenti.contacts.service import ContactInput
from segmenti.db.engine import Database
from segmenti.phones import normalize_phone
from segmenti.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000

FIRST = ["Giulia", "Marco", "Sofia", "Luca", "Chiara", "Paolo", "Elena", "Matteo", "Anna", "Pierre"]
LAST = ["Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Conti"]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs it")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


def _seed(database_url: str) -> str:
    """A user with 40 contacts: 30 on plan pro; 28 Italian numbers and 12 French ones."""
    db = Database(Settings(database_url=database_url))
    with db.write() as session:
        user_id, api_key = auth.create_user(session, name="Alice")
        for i in range(40):
            number = f"+39 333 100 {i:04d}" if i < 28 else f"+33 6 12 34 {i:04d}"
            contacts_service.create_contact(
                session,
                user_id=user_id,
                data=ContactInput(
                    phone=normalize_phone(number),
                    name=f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}",
                    custom_parameters={
                        "plan": "free" if i % 4 == 0 else "pro",
                        "age": str(20 + i),
                    },
                ),
            )
    db.dispose()
    return api_key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a `segmenti serve` process on the test database."""
    api_key = _seed(database_url)
    port = _free_port()
    env = {
        **os.environ,
        "SEGMENTI_DATABASE_URL": database_url,
        "SEGMENTI_SECRET_KEY": "browser-test-" + "k" * 40,
        "SEGMENTI_LOG_LEVEL": "warning",
    }
    log = (tmp_path / "server.log").open("wb")
    command = [str(Path(sys.executable).with_name("segmenti")), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1):  # noqa: S310
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(
                        "the server did not start:\n" + (tmp_path / "server.log").read_text()
                    )
                time.sleep(0.1)
        yield base, api_key
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _screenshot(page: Any, tmp_path: Path, name: str, *, for_docs: bool = True) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    target = os.environ.get("SEGMENTI_TEST_SCREENSHOTS")
    if target and for_docs:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / name).write_bytes(path.read_bytes())


def test_build_a_filter_segment_watching_its_count_then_page_and_delete_it(
    chromium: Path, server: tuple[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, api_key = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(TIMEOUT_MS)
            script_errors: list[str] = []
            page.on("pageerror", lambda error: script_errors.append(str(error)))
            page.on(
                "console",
                lambda message: message.type == "error" and script_errors.append(message.text),
            )
            # The one failed load expected: the sign-in page answering 401 to a wrong key.
            refused = "the server responded with a status of 401"
            expect.set_options(timeout=TIMEOUT_MS)

            # Signed out, the dashboard asks for a key; a wrong one is refused in place.
            page.goto(base + "/")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.get_by_label("API key").fill("sgk_wrong")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#f-api_key-error")).to_have_text("unknown or revoked API key")
            page.get_by_label("API key").fill(api_key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Segments")).to_be_visible()

            # The builder counts every contact before any condition, then follows the filter.
            page.get_by_role("link", name="New segment").click()
            count = page.locator("[data-count]")
            expect(count).to_have_attribute("data-count", "40")
            page.get_by_label("Name", exact=True).fill("Pro customers in Italy")
            page.locator("#f-filters_custom_parameter_key-0").fill("plan")
            page.locator("#f-filters_custom_parameter_value-0").fill("pro")
            expect(count).to_have_attribute("data-count", "30")
            expect(page.locator("[data-preview-status]")).to_have_text("30 contacts match now")
            page.locator("#f-filters_countries").select_option(["IT"])
            expect(count).to_have_attribute("data-count", "21")
            expect(page.locator(".preview tbody tr")).to_have_count(10)
            _screenshot(page, tmp_path, "segment-builder.png", for_docs=False)

            # A second condition row: its error shows next to its value, live; removing
            # the row brings the count back.
            page.get_by_role("button", name="Add a condition").click()
            page.locator("#f-filters_custom_parameter_key-1").fill("age")
            page.locator("#f-filters_custom_parameter_condition-1").select_option("bigger_than")
            page.locator("#f-filters_custom_parameter_value-1").fill("old")
            expect(page.locator("#f-filters_custom_parameter_value-1-error")).to_have_text(
                "filters_custom_parameter_value[1] must be a number for bigger_than, got 'old'"
            )
            page.locator("#f-filters_custom_parameter_value-1").fill("40")
            expect(count).to_have_attribute("data-count", "6")
            page.get_by_role("button", name="Remove condition 2").click()
            expect(count).to_have_attribute("data-count", "21")
            page.locator("#f-filters_countries").select_option([])
            expect(count).to_have_attribute("data-count", "30")
            # Only the chosen type's fields show; a list of ids is counted when saved.
            page.get_by_role("radio", name="Contacts chosen by id").check()
            expect(page.locator("#f-filters_countries")).to_be_hidden()
            expect(page.locator(".preview-note")).to_be_visible()
            page.get_by_role("radio", name="Contacts matching a filter").check()
            expect(count).to_have_attribute("data-count", "30")
            page.get_by_label("Name", exact=True).fill("Pro customers")
            page.get_by_role("button", name="Save segment").click()

            # The segment page: definition, count, and members 25 at a time by id.
            expect(page.get_by_role("heading", name="Pro customers")).to_be_visible()
            expect(page.locator("[data-total]")).to_have_text("30")
            expect(page.locator(".definition")).to_contain_text("plan is")
            members = page.get_by_role("region", name="Members").locator("tbody tr")
            expect(members).to_have_count(25)
            expect(page.locator(".pager p")).to_contain_text("1–25 of 30 members")
            _screenshot(page, tmp_path, "segment-page.png", for_docs=False)
            page.get_by_role("link", name="Next →").click()
            expect(members).to_have_count(5)
            expect(page.locator(".pager p")).to_contain_text("26–30 of 30 members")
            page.get_by_role("link", name="← Previous").click()
            expect(members).to_have_count(25)

            # Delete, after a confirmation page.
            page.get_by_role("link", name="Delete").click()
            expect(page.get_by_role("heading", name="Delete “Pro customers”?")).to_be_visible()
            page.get_by_role("button", name="Delete the segment").click()
            expect(page.locator(".flash")).to_have_text("Segment deleted.")
            expect(page.get_by_text("No segments yet.")).to_be_visible()
            assert [error for error in script_errors if refused not in error] == []
        finally:
            browser.close()


# What each language's pages say, for the walk through the dashboard below.
WORDS = {
    "en": {
        "sign_in": "Sign in",
        "api_key": "API key",
        "segments": "Segments",
        "new_segment": "New segment",
        "name": "Name",
        "matching": "30 contacts match now",
        "greater": "is greater than",
        "add_condition": "Add a condition",
        "not_a_number": (
            'filters_custom_parameter_value[1] must be a number for bigger_than, got "l\'età"'
        ),
        "remove_condition": "Remove condition 2",
        "save": "Save segment",
        "saved": "Segment saved.",
        "definition": "plan is pro",
        "countries": "Country is Italy (IT)",
        "pager": "1–21 of 21 members",
        "import": "Import",
        "csv_file": "CSV file",
        "created": "Contacts created",
        "invalid": "Invalid (not imported)",
        "reason": "phone_number: not a valid phone number",
        "other_language": "Italiano",
    },
    "it": {
        "sign_in": "Accedi",
        "api_key": "Chiave API",
        "segments": "Segmenti",
        "new_segment": "Nuovo segmento",
        "name": "Nome",
        "matching": "30 contatti corrispondono ora",
        "greater": "maggiore di",
        "add_condition": "Aggiungi una condizione",
        "not_a_number": (
            "filters_custom_parameter_value[1] deve essere un numero per «maggiore di», "
            'ma è "l\'età"'
        ),
        "remove_condition": "Rimuovi la condizione 2",
        "save": "Salva il segmento",
        "saved": "Segmento salvato.",
        "definition": "plan è pro",
        "countries": "Il paese è Italia (IT)",
        "pager": "1–21 di 21 membri",
        "import": "Importa",
        "csv_file": "File CSV",
        "created": "Contatti creati",
        "invalid": "Non valide (non importate)",
        "reason": "numero di telefono: non è un numero di telefono valido",
        "other_language": "English",
    },
}
BROWSER_LOCALES = {"en": "en-GB", "it": "it-IT"}


@pytest.mark.parametrize("language", sorted(WORDS))
def test_each_language_through_sign_in_the_builder_a_segment_page_and_the_import(
    chromium: Path, server: tuple[str, str], tmp_path: Path, language: str
) -> None:
    """A browser set to the language (its Accept-Language) gets the whole walk in it:
    sign-in, the builder's live count and its errors, the saved segment's page, and
    an import's report; the switcher then turns the page to the other language."""
    from playwright.sync_api import expect, sync_playwright

    base, api_key = server
    words = WORDS[language]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                locale=BROWSER_LOCALES[language], viewport={"width": 1280, "height": 860}
            )
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            script_errors: list[str] = []
            page.on("pageerror", lambda error: script_errors.append(str(error)))

            page.goto(base + "/")
            expect(page.locator("html")).to_have_attribute("lang", language)
            _screenshot(page, tmp_path, f"sign-in-{language}.png")
            page.get_by_label(words["api_key"]).fill(api_key)
            page.get_by_role("button", name=words["sign_in"], exact=True).click()
            expect(page.get_by_role("heading", name=words["segments"])).to_be_visible()

            # The builder: the live count, in the language's words and numbers.
            page.get_by_role("link", name=words["new_segment"]).click()
            count = page.locator("[data-count]")
            expect(count).to_have_attribute("data-count", "40")
            page.get_by_label(words["name"], exact=True).fill("Pro")
            page.locator("#f-filters_custom_parameter_key-0").fill("plan")
            page.locator("#f-filters_custom_parameter_value-0").fill("pro")
            expect(page.locator("[data-preview-status]")).to_have_text(words["matching"])
            # An error typed live, with an apostrophe in the value, in the language.
            page.get_by_role("button", name=words["add_condition"]).click()
            page.locator("#f-filters_custom_parameter_key-1").fill("age")
            condition = page.locator("#f-filters_custom_parameter_condition-1")
            condition.select_option("bigger_than")
            expect(condition.locator("option:checked")).to_have_text(words["greater"])
            page.locator("#f-filters_custom_parameter_value-1").fill("l'età")
            expect(page.locator("#f-filters_custom_parameter_value-1-error")).to_have_text(
                words["not_a_number"]
            )
            page.get_by_role("button", name=words["remove_condition"]).click()
            page.locator("#f-filters_countries").select_option(["IT"])
            expect(count).to_have_attribute("data-count", "21")
            _screenshot(page, tmp_path, f"segment-builder-{language}.png")
            page.get_by_role("button", name=words["save"]).click()

            # The segment's page.
            expect(page.locator(".flash")).to_have_text(words["saved"])
            expect(page.locator("[data-total]")).to_have_text("21")
            expect(page.locator(".definition")).to_contain_text(words["definition"])
            expect(page.locator(".definition")).to_contain_text(words["countries"])
            expect(page.locator(".pager p")).to_contain_text(words["pager"])
            _screenshot(page, tmp_path, f"segment-page-{language}.png")

            # The import and its report.
            page.get_by_role("navigation").get_by_role("link", name=words["import"]).click()
            page.get_by_label(words["csv_file"]).set_input_files(
                files=[
                    {
                        "name": "contacts.csv",
                        "mimeType": "text/csv",
                        "buffer": b"phone_number,name,plan\n+393339990001,Ada,pro\n"
                        b"+39 12,Bad,free\n+393339990002,Bo,pro\n",
                    }
                ]
            )
            page.locator("form[enctype] button[type=submit]").click()
            report = page.locator("#report-title + table")
            expect(report.locator("tr", has_text=words["created"]).locator("td")).to_have_text("2")
            expect(report.locator("tr", has_text=words["invalid"]).locator("td")).to_have_text("1")
            expect(page.get_by_role("cell", name=words["reason"])).to_be_visible()
            _screenshot(page, tmp_path, f"import-{language}.png")

            # The switcher: the same page in the other language, remembered.
            page.get_by_role("link", name=words["other_language"]).click()
            other = "it" if language == "en" else "en"
            expect(page.locator("html")).to_have_attribute("lang", other)
            assert page.url == base + "/contacts/import"
            page.goto(base + "/segments")
            expect(page.locator("html")).to_have_attribute("lang", other)
            assert script_errors == []
        finally:
            browser.close()
