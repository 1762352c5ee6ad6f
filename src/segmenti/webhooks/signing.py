"""Signatures of the Standard Webhooks specification: `webhook-signature` carries
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret, space-separated
(two for a day after a rotation). tests/api/test_webhooks.py verifies them with the
`standardwebhooks` package, an independent implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from segmenti.webhooks.secrets import secret_bytes


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secrets: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of a delivery (and its content type)."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(s, message_id=message_id, timestamp=timestamp, body=body) for s in secrets
        ),
    }
