"""How payorch's idempotency keys appear at Stripe: as ``Idempotency-Key`` headers and in metadata."""

from __future__ import annotations

import hashlib

#: The metadata key under which each PaymentIntent carries payorch's idempotency key.
IDEMPOTENCY_METADATA_KEY = "payorch_idempotency_key"

_MAX_STRIPE_IDEMPOTENCY_KEY = 255


def stripe_idempotency_key(key: str, purpose: str | None = None) -> str:
    """The Stripe ``Idempotency-Key`` for payorch's ``key`` (and a follow-up ``purpose``).

    The key itself (``<key>:<purpose>``) when it is printable ASCII of at most 255 characters, as
    HTTP headers and Stripe require; otherwise a digest of it, stable across calls and processes.
    """
    wanted = key if purpose is None else f"{key}:{purpose}"
    if len(wanted) <= _MAX_STRIPE_IDEMPOTENCY_KEY and wanted.isascii() and wanted.isprintable():
        return wanted
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"payorch-sha256:{digest}" if purpose is None else f"payorch-sha256:{digest}:{purpose}"


def search_query(key: str) -> str:
    """The Search API query for the PaymentIntents carrying ``key`` (quotes and backslashes escaped)."""
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{IDEMPOTENCY_METADATA_KEY}']:'{escaped}'"
