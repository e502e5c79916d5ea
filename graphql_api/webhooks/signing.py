"""Delivery signatures: HMAC-SHA256 over the timestamp and the body.

Every delivery carries ``X-Quantgraph-Signature: t=<unix seconds>,v1=<hex>``,
where ``<hex>`` is HMAC-SHA256 with the webhook's secret over
``"<t>.<body>"`` (the raw request body bytes). A receiver recomputes it,
compares in constant time and refuses timestamps too far from its clock, so a
captured request cannot be replayed later. ``X-Quantgraph-Delivery`` is the
delivery id: a receiver that sees one twice (a retry after a lost answer)
handles it once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "new_secret",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Quantgraph-Signature"
DELIVERY_HEADER = "X-Quantgraph-Delivery"
EVENT_HEADER = "X-Quantgraph-Event"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(
        sign(secret, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}"
    )
