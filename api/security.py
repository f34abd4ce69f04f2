"""API keys: random secrets shown once, stored as SHA-256 hashes, each with one role.

A key is 32 random bytes, so a fast hash is enough (no dictionary to guess from); verified keys
are cached for a few seconds so a decision does not pay a database read for its key.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import Engine

from decisioning.errors import InvalidInput
from decisioning.sql import repositories as repo
from decisioning.sql.session import unit_of_work

Role = Literal["channel", "marketer", "analyst", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
KEY_PREFIX = "dk_"
CACHE_SECONDS = 5.0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, role: str, name: str = "") -> str:
    """Store a new key for ``role`` and return the secret (it is not stored)."""
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with unit_of_work(engine) as connection:
        repo.insert_api_key(
            connection,
            {
                "key_id": key_id,
                "key_hash": hash_key(key),
                "role": role,
                "name": name or role,
                "created_at": datetime.now(UTC),
            },
        )
    return key


def key_id(key: str) -> str:
    """The public id inside a key (``dk_<id>_<secret>``); ``unknown`` for other shapes."""
    parts = key.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] + "_" == KEY_PREFIX else "unknown"


class KeyCache:
    """Key hash -> role, remembered for ``CACHE_SECONDS`` (revocations apply within that)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._roles: dict[str, tuple[str | None, float]] = {}

    def role(self, key: str) -> str | None:
        digest = hash_key(key)
        cached = self._roles.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            return cached[0]
        with self._engine.connect() as connection:
            role = repo.role_for_key_hash(connection, digest)
        with self._lock:
            if len(self._roles) > 10_000:  # bounded: unknown keys must not grow it forever
                self._roles.clear()
            self._roles[digest] = (role, now)
        return role
