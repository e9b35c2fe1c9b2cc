"""Service logs an operator can read: plain lines by default, or one JSON object per line
(`MEDLEY_LOG_FORMAT=json`) with the request id, route, status and duration of every request
(`api.metrics.RequestMetrics` logs them on the `medley.access` logger)."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

ACCESS = logging.getLogger("medley.access")
ACCESS.disabled = True  # until `configure` asks for JSON logs
# What a request's access line carries beside the message (`extra=` of the log call).
FIELDS = ("request_id", "method", "route", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(fmt: str) -> None:
    """Root logging for a service process. JSON also takes over uvicorn's own loggers, whose
    plain access lines `medley.access` replaces. Model libraries' progress bars (weights
    loading, encoding) are not log lines: off, before any model loads."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = fmt == "json"
    ACCESS.disabled = fmt != "json"  # plain logs keep uvicorn's access lines instead
