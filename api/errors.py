"""The one place where domain errors become HTTP answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.base import IndexUnavailable
from medley.catalog import DispatchFailed
from medley.db.session import disk_full
from medley.errors import (
    BudgetExhausted,
    Conflict,
    InvalidInput,
    MedleyError,
    NotFound,
    PayloadTooLarge,
    StorageFull,
    Unavailable,
    UnsupportedMedia,
)

log = logging.getLogger(__name__)

STATUS: dict[type[MedleyError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    UnsupportedMedia: 415,
    PayloadTooLarge: 413,
    StorageFull: 507,
    Unavailable: 503,
    BudgetExhausted: 429,
}

HTTP_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large"}


def error_body(code: str, message: str, details: object | None = None) -> dict[str, object]:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def install(app: FastAPI) -> None:
    @app.exception_handler(MedleyError)
    async def _domain(_: Request, exc: MedleyError) -> JSONResponse:
        status = next((STATUS[t] for t in type(exc).__mro__ if t in STATUS), 400)
        headers = ({"Retry-After": str(exc.retry_after_s)} if isinstance(exc, BudgetExhausted)
                   else None)
        return JSONResponse(error_body(exc.code, exc.message), status_code=status,
                            headers=headers)

    @app.exception_handler(IndexUnavailable)
    async def _index(_: Request, exc: IndexUnavailable) -> JSONResponse:
        return JSONResponse(error_body("index_unavailable", str(exc)), status_code=503)

    @app.exception_handler(DispatchFailed)
    async def _broker(_: Request, exc: DispatchFailed) -> JSONResponse:
        return JSONResponse(error_body("broker_unavailable", f"the job queue is unreachable: "
                                       f"{exc}; try again shortly"), status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        # Any write path, not only uploads: events, preferences, keys, profiles.
        if disk_full(exc):
            return JSONResponse(error_body("storage_full", "the database is out of disk space; "
                                           "nothing was saved"), status_code=507)
        log.warning("database unavailable: %s", exc)
        return JSONResponse(error_body("database_unavailable", "the database cannot be reached; "
                                       "try again shortly"), status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "", "problem": "invalid request"}
        return JSONResponse(
            error_body("invalid_input", f"{first['field']}: {first['problem']}", details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # only the framework's body parsing raises it
            return _unreadable_body(exc.__cause__ or exc)
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal", "internal error"), status_code=500)


def _unreadable_body(cause: BaseException) -> JSONResponse:
    """The framework's "cannot parse the body" (400), said as the Errors table says it: a form
    part over Starlette's size for text parts (1 MiB) is 413, anything else unreadable 422."""
    why = str(getattr(cause, "message", None) or getattr(cause, "detail", None) or cause)
    if "maximum size" in why:
        return JSONResponse(error_body("payload_too_large", f"a text part of the form is too "
                                       f"large: {why}"), status_code=413)
    return JSONResponse(error_body("invalid_input", f"the request body cannot be read: {why}"),
                        status_code=422)
