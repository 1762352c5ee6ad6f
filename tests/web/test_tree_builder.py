"""The dashboard's filter tree builder in Chromium (Playwright), against a real
`segmenti serve` process: add a condition and a group, negate a group, switch a group
between all and any, with the live count following each edit; then save, and find the
tree again when editing. The server and browser set-up are test_browser.py's."""

from __future__ import annotations

from pathlib import Path

from tests.web.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, chromium, server

__all__ = ["chromium", "server"]  # fixtures


def test_build_a_tree_with_groups_negation_and_any_watching_the_count(
    chromium: Path, server: tuple[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, api_key = server  # 40 contacts: 30 on plan pro, ages 20 to 59 by creation
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            script_errors: list[str] = []
            page.on("pageerror", lambda error: script_errors.append(str(error)))
            page.goto(base + "/sign-in")
            page.get_by_label("API key").fill(api_key)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("link", name="New segment").click()
            page.get_by_label("Name", exact=True).fill("Pro, or not young")
            page.get_by_role("radio", name="Groups: all of, any of, not").check()
            count = page.locator("[data-count]")
            root = page.locator("#f-filter")
            expect(root).to_be_visible()
            expect(page.locator("#f-filter-text")).to_be_hidden()  # the builder edits it
            expect(count).to_have_attribute("data-count", "40")  # an empty all: everyone

            # A condition: plan is pro.
            root.locator("> .tree-actions > [data-add-condition]").click()
            page.locator("#f-filter-all-0 [data-leaf-key]").fill("plan")
            page.locator("#f-filter-all-0 [data-leaf-value]").fill("pro")
            expect(count).to_have_attribute("data-count", "30")

            # A group (any) holding age < 30; its error shows live until it is complete.
            root.locator("> .tree-actions > [data-add-group]").click()
            leaf = page.locator("#f-filter-all-1-any-0")
            leaf.locator("[data-leaf-key]").fill("age")
            leaf.locator("[data-leaf-condition]").select_option("lower_than")
            leaf.locator("[data-leaf-value]").fill("young")
            expect(page.locator(".preview-error")).to_contain_text(
                "filter.all[1].any[0]: value must be a number for lower_than"
            )
            leaf.locator("[data-leaf-value]").fill("30")
            expect(count).to_have_attribute("data-count", "7")  # pro and under 30

            # Negate the group: pro and not under 30.
            # (click: the builder redraws the group under its `not` at once)
            page.locator("#f-filter-all-1 > legend [data-negate]").click()
            expect(page.locator("#f-filter-all-1-not > legend [data-negate]")).to_be_checked()
            expect(count).to_have_attribute("data-count", "23")

            # Switch the root to any: pro, or not under 30.
            root.locator("> legend [data-group-kind]").select_option("any")
            expect(page.locator("#f-filter-any-1-not")).to_be_visible()
            expect(count).to_have_attribute("data-count", "37")

            page.get_by_role("button", name="Save segment").click()
            expect(page.locator("[data-total]")).to_have_text("37")
            expect(page.locator("[data-tree-definition]")).to_contain_text("At least one")

            # Editing shows the same tree in the builder.
            page.get_by_role("link", name="Edit").click()
            expect(page.get_by_role("radio", name="Groups: all of, any of, not")).to_be_checked()
            expect(page.locator("#f-filter-any-1-not-any-0 [data-leaf-value]")).to_have_value("30")
            expect(count).to_have_attribute("data-count", "37")
            assert script_errors == []
        finally:
            browser.close()
