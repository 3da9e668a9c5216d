"""Bearer tokens: an admin token manages devices, a device's token sends its events.

Tokens are 256-bit random secrets shown once; only their SHA-256 is stored. Checked
tokens are cached for ``ingest_token_cache_seconds`` so the hot path does not ask
PostgreSQL on every event; revoking a device clears its entries at once here, on other
replicas as soon as PostgreSQL NOTIFY tells them, and within that time at the latest.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from functions.ingest.problems import Forbidden, ServiceUnavailable, Unauthorized
from loom.logging import get_logger

__all__ = ["Principal", "TokenStore", "create_admin_token", "hash_token", "new_token"]

TOKEN_PREFIX = "loom_"
_TOKEN_SHAPE = re.compile(r"^loom_[A-Za-z0-9_-]{43}$")
log = get_logger("loom.ingest")


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for: the admin, or one device."""

    kind: Literal["admin", "device"]
    device_id: str | None = None
    label: str | None = None  # an admin token's label (who issued a command)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this route needs the admin token")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_admin_token(database_url: str, label: str = "admin") -> str:
    """Create an admin token (shown once) directly in the database."""
    token = new_token()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO access_tokens (token_hash, kind, label) VALUES (%s, 'admin', %s)",
            (hash_token(token), label),
        )
    return token


def admin_token_exists(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT 1 FROM access_tokens WHERE kind = 'admin' AND revoked_at IS NULL LIMIT 1"
        ).fetchone()
    return row is not None


class TokenStore:
    """Resolves ``Authorization: Bearer …`` to a :class:`Principal`."""

    def __init__(self, pool: AsyncConnectionPool, cache_seconds: float, retry_after: int) -> None:
        self._pool = pool
        self._ttl = cache_seconds
        self._retry_after = retry_after
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._forgotten = 0  # counts forget_*: a check that began before one is not cached

    async def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        return await self.lookup(token.strip())

    async def lookup(self, token: str) -> Principal:
        if not _TOKEN_SHAPE.match(token):  # no database round trip for what cannot be a token
            raise Unauthorized("unknown or revoked token")
        digest = hash_token(token)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        forgotten = self._forgotten
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT t.kind, t.device_id, t.label FROM access_tokens t"
                    " LEFT JOIN devices d ON d.device_id = t.device_id"
                    " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND d.deleted_at IS NULL",
                    (digest,),
                )
                row = await cur.fetchone()
        except (PoolTimeout, psycopg.Error) as exc:
            log.warning("ingest.token_check_failed", error=str(exc))
            raise ServiceUnavailable(
                "cannot check the token: database unavailable", retry_after=self._retry_after
            ) from exc
        if row is None:
            self._cache.pop(digest, None)
            raise Unauthorized("unknown or revoked token")
        principal = Principal(kind=row[0], device_id=row[1], label=row[2])
        if forgotten == self._forgotten:  # else it may have read a token revoked meanwhile
            self._cache[digest] = (now + self._ttl, principal)
        return principal

    def forget_device(self, device_id: str) -> None:
        """The device's tokens are checked against the database again from now on."""
        self._forgotten += 1
        for digest, (_, principal) in list(self._cache.items()):
            if principal.device_id == device_id:
                del self._cache[digest]

    def forget_all(self) -> None:
        self._forgotten += 1
        self._cache.clear()
