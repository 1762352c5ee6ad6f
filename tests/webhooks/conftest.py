"""Webhook tests deliver to a receiver on loopback: private addresses allowed, short
retry delays and time limits."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from segmenti.settings import Settings

KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        webhooks_allow_private=True,
        webhook_encryption_key=KEY,
        webhook_retry_delays="0,0,0",
        webhook_connect_timeout_seconds=1,
        webhook_timeout_seconds=1.5,
    )
