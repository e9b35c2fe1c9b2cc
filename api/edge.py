"""The edge: what every URL and JSON body must be before a route reads it, and the headers
every answer carries.

FastAPI parses JSON leniently (duplicate keys: the last wins; NaN accepted; a document nested
thousands deep or an integer of thousands of digits raises past its handlers as a 500). Here a
body is parsed once more, strictly, and refused with a readable 422 when it breaks a limit;
routes then parse it as before. The upload's `metadata` part goes through the same parser
(`strict_loads`).
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import header, refuse_json
from medley.errors import InvalidInput

MAX_DEPTH = 32  # nesting of objects and arrays in any JSON document
MAX_DIGITS = 40  # characters in one number literal (float64 holds 17 significant digits)
MAX_URL_BYTES = 8192  # path and query string together
JSON_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Every answer: the browser must not guess types. The console also may not be framed (it can
# publish and roll back) nor load anything from elsewhere.
NOSNIFF = (b"x-content-type-options", b"nosniff")
CONSOLE_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
     b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class _Bad(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Bad(f"the key {key[:64]!r} appears twice in one object")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise _Bad(f"a number is longer than {MAX_DIGITS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_DIGITS:
        raise _Bad(f"a number is longer than {MAX_DIGITS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Bad(f"the number {text} is beyond what a float holds")
    return value


def _constant(name: str) -> Any:
    raise _Bad(f"{name} is not a JSON number")


def _depth(data: Any) -> int:
    """Levels of nesting, walked a level at a time (containers only); stops past the limit."""
    level, frontier = 0, [data] if isinstance(data, dict | list) else []
    while frontier and level <= MAX_DEPTH:
        level += 1
        below: list[Any] = []
        for node in frontier:
            values = node.values() if isinstance(node, dict) else node
            below += [v for v in values if isinstance(v, dict | list)]
        frontier = below
    return level


def strict_loads(raw: str | bytes, what: str) -> Any:
    """`raw` parsed as JSON under the limits above; InvalidInput naming `what` otherwise."""
    try:
        data = json.loads(raw, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
    except RecursionError:
        raise InvalidInput(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    except _Bad as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} is not UTF-8 text") from None
    if _depth(data) > MAX_DEPTH:
        raise InvalidInput(f"{what}: nested deeper than {MAX_DEPTH} levels")
    return data


def url_problem(scope: Scope) -> tuple[int, str, str] | None:
    """Why this URL is refused, or None: too long (414), or percent-escapes that are not
    UTF-8 (422: decoded with replacement, two different ids would become one)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    if len(raw_path) + len(query) > MAX_URL_BYTES:
        return 414, "uri_too_long", f"the URL is over {MAX_URL_BYTES} bytes"
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
        unquote_to_bytes(query.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return 422, "invalid_input", "the URL holds percent-escaped bytes that are not UTF-8"
    return None


def _is_json(scope: Scope) -> bool:
    # No content type: FastAPI reads the body as JSON anyway, so it is checked as JSON too.
    kind = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return kind in ("", "application/json") or kind.endswith("+json")


class Edge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refuse = send  # `_refuse` sets nosniff itself
        send = _with_headers(send, scope["path"].startswith("/console"))
        problem = url_problem(scope)
        if problem is not None:
            await refuse_json(refuse, *problem)
            return
        if scope["method"] in JSON_METHODS and _is_json(scope):
            try:
                body = await _read(receive)
            except HTTPException as exc:  # the body cap (`api.auth._capped`)
                await refuse_json(refuse, exc.status_code, "payload_too_large", str(exc.detail))
                return
            if body is not None and body.strip():
                try:
                    strict_loads(body, "the JSON body")
                except InvalidInput as exc:
                    await refuse_json(refuse, 422, exc.code, exc.message)
                    return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


async def _read(receive: Receive) -> bytes | None:
    """The whole body, or None if the client went away."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes | None, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent or body is None:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def _with_headers(send: Send, console: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append(NOSNIFF)
            if console:
                headers.extend(CONSOLE_HEADERS)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
