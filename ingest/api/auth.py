"""Bearer API keys: who is calling, merchant or admin.

Keys come from the config file; once loaded only their SHA-256 digests stay in this table. A
presented key is hashed and compared with *every* known digest by ``hmac.compare_digest``, so
the time taken does not depend on which key (if any) matched or how much of it did.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from engine.config import PlatformConfig
from engine.types import MerchantId


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a merchant (``merchant_id`` set) or an admin (``None``)."""

    merchant_id: MerchantId | None

    @property
    def is_admin(self) -> bool:
        return self.merchant_id is None

    def may_see(self, merchant_id: str) -> bool:
        """Admins see every merchant's data; a merchant only its own."""
        return self.merchant_id is None or self.merchant_id == merchant_id


ADMIN = Principal(None)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The digests of every configured key and whom each belongs to."""

    __slots__ = ("_table",)

    def __init__(self, config: PlatformConfig) -> None:
        table = [(_digest(key), ADMIN) for key in config.admin_api_keys]
        for merchant in config.merchants:
            table.extend((_digest(key), Principal(merchant.merchant_id)) for key in merchant.api_keys)
        self._table: tuple[tuple[bytes, Principal], ...] = tuple(table)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller of an ``Authorization: Bearer <key>`` header; ``None`` when it is missing,
        malformed or names no known key."""
        if not authorization:
            return None
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or len(key) > 1024:
            return None
        presented = _digest(key)
        found: Principal | None = None
        for digest, principal in self._table:
            if hmac.compare_digest(digest, presented):
                found = principal
        return found
