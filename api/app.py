"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api import console, errors, fusion, items, recs
from api.service import Service
from medley import __version__
from medley.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(settings)
        service.start()
        app.state.service = service
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="Medley", version=__version__, lifespan=lifespan)
    errors.install(app)

    @app.middleware("http")
    async def refuse_oversize(request: Request, call_next):
        # Refuse on the declared length before a byte of the body is parsed.
        declared = request.headers.get("content-length")
        multipart = request.headers.get("content-type", "").startswith("multipart/")
        limit = (3 * settings.max_upload_bytes + 1024 * 1024 if multipart
                 else settings.max_json_bytes)
        if declared and declared.isdigit() and int(declared) > limit:
            return JSONResponse(
                errors.error_body("payload_too_large", f"the request is over {limit} bytes"),
                status_code=413,
            )
        return await call_next(request)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> dict[str, object]:
        service: Service = request.app.state.service
        models = service.health
        if models is None:
            status = "starting"  # weights are still loading
        elif any(v["status"] == "unavailable" for v in models.values()):
            status = "degraded"
        else:
            status = "ok"
        return {
            "status": status,
            "version": __version__,
            "models": models or {},
            "index": "embedded" if settings.qdrant_url is None else "qdrant",
            "broker": "embedded" if settings.embedded_broker else "external",
            "recommendations": service.recs.status(),
        }

    app.include_router(items.router)
    app.include_router(recs.router)
    app.include_router(fusion.router)
    app.include_router(console.router)
    logging.getLogger("medley").setLevel(logging.INFO)
    return app
