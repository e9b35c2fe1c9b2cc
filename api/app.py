"""The FastAPI application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import (
    analytics,
    console,
    errors,
    experiments,
    fusion,
    items,
    keys,
    metrics,
    recs,
    users,
)
from api.auth import Guard, document_roles, route_roles
from api.contract import typed_contract
from api.deps import ServiceDep
from api.edge import Edge
from api.metrics import RequestMetrics
from api.service import Service
from medley import __version__, logs
from medley.config import Settings, get_settings


def log_to_stderr(settings: Settings | None = None) -> None:
    logs.configure((settings or get_settings()).log_format)


def serving_app() -> FastAPI:
    """The app of one of several API processes (`medley serve --workers N`): uvicorn starts
    each process fresh, so logging is set up here and settings come from the environment."""
    log_to_stderr()
    return create_app()


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

    app.add_middleware(Edge)  # inside the guard: bodies it reads are already capped
    app.add_middleware(Guard, limits=settings.limits)
    app.add_middleware(RequestMetrics)  # outermost: the guard's refusals are counted too

    @app.get("/healthz", tags=["ops"])
    def healthz(service: ServiceDep) -> dict[str, object]:
        models = service.health
        index = service.index_state()
        recs = service.recs.status()
        if models is None:
            status = "starting"  # weights are still loading
        elif index["status"] != "ok" or "failing" in recs or any(
            v["status"] == "unavailable" for v in models.values()
        ):
            status = "degraded"
        else:
            status = "ok"
        return {
            "status": status,
            "version": __version__,
            "models": models or {},
            "index": index,  # backend, status (ok, unavailable) and why
            "broker": "embedded" if settings.embedded_broker else "external",
            # Which process answered, and whether it owns the embedded index and worker.
            "process": {"pid": os.getpid(), "role": service.role},
            "recommendations": recs,
            # Extraction queues: waiting, oldest age (s), finished per minute (the stale
            # sweep re-sends a queue's work once nothing moved for MEDLEY_REDISPATCH_IDLE_S).
            "queues": service.queue_state(),
            # The in-process worker (embedded default): restarts by the sweep after a stall.
            "worker": None if not service.workers else {
                "restarts": sum(w.restarts for w in service.workers),
                "queues": {",".join(w.queues): w.concurrency for w in service.workers}},
        }

    app.include_router(items.router)
    app.include_router(recs.router)
    app.include_router(fusion.router)
    app.include_router(experiments.router)
    app.include_router(users.router)
    app.include_router(analytics.router)
    app.include_router(keys.router)
    app.include_router(console.router)
    app.include_router(metrics.router)
    app.state.route_roles = route_roles(app)
    document_roles(app, app.state.route_roles)
    typed_contract(app)
    logging.getLogger("medley").setLevel(logging.INFO)
    return app
