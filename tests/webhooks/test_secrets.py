"""Webhook secrets at rest: without SEGMENTI_WEBHOOK_ENCRYPTION_KEY a key file is made
once beside the database, readable by its owner only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from segmenti.settings import Settings
from segmenti.webhooks.secrets import Box, box, new_secret, secret_bytes


def test_a_fresh_machine_gets_a_private_key_file_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'segmenti.db'}")
    sealed = box(settings).seal("whsec_abc")
    key_file = tmp_path / "webhook_key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert box(settings).open(sealed) == "whsec_abc"  # the same key, read again
    assert "whsec_abc" not in sealed


def test_a_configured_key_is_used_and_a_wrong_one_says_so(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", webhook_encryption_key=key)
    sealed = box(settings).seal("whsec_abc")
    assert not (tmp_path / "webhook_key").exists()
    with pytest.raises(ValueError, match="cannot be decrypted"):
        Box(Fernet.generate_key().decode()).open(sealed)
    with pytest.raises(ValueError, match="Fernet key"):
        Box("not a key")


def test_secrets_are_standard_webhooks_secrets() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_bytes(secret)) == 24
