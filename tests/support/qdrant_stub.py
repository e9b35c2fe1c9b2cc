"""A stand-in Qdrant server for fault tests: qdrant-client's own local engine behind the REST
routes `index.qdrant.QdrantIndex` calls, on a real TCP port.

There is no Qdrant server binary on these machines. With this, the service talks HTTP through
the real qdrant-client, and `stop()` makes the server really unreachable (connections refused),
so an outage goes through the same code path a dead server would; `start()` brings it back on
the same port with its data, like a server restarted on its storage.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

Route = Callable[[QdrantClient, str, dict[str, Any]], Any]


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _query(local: QdrantClient, c: str, body: dict[str, Any]) -> Any:
    req = qm.QueryRequest.model_validate(body)
    res = local.query_points(c, query=req.query, using=req.using, query_filter=req.filter,
                             limit=req.limit or 10, with_payload=req.with_payload or False,
                             with_vectors=req.with_vector or False)
    return {"points": _dump(res.points)}


def _retrieve(local: QdrantClient, c: str, body: dict[str, Any]) -> Any:
    req = qm.PointRequest.model_validate(body)
    return local.retrieve(c, ids=req.ids, with_payload=req.with_payload or False,
                          with_vectors=req.with_vector or False)


DONE = {"operation_id": 0, "status": "completed"}
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/exists"): lambda local, c, _b: {"exists": local.collection_exists(c)},
    ("GET", "/info"): lambda local, c, _b: local.get_collection(c),
    ("PUT", "/info"): lambda local, c, b: local.create_collection(
        c, vectors_config=qm.CreateCollection.model_validate(b).vectors),
    ("PUT", "/index"): lambda _l, _c, _b: DONE,  # the local engine has no payload indexes
    ("PUT", "/points"): lambda local, c, b: local.upsert(
        c, points=qm.PointsList.model_validate(b).points) and DONE,
    ("PUT", "/points/vectors"): lambda local, c, b: local.update_vectors(
        c, points=qm.UpdateVectors.model_validate(b).points) and DONE,
    ("POST", "/points/delete"): lambda local, c, b: local.delete(
        c, points_selector=qm.PointIdsList.model_validate(b)) and DONE,
    ("POST", "/points/query"): _query,
    ("POST", "/points"): _retrieve,
    ("POST", "/points/count"): lambda local, c, b: local.count(
        c, count_filter=qm.CountRequest.model_validate(b).filter, exact=True),
}
PATH = re.compile(r"^/collections/(?P<c>[^/]+)(?P<rest>/.*)?$")


class QdrantStub:
    def __init__(self) -> None:
        self.local = QdrantClient(location=":memory:")  # kept across stop/start
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._server: ThreadingHTTPServer | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so stop() leaves no open keep-alive
            # connection that would still answer.
            def _serve(self) -> None:
                stub.requests += 1
                path = self.path.split("?", 1)[0]
                m = PATH.match(path)
                c, rest = (m["c"], m["rest"] or "/info") if m else ("", "")
                route = ROUTES.get((self.command, rest))
                size = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(size) or b"{}")
                if path == "/":  # the client's version check reads the bare object
                    self._reply(200, {"title": "qdrant stub", "version": "1.20.0"})
                    return
                if route is None:
                    self._reply(404, {"status": {"error": f"no route {self.command} {path}"}})
                    return
                try:
                    result = _dump(route(stub.local, c, body))
                except Exception as exc:
                    self._reply(400, {"status": {"error": f"{type(exc).__name__}: {exc}"}})
                    return
                self._reply(200, {"result": result, "status": "ok", "time": 0.0})

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _serve

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="qdrant-stub", daemon=True).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
