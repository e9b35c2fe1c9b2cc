"""API keys and the roles they carry.

A key is shown once, when it is made; the database keeps only its SHA-256. Keys are 32 random
bytes, so a plain fast hash is enough: there is no password to guess, only a hash to invert.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medley.db import Database
from medley.db.models import ApiKey, utcnow
from medley.domain import Role
from medley.errors import Conflict, InvalidInput, NotFound

PREFIX = "mdl_"
BOOTSTRAP_ID = "bootstrap"
__all__ = ["KeyStore", "Principal", "Role", "digest"]


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    role: Role
    created_at: float
    revoked: bool


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, Role(row.role), row.created_at.timestamp(),
                   row.revoked_at is not None)


class KeyStore:
    """Keys in the database, with a short in-process cache so a request costs no query.

    A revoked key keeps working in another process for at most `cache_s`.
    """

    def __init__(self, db: Database, cache_s: float = 5.0, cache_size: int = 10_000) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: OrderedDict[str, tuple[Principal | None, float]] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def create(self, role: Role | str, name: str) -> tuple[Principal, str]:
        """A new key: (who it is, the secret to hand over once)."""
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInput(f"role: {role!r} is not one of "
                               f"{', '.join(r.value for r in Role)}") from None
        name = name.strip()
        if not name or len(name) > 80:
            raise InvalidInput("name: give 1 to 80 characters")
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self.db.session() as s:
            s.add(ApiKey(id=key_id, name=name, role=role.value, hash=digest(secret)))
        return Principal(key_id, name, role), secret

    def ensure_bootstrap(self, secret: str) -> None:
        """Honour an admin key given in settings (a deployment secret); idempotent, also when
        several API processes start at once: the one whose insert loses the race finds the
        row the winner wrote on its second pass."""
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    row = s.get(ApiKey, BOOTSTRAP_ID)
                    if row is None:
                        s.add(ApiKey(id=BOOTSTRAP_ID, name="bootstrap admin",
                                     role=Role.ADMIN.value, hash=digest(secret)))
                    elif row.hash != digest(secret) or row.revoked_at is not None:
                        row.hash, row.revoked_at = digest(secret), None
                return
            except IntegrityError:
                if attempt:
                    raise

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(ApiKey)) or 0)

    def cached(self, secret: str) -> tuple[bool, Principal | None]:
        """(known, who) from memory alone: known is False when only the database can say."""
        if not secret or len(secret) > 256:
            return True, None
        with self._lock:
            hit = self._cache.get(digest(secret))
        if hit is not None and hit[1] > time.monotonic():
            return True, hit[0]
        return False, None

    def verify(self, secret: str) -> Principal | None:
        known, who = self.cached(secret)
        if known:
            return who
        h = digest(secret)
        now = time.monotonic()
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.hash == h))
            who = (Principal(row.id, row.name, Role(row.role))
                   if row is not None and row.revoked_at is None else None)
        with self._lock:
            self._cache[h] = (who, now + self.cache_s)
            self._cache.move_to_end(h)
            while len(self._cache) > self._size:  # a flood of made-up keys cannot grow it
                self._cache.popitem(last=False)
        return who

    def list(self) -> list[KeyInfo]:
        with self.db.session() as s:
            return [_info(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.created_at))]

    def get(self, key_id: str) -> KeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}")
            return _info(row)

    @staticmethod
    def _last_admin(s: Session, row: ApiKey) -> bool:
        # Locks the live admin rows (PostgreSQL): two admins revoking each other at once
        # cannot both pass this check.
        live = s.scalars(select(ApiKey.id).where(ApiKey.role == Role.ADMIN.value,
                                                     ApiKey.revoked_at.is_(None))
                         .with_for_update()).all()
        return list(live) == [row.id]

    def revoke(self, key_id: str) -> KeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}")
            if row.revoked_at is None:
                if row.role == Role.ADMIN.value and self._last_admin(s, row):
                    raise Conflict("this is the last admin key: create another admin key "
                                   "before revoking it, or no one could manage keys again")
                row.revoked_at = utcnow()
            info = _info(row)
        with self._lock:
            self._cache.clear()  # this process stops honouring it at once
        return info
