"""The README stays a front door and the docs site stays whole and offline.

The README holds what Segmenti is, the two commands, the walkthrough and the map of the
code; everything else is a page under docs/, listed in mkdocs.yml's nav. The site is
built once here (about a second) with --strict, as `make docs` and CI build it, and
must load nothing from the network.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mkdocs.config import load_config

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# A link or a script that would make the browser fetch something from elsewhere.
EXTERNAL_ASSET = re.compile(
    r"""<(?:script|img|iframe)\b[^>]*\bsrc=["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref=["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//"""
    r"""|url\(["']?(?:https?:)?//""",
    re.IGNORECASE,
)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return set().union(*(nav_pages(item) for item in nav)) if nav else set()
    if isinstance(nav, dict):
        return set().union(*(nav_pages(value) for value in nav.values()))
    return set()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    return site_dir


def test_the_readme_is_at_most_200_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail to docs/"


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    listed = nav_pages(config["nav"])
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    assert pages - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - pages == set(), "nav entries without a page"
    # The strict build below also fails on an omitted page, since this is a warning.
    assert config["strict"] is True
    assert config["validation"]["nav"]["omitted_files"] >= logging.WARNING


def test_the_readmes_relative_links_point_at_files_that_exist() -> None:
    targets = [
        link.split("#")[0]
        for link in MARKDOWN_LINK.findall(README.read_text())
        if "://" not in link and not link.startswith("#")
    ]
    assert "docs/api.md" in targets
    missing = [target for target in targets if not (ROOT / target).is_file()]
    assert missing == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = set(MARKDOWN_LINK.findall(README.read_text()))
    pages = {f"docs/{path.name}" for path in DOCS.glob("*.md") if path.name != "index.md"}
    assert pages - linked == set()


def test_the_site_builds_strict_and_the_home_page_has_the_walkthrough(site: Path) -> None:
    home = (site / "index.html").read_text()
    # Taken from README.md by pymdownx.snippets, between its section markers.
    assert "Walkthrough: the reference" in home
    assert "example, unchanged" in home
    assert "--8&lt;--" not in home and "--8<--" not in home


def test_the_built_site_loads_nothing_from_the_network(site: Path) -> None:
    offenders = []
    for path in site.rglob("*"):
        if path.suffix in {".html", ".css", ".js"}:
            match = EXTERNAL_ASSET.search(path.read_text(errors="replace"))
            if match:
                offenders.append(f"{path.relative_to(site)}: {match.group(0)}")
    assert offenders == []
    # And the pages' own markdown embeds nothing remote either.
    for page in DOCS.rglob("*.md"):
        assert not EXTERNAL_ASSET.search(page.read_text()), page
        assert not re.search(r"!\[[^\]]*\]\(https?://", page.read_text()), page
