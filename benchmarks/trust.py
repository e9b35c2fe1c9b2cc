"""`python -m benchmarks trust`: hostile input at scale against a live `medley serve`.

A synthetic catalog (items, vectors, an event history, a trained collaborative model) is built
afresh in the data folder, client keys and an admin key are minted in its database, and the
server is started on it. Then:

1. load: N clients (one client key each, default rate limits) ask for recommendations and post
   event batches for a while; errors, latency per endpoint, and events accepted against events
   stored (`benchmarks.trust_load`);
2. fuzz: schemathesis sends valid and invalid requests to every operation with the admin key
   (`benchmarks.trust_fuzz`); any 5xx is a bug.

The fuzz changes the catalog (it deletes items, erases users), so the dataset is rebuilt on
every run rather than reused.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import write_report
from benchmarks.serve import start
from benchmarks.serve_data import INPUTS, DataSpec, bench_settings, prepare
from benchmarks.serve_proc import Server, code_state, mint_keys

ROOT = Path(__file__).resolve().parents[1]
ADMIN_ROLE_LIMIT = (1e6, 1e6)  # the fuzz's admin key is never throttled (429 hides handlers)


@dataclass
class Live:
    server: Server
    client_keys: list[str]
    admin_key: str
    inputs: dict[str, Any]
    manifest: dict[str, Any]
    startup: dict[str, Any]

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "medley.db"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def rate_limits() -> dict[str, tuple[float, float]]:
    """The default limits, but for the admin role."""
    from medley.config import Settings

    return {**{r.value: v for r, v in Settings().rate_limits.items()}, "admin": ADMIN_ROLE_LIMIT}


def trust_keys(data_dir: Path, clients: int) -> tuple[list[str], str]:
    """(a client key per client, an admin key), written to the dataset's database."""
    wanted = [("client", f"trust-load-{k}") for k in range(clients)] + [("admin", "trust-fuzz")]
    *keys, admin = mint_keys(bench_settings(data_dir), wanted)
    return keys, admin


def start_live(data_dir: Path, spec: DataSpec, clients: int,
               say: Callable[[str], None] = print) -> Live:
    """A fresh dataset, keys, and `medley serve` on it, ready (every item, event and the
    collaborative model loaded)."""
    manifest = prepare(data_dir, spec, rebuild=True, say=say)
    keys, admin = trust_keys(data_dir, clients)
    env = {"MEDLEY_RATE_LIMITS": json.dumps(rate_limits())}
    server, startup = start(data_dir, ROOT, spec, say, env)
    startup.pop("models", None)
    inputs = json.loads((data_dir / INPUTS).read_text())
    return Live(server, keys, admin, inputs, manifest, startup)


def unhandled_in_log(server: Server) -> int:
    """Tracebacks the server logged as unhandled errors (each answered 500)."""
    return server.log_path.read_text(errors="replace").count("unhandled error")


def run_fuzz(live: Live, max_examples: int, say: Callable[[str], None]) -> dict[str, Any]:
    import requests

    from benchmarks.trust_fuzz import fuzz_schema, live_schema

    headers = live.admin_headers
    known = {"item_id": live.inputs["items"][:500], "user_id": live.inputs["users"][:500]}
    with requests.Session() as session:
        return fuzz_schema(live_schema(live.server.base, headers), headers=headers, known=known,
                           max_examples=max_examples, base_url=live.server.base,
                           session=session, say=say)


def run_trust_bench(out: Path, data_dir: Path, *, items: int = 5000, events: int = 50_000,
                    clients: int = 16, duration: float = 60.0, fuzz_examples: int = 50,
                    say: Callable[[str], None] = print) -> dict[str, Any]:
    from benchmarks.trust_load import run_load
    from benchmarks.trust_report import markdown

    spec = DataSpec(items=items, events=events)
    started = time.perf_counter()
    live = start_live(data_dir, spec, clients, say)
    try:
        say(f"load: {clients} clients for {duration:.0f} s on recommendations and events")
        load = run_load("127.0.0.1", live.server.port, live.client_keys, live.inputs, duration,
                        live.db_path)
        say(f"load: {load['requests']} requests, {load['errors']} errors, events accepted "
            f"{load['events']['accepted']} stored {load['events']['stored']}")
        log_before_fuzz = unhandled_in_log(live.server)
        say(f"fuzz: up to {fuzz_examples} valid and {fuzz_examples} invalid cases per operation")
        fuzz = run_fuzz(live, fuzz_examples, say)
        fuzz["unhandled_errors_logged"] = unhandled_in_log(live.server) - log_before_fuzz
    finally:
        live.server.stop()
    data: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "code": code_state(),
        "dataset": {**live.manifest["spec"], "prepare_s": live.manifest["timings_s"]},
        "startup": live.startup,
        "rate_limits": {k: list(v) for k, v in rate_limits().items()},
        "load": load,
        "fuzz": fuzz,
        "total_s": round(time.perf_counter() - started, 1),
    }
    data["verdict"] = {"load_ok": load["ok"], "fuzz_5xx": fuzz["server_errors"],
                       "fuzz_transport_errors": fuzz["transport_errors"],
                       "ok": load["ok"] and fuzz["server_errors"] == 0
                       and fuzz["transport_errors"] == 0}
    write_report(out, "trust", data, markdown(data))
    return data
