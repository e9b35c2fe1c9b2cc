"""A short version of `python -m benchmarks trust`'s load: 16 clients with their own client keys ask
for recommendations and post event batches (with duplicates on purpose) against a real
`medley serve` process. No request may fail, and the events stored must equal the sum of
`accepted` in the answers: nothing lost, nothing stored twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.serve_data import DataSpec
from benchmarks.trust import Live, start_live
from benchmarks.trust_load import run_load

pytestmark = pytest.mark.heavy

CLIENTS = 16
DURATION_S = 5.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_live(tmp_path_factory.mktemp("trust-load"), DataSpec(items=500, events=5000),
                        CLIENTS, say=print)
    yield server
    server.server.stop()


def test_sixteen_clients_lose_no_event_and_store_none_twice(live: Live) -> None:
    result = run_load("127.0.0.1", live.server.port, live.client_keys, live.inputs, DURATION_S,
                      live.db_path)
    print(result)
    ev = result["events"]
    assert result["errors"] == 0, result["errors_by_kind"]
    assert ev["accounting_errors"] == []
    assert ev["stored"] == ev["accepted"] == ev["ids_sent"] > 0
    assert ev["replays_sent"] == ev["replays_reported"]
    assert ev["duplicates_reported"] >= ev["replays_sent"] > 0
    for endpoint in ("recommendations", "events"):
        assert result["endpoints"][endpoint]["requests"] > 0
    assert result["ok"]
    log = live.server.log_path.read_text(errors="replace")
    assert "unhandled error" not in log
