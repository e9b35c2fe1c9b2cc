"""`GET /metrics` (Prometheus text, no key: like /healthz, for the monitoring already in place)
and the middleware that times every request by its route template."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import header
from api.deps import ServiceDep
from medley import logs, metrics
from medley.recs import store

router = APIRouter(tags=["ops"])


class RequestMetrics:
    """Outermost: refusals by the guard (401, 413, 429) are counted and timed too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response
        # The caller's request id if it sent a sane one (a proxy's), else ours; echoed back.
        given = header(scope, b"x-request-id") or ""
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, seconds = _route(scope), time.perf_counter() - started
            metrics.request(route, scope["method"], status, seconds)
            if not logs.ACCESS.disabled:
                logs.ACCESS.info("%s %s %d", scope["method"], route, status, extra={
                    "request_id": request_id, "method": scope["method"], "route": route,
                    "status": status, "duration_ms": round(seconds * 1000, 2)})


def _route(scope: Scope) -> str:
    """The route template (`/v1/items/{item_id}`), never the path itself: ids would make the
    label set unbounded. Routed requests carry it; refused ones are matched here."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    app = scope.get("app")
    if app is None:
        return "unmatched"
    table = getattr(app.state, "metric_routes", None)
    if table is None:  # built once: (path regex, methods, template) of every route
        table = app.state.metric_routes = [
            (ctx.path_regex, frozenset(ctx.methods or ()), ctx.path)
            for ctx in iter_route_contexts(app.routes) if ctx.path]
    path, method = scope["path"], scope["method"]
    for regex, methods, template in table:
        if regex.match(path) and (not methods or method in methods):
            return str(template)
    return "unmatched"


@router.get("/metrics", include_in_schema=False)
async def scrape(service: ServiceDep) -> Response:
    body = await run_in_threadpool(metrics.render, lambda: _live(service))
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _live(service: Any) -> Mapping[str, tuple[str, Mapping[Any, float]]]:
    """Gauges read at scrape time from this process's state and the shared database."""
    out: dict[str, tuple[str, Mapping[Any, float]]] = {}
    queues = service.queue_state()
    if "unavailable" not in queues:
        for name, text, key in (
                ("medley_queue_depth", "Extractions waiting, per queue", "queued"),
                ("medley_queue_oldest_seconds", "Age of the oldest waiting extraction",
                 "oldest_queued_s"),
                ("medley_queue_finished_per_minute", "Extractions finished per minute (last "
                 "minute)", "finished_per_min")):
            out[name] = (text, {("queue", q): float(v[key]) for q, v in queues.items()})
    recs = service.recs
    with recs.db.session() as s:
        stored = store.max_seq(s)
    out["medley_events_behind"] = (
        "Stored events this process has not folded into its serving state yet",
        {None: float(max(stored - recs.behavior.last_seq, 0))})
    cache = recs.answers.stats()
    out["medley_answer_cache_hits"] = ("Answer cache hits (this process)",
                                       {None: float(cache["hits"])})
    out["medley_answer_cache_misses"] = ("Answer cache misses (this process)",
                                         {None: float(cache["misses"])})
    lists = recs.rec.user_lists.stats()
    out["medley_user_lists_hits"] = ("For-you requests that read the user's nearline "
                                     "candidates (this process)", {None: float(lists["hits"])})
    out["medley_user_lists_misses"] = ("For-you requests that searched them (this process)",
                                       {None: float(lists["misses"])})
    status = recs.status()
    out["medley_serving_ready"] = ("1 while this process serves a current catalog",
                                   {None: 1.0 if status["ready"] else 0.0})
    out["medley_set_aside_items"] = ("Items the serving sync could not load",
                                     {None: float(status["set_aside"]["items"])})
    log = service.experiments.exposures
    out["medley_exposures_written"] = ("Experiment exposures written (this process)",
                                       {None: float(log.written)})
    out["medley_exposures_dropped"] = ("Experiment exposures lost: buffer full or the database "
                                       "refused them (this process)", {None: float(log.dropped)})
    clicks = service.experiments.clicks()
    if clicks:
        out["medley_experiment_clicks"] = (
            "Clicks (view, complete, like, share) on answers of a running experiment, by arm",
            {(("experiment", str(e)), ("arm", arm)): float(n) for (e, arm), n in clicks.items()})
    return out
