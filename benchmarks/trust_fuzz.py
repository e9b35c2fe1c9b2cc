"""Schemathesis against the whole API: every operation in the OpenAPI schema, with valid
(positive) and invalid (negative) inputs, authenticated with an admin key so requests reach the
handlers. Shared by `tests/api/test_fuzz.py` (in-process, over ASGI) and
`python -m benchmarks trust` (a live `medley serve`).

A 5xx answer is always a bug: hostile input must get a 4xx. The other schemathesis checks
(schema conformance and the like) are counted and reported, not enforced.

Random ids mostly miss, so in positive cases the path and body fields that name an item or a
user are, half the time, replaced by ids that exist (`known`): the handlers' real paths run, not
only their 404s.
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from benchmarks.trust_cases import plant_case

# Schemathesis imports these on first use, in the middle of a run. Under pytest each is compiled
# by the assertion rewriter, and CPython 3.11's AST conversion keeps one recursion counter for
# the whole interpreter: compiling while a thread of the app under test does too can fail with
# "SystemError: AST constructor recursion depth mismatch" (gh-106905). Imported now, at
# collection, before any app runs. Private modules: one a release drops is simply skipped.
for _module in ("schemathesis.specs.openapi.schemas", "schemathesis.python.asgi",
                "schemathesis.transport.asgi", "schemathesis.transport.wsgi",
                "schemathesis.generation.dictionaries", "schemathesis.generation._hooks",
                "schemathesis.python._constants.orchestrator"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)

# Reported per check; only server errors fail a run.
CHECKS: tuple[Any, ...] = (not_a_server_error, response_schema_conformance,
                           content_type_conformance, status_code_conformance,
                           negative_data_rejection)
SERVER_ERROR = "not_a_server_error"
KEEP_EXAMPLES = 5  # per operation and check: reproductions kept for the report
TIMEOUT_S = 60.0  # an answer slower than this is a transport error


@dataclass
class OpStats:
    operation: str
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    transport_errors: int = 0
    seconds: list[float] = field(default_factory=list)  # each answer's time

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "cases": self.cases,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "server_errors": self.server_errors, "transport_errors": self.transport_errors,
                "failures": dict(self.failures), "examples": self.examples,
                "p50_ms": _ms(statistics.median(self.seconds)) if self.seconds else None,
                "max_ms": _ms(max(self.seconds)) if self.seconds else None}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class NoLifespan:
    """The app without its lifespan: schemathesis's in-process client starts the lifespan of
    the app it is given, while a test has already started this one (one service per data dir)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def asgi_schema(app: Any, headers: Mapping[str, str]) -> Any:
    """The schema of a started app, its cases sent in-process."""
    return schemathesis.openapi.from_asgi("/openapi.json", NoLifespan(app), headers=dict(headers))


def live_schema(base_url: str, headers: Mapping[str, str]) -> Any:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=dict(headers))


def operations(schema: Any) -> list[Any]:
    """Every operation, deletes last (they remove the known items the others use)."""
    ops = [r.ok() for r in schema.get_all_operations()]
    return sorted(ops, key=lambda op: (op.method.upper() == "DELETE", op.path, op.method))


def _check(case: Any, response: Any, headers: Mapping[str, str], stats: OpStats,
           transport_kwargs: dict[str, Any] | None) -> None:
    for check in CHECKS:
        try:
            case.validate_response(response, checks=[check], headers=dict(headers),
                                   transport_kwargs=transport_kwargs)
        except FailureGroup:
            name = check.__name__
            stats.failures[name] += 1
            kept = stats.examples.setdefault(name, [])
            if len(kept) < KEEP_EXAMPLES:
                kept.append(f"{response.status_code} {response.text[:300]!r}\n"
                            f"{case.as_curl_command(headers=dict(headers))}")
        except Exception as exc:  # a check that cannot judge this answer is not a finding
            stats.failures[f"{check.__name__} (check error: {type(exc).__name__})"] += 1


def fuzz_operation(op: Any, *, headers: Mapping[str, str], known: Mapping[str, Sequence[str]],
                   max_examples: int, base_url: str | None = None, session: Any = None,
                   seed_value: int = 0) -> OpStats:
    """Positive then negative cases for one operation; every answer checked and counted."""
    stats = OpStats(op.label)
    kwargs: dict[str, Any] = {} if base_url is None else {"base_url": base_url}

    def one(case: Any, draw: Callable[[Any], Any], mode: GenerationMode) -> None:
        if mode is GenerationMode.POSITIVE:
            plant_case(case, known, draw)
        stats.cases += 1
        try:
            response = case.call(headers=dict(headers), session=session, timeout=TIMEOUT_S,
                                 **kwargs)
        except Exception as exc:
            stats.transport_errors += 1
            stats.failures[f"transport: {type(exc).__name__}"] += 1
            return
        stats.statuses[response.status_code] += 1
        stats.seconds.append(response.elapsed)
        _check(case, response, headers, stats, kwargs or None)

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            strategy = op.as_strategy(generation_mode=mode)
        except Exception:  # e.g. nothing in this operation can be made invalid
            continue
        with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (GET /healthz)
            _runner(strategy, mode, one, max_examples, seed_value)()
    return stats


def _runner(strategy: Any, mode: GenerationMode, one: Callable[..., None], max_examples: int,
            seed_value: int) -> Callable[[], None]:
    @seed(seed_value)
    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate],
              print_blob=False)
    @given(data=st.data())
    def run(data: Any) -> None:
        one(data.draw(strategy), data.draw, mode)

    return run


def fuzz_schema(schema: Any, *, headers: Mapping[str, str], known: Mapping[str, Sequence[str]],
                max_examples: int, base_url: str | None = None, session: Any = None,
                say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Fuzz every operation; a summary with per-operation figures."""
    started = time.perf_counter()
    per_op: list[OpStats] = []
    for n, op in enumerate(operations(schema)):
        t = time.perf_counter()
        stats = fuzz_operation(op, headers=headers, known=known, max_examples=max_examples,
                               base_url=base_url, session=session, seed_value=n)
        per_op.append(stats)
        say(f"{op.label:<50} {stats.cases:4} cases, {stats.server_errors} 5xx, "
            f"{time.perf_counter() - t:5.1f} s, {dict(stats.statuses)}")
    failures: Counter[str] = Counter()
    for s in per_op:
        failures.update(s.failures)
    return {
        "operations": len(per_op),
        "max_examples_per_mode": max_examples,
        "cases": sum(s.cases for s in per_op),
        "server_errors": sum(s.server_errors for s in per_op),
        "transport_errors": sum(s.transport_errors for s in per_op),
        "failures_by_check": dict(failures.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
        "per_operation": [s.as_dict() for s in per_op],
    }


def server_error_report(result: dict[str, Any]) -> str:
    """Each operation that answered 5xx, with reproductions (for an assertion message)."""
    lines = []
    for op in result["per_operation"]:
        if op["server_errors"] or op["transport_errors"]:
            lines.append(f"{op['operation']}: {op['server_errors']} 5xx, "
                         f"{op['transport_errors']} transport errors")
            lines += [f"  {x}" for x in op["examples"].get(SERVER_ERROR, [])]
    return "\n".join(lines)
