"""The dashboard's tests ask for pages as a browser does (Accept: text/html), which is
what makes errors outside /api/ render as HTML pages rather than JSON:API bodies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(autouse=True)
def _browser_accept_header(client: TestClient) -> None:
    client.headers["Accept"] = "text/html,application/xhtml+xml,*/*;q=0.8"
