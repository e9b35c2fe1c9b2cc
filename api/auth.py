"""Who may call what: API keys, roles, rate limits and body-size limits, checked at the edge.

Routes declare their roles with `allow(...)`; the `Guard` middleware enforces them before a byte
of the body is parsed, so a caller without a key learns nothing about a route's input (401), a
key of the wrong role is refused (403), a key over its rate waits (429 + Retry-After), and a
body over its limit is cut off (413) whether or not it declared its length.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import error_body
from medley.config import LimitSettings
from medley.keys import KeyStore, Principal, Role
from medley.ratelimit import RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Reachable without a key: load balancers' probe, the console's page (it asks for a key) and
# the API's own documentation.
PUBLIC = ("/healthz", "/metrics", "/console", "/docs", "/redoc", "/openapi.json")

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer mdl_...`")


class Allow:
    """A route's roles. As a dependency it documents the key in OpenAPI and hands over the
    caller the `Guard` already checked."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    # `async`: it only reads what the Guard left on the request, so it runs on the event
    # loop instead of costing every request a thread-pool hand-off (api/deps.py).
    async def __call__(self, request: Request,
                       _: HTTPAuthorizationCredentials | None = Security(_bearer)
                       ) -> Principal:
        return caller(request)


def allow(*roles: Role) -> Any:
    return Depends(Allow(*roles))


def caller(request: Request) -> Principal:
    who: Principal | None = request.scope.get("state", {}).get("principal")
    if who is None:  # only if a route escaped the Guard: refuse rather than serve anonymously
        raise HTTPException(401, "this route needs an API key")
    return who


async def _caller(request: Request) -> Principal:
    return caller(request)


Caller = Annotated[Principal, Depends(_caller)]


def is_public(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PUBLIC)


@dataclass(frozen=True)
class RouteRoles:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    roles: frozenset[Role]


def route_roles(app: FastAPI) -> list[RouteRoles]:
    """Every route's roles (its own and its router's), read once the routers are in; refuse to
    start with a route that forgot to say who may call it."""
    table, bare = [], []
    for ctx in iter_route_contexts(app.routes):
        if not isinstance(ctx.original_route, APIRoute) or is_public(ctx.path or ""):
            continue
        found = [d.call.roles for d in ctx.dependant.dependencies if isinstance(d.call, Allow)]
        if not found:
            bare.append(f"{sorted(ctx.methods or ())} {ctx.path}")
            continue
        table.append(RouteRoles(ctx.path_regex, frozenset(ctx.methods or ()),
                                frozenset[Role]().union(*found)))
    if bare:
        raise RuntimeError(f"routes without roles: {', '.join(bare)}")
    return table


REFUSALS = {
    "401": "No API key, or an unknown or revoked one",
    "403": "The key's role may not use this route",
    "413": "The body is over its limit",
    "429": "The key is over its rate limit (see Retry-After)",
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}},
}

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def document_roles(app: FastAPI, table: list[RouteRoles]) -> None:
    """Say each operation's roles in the OpenAPI schema (`x-roles`), for readers and clients."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                roles = next((r.roles for r in table if method.upper() in r.methods
                              and r.pattern.pattern == _regex_of(app, path)), None)
                if roles is None:
                    continue
                op["x-roles"] = sorted(r.value for r in roles | {Role.ADMIN})
                # The guard's refusals happen on every such route: list them, so a client
                # generated from the schema knows them.
                answers = op.setdefault("responses", {})
                for status, why in REFUSALS.items():
                    if status != "413" or "requestBody" in op:
                        answers.setdefault(status, {"description": why, "content": ERROR_BODY})
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _regex_of(app: FastAPI, path: str) -> str | None:
    for ctx in iter_route_contexts(app.routes):
        if ctx.path == path:
            return str(ctx.path_regex.pattern)
    return None


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class Guard:
    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app = app
        self.limits = limits  # the request body caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._body_limit(scope)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await refuse_json(send, 413, "payload_too_large", f"the request is over {limit} bytes")
            return
        if not is_public(scope["path"]):
            refusal = await self._admit(scope)
            if refusal is not None:
                await refuse_json(send, *refusal)
                return
        await self.app(scope, _capped(receive, limit), send)

    def _body_limit(self, scope: Scope) -> int:
        multipart = (header(scope, b"content-type") or "").startswith("multipart/")
        # An upload carries up to three media parts and a little form overhead.
        return (3 * self.limits.max_upload_bytes + 1024 * 1024 if multipart
                else self.limits.max_json_bytes)

    async def _admit(self, scope: Scope) -> tuple[int, str, str, dict[str, str]] | None:
        service = scope["app"].state.service
        keys: KeyStore = service.keys
        token = _bearer_token(header(scope, b"authorization"))
        challenge = {"WWW-Authenticate": "Bearer"}
        if token is None:
            return 401, "unauthenticated", (
                "this route needs an API key: send 'Authorization: Bearer <key>'"), challenge
        known, who = keys.cached(token)
        if not known:  # a database query: off the event loop
            who = await run_in_threadpool(keys.verify, token)
        if who is None:
            return 401, "unauthenticated", "the API key is unknown or revoked", challenge
        roles = self._route_roles(scope)
        if who.role is not Role.ADMIN and roles is not None and who.role not in roles:
            need = " or ".join(sorted(r.value for r in roles)) or "admin"
            return 403, "forbidden", (f"{_a(who.role.value)} key cannot use this route; "
                                      f"it needs {_a(need)} key"), {}
        limiter: RateLimiter = service.limiter
        wait = limiter.check(who.key_id, who.role, time.monotonic())
        if wait > 0:
            return 429, "rate_limited", (
                f"this key is over its rate limit; retry in {math.ceil(wait)} s"), {
                "Retry-After": str(max(1, math.ceil(wait)))}
        scope.setdefault("state", {})["principal"] = who
        return None

    def _route_roles(self, scope: Scope) -> frozenset[Role] | None:
        # An unknown path or method falls through to the app's own 404/405.
        table: list[RouteRoles] = scope["app"].state.route_roles
        path, method = scope["path"], scope["method"]
        for route in table:
            if method in route.methods and route.pattern.match(path):
                return route.roles
        return None


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return str(v.decode("latin-1"))
    return None


def _bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI re-raises an HTTPException met while reading the body: a 413 answer.
                raise BodyTooLarge(limit)
        return message

    return wrapped


async def refuse_json(send: Send, status: int, code: str, message: str,
                  headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(code, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"x-content-type-options", b"nosniff")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
