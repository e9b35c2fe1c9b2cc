"""Admin routes for API keys: make one (its secret shown once), list them, revoke one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.auth import Caller, allow
from api.deps import KeysDep
from medley.keys import KeyInfo, Role

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[allow(Role.ADMIN)])


class KeyIn(BaseModel):
    role: Role
    name: str = Field(min_length=1, max_length=80, description="who holds it (an app, a person)")


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked: bool

    @classmethod
    def of(cls, k: KeyInfo) -> KeyOut:
        return cls(id=k.key_id, name=k.name, role=k.role, revoked=k.revoked,
                   created_at=datetime.fromtimestamp(k.created_at, UTC))


class KeyCreated(KeyOut):
    key: str = Field(description="the secret; it is not stored and cannot be shown again")


class KeyList(BaseModel):
    keys: list[KeyOut]


@router.post("", response_model=KeyCreated, status_code=201)
def create_key(keys: KeysDep, body: KeyIn) -> KeyCreated:
    who, secret = keys.create(body.role, body.name)
    return KeyCreated(**KeyOut.of(keys.get(who.key_id)).model_dump(), key=secret)


@router.get("", response_model=KeyList)
def list_keys(keys: KeysDep) -> KeyList:
    return KeyList(keys=[KeyOut.of(k) for k in keys.list()])


@router.get("/me", response_model=KeyOut, dependencies=[allow(*Role)])
def whoami(keys: KeysDep, who: Caller) -> KeyOut:
    """The calling key itself (any role; a route's roles add to its router's): the console
    uses it to check a sign-in."""
    return KeyOut.of(keys.get(who.key_id))


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(keys: KeysDep, key_id: Annotated[str, Path(max_length=32)]) -> KeyOut:
    return KeyOut.of(keys.revoke(key_id))
