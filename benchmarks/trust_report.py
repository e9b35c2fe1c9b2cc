"""The Markdown view of `bench/trust.json` (every figure is read from the JSON)."""

from __future__ import annotations

from typing import Any

from benchmarks.report import table


def _load(load: dict[str, Any]) -> list[str]:
    ev = load["events"]
    rows = [[name, r["requests"], r["errors"], r["rps"], r["p50_ms"], r["p95_ms"], r["p99_ms"],
             r["max_ms"]] for name, r in load["endpoints"].items()]
    lines = [
        f"{load['clients']} clients, closed loop (no think time), {load['duration_s']:.0f} s; "
        "each client holds its own client key (default rate limits) and one keep-alive "
        "connection, and sends, with even odds, `GET /v1/users/{id}/recommendations` (85% "
        "users with history, half with device/surface context) or `POST /v1/events` (1-20 "
        "valid events, plus duplicates on purpose). An error is any non-2xx answer or a "
        "broken or timed-out connection; latencies are of 2xx answers, measured at the client.",
        "",
        f"**{load['requests']:,} requests, {load['errors']} errors, {load['rps']} req/s.**"
        + (f" Errors: {load['errors_by_kind']}." if load["errors"] else ""),
        "",
        table(["endpoint", "2xx", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"],
              rows),
        "",
        "Events:",
        "",
        table(["distinct ids sent", "accepted (sum of answers)", "stored (new rows)",
               "stored = accepted", "duplicates reported", "replays sent / reported as "
               "duplicates", "shared-pool ids sent"],
              [[ev["ids_sent"], ev["accepted"], ev["stored"], ev["stored_equals_accepted"],
                ev["duplicates_reported"], f"{ev['replays_sent']} / {ev['replays_reported']}",
                ev["shared_sent"]]]),
        "",
        "Duplicates on purpose: 20% of batches re-send 1-3 of the client's own accepted events, "
        "10% carry an id from a pool of 64 that every client posts (only the first may be "
        "stored), 5% repeat one of their own events inside the batch (kept once). Every answer "
        "is checked: accepted + duplicates = distinct ids sent, each replay reported as a "
        "duplicate, no new id reported as one."
        + (f" Accounting problems: {ev['accounting_errors']}" if ev["accounting_errors"]
           else " No answer broke these rules."),
    ]
    return lines


def _fuzz(fuzz: dict[str, Any]) -> list[str]:
    by_check = fuzz["failures_by_check"]
    statuses: dict[str, int] = {}
    for op in fuzz["per_operation"]:
        for s, n in op["statuses"].items():
            statuses[s] = statuses.get(s, 0) + n
    slow = sorted((op for op in fuzz["per_operation"] if op["max_ms"]),
                  key=lambda op: -op["max_ms"])[:3]
    lines = [
        f"Schemathesis against the live server's OpenAPI schema, every operation, up to "
        f"{fuzz['max_examples_per_mode']} valid and {fuzz['max_examples_per_mode']} invalid "
        "cases each, sent with an admin key (valid cases name existing items and users half the "
        "time). A 5xx, or no answer within 60 s (a transport error), fails the run; the other "
        "checks are reported.",
        "",
        f"**{fuzz['operations']} operations, {fuzz['cases']:,} cases, {fuzz['server_errors']} "
        f"5xx answers, {fuzz['transport_errors']} transport errors, "
        f"{fuzz.get('unhandled_errors_logged', 0)} unhandled errors in the server log** "
        f"({fuzz['seconds']} s).",
        "",
        "Answers: " + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items())) + ".",
        "",
        "Slowest answers: " + ", ".join(f"{op['operation']} {op['max_ms'] / 1000:.1f} s (p50 "
                                        f"{op['p50_ms']} ms)" for op in slow) + ".",
        "",
        "Other failures by check (not enforced):",
        "",
        table(["check", "cases"], [[k, v] for k, v in by_check.items()] or [["none", 0]]),
        "",
        "`status_code_conformance`: an answer whose status the operation's schema does not "
        "list (FastAPI documents the success status and 422; 401, 404, 409 and the like are "
        "answered but not listed). 401s come from invalid cases that drop or mangle the "
        "`Authorization` header. "
        "`negative_data_rejection`: an invalid case accepted, e.g. an unknown query parameter "
        "ignored, or a limit above the documented maximum capped rather than refused.",
        "",
        table(["operation", "cases", "5xx", "answers", "p50 ms", "max ms", "other failures"],
              [[op["operation"], op["cases"], op["server_errors"],
                " ".join(f"{s}:{n}" for s, n in op["statuses"].items()),
                op["p50_ms"], op["max_ms"],
                ", ".join(f"{k} {v}" for k, v in op["failures"].items())]
               for op in fuzz["per_operation"]]),
    ]
    bad = [op for op in fuzz["per_operation"] if op["server_errors"] or op["transport_errors"]]
    for op in bad:
        lines += ["", f"### 5xx: {op['operation']}", ""]
        lines += ["```", *op["examples"].get("not_a_server_error", []), "```"]
    return lines


def markdown(data: dict[str, Any]) -> str:
    v, ds, st = data["verdict"], data["dataset"], data["startup"]
    code = data["code"]
    return "\n".join([
        "# python -m benchmarks trust",
        "",
        f"Hostile input at scale against a live `medley serve` (embedded default: FastAPI + "
        f"SQLite + Qdrant Edge + in-process worker) on {data['machine']['cores']} cores "
        f"({data['machine']['platform']}, Python {data['machine']['python']}); commit "
        f"{code['commit']}" + (f" with uncommitted changes to {', '.join(code['modified'])}"
                               if code["modified"] else "") + ".",
        "",
        f"**Verdict: {'pass' if v['ok'] else 'FAIL'}** — load: "
        f"{'no errors, stored = accepted' if v['load_ok'] else 'see below'}; fuzz: "
        f"{v['fuzz_5xx']} 5xx, {v['fuzz_transport_errors']} transport errors.",
        "",
        f"Dataset (built afresh): {ds['items']:,} synthetic items, {ds['events']:,} events, "
        f"{ds['users']:,} users, a trained collaborative model; server ready after "
        f"{st.get('recommendations_ready_s')} s. Rate limits per role (req/s, burst): "
        + ", ".join(f"{k} {tuple(r)}" for k, r in data["rate_limits"].items())
        + " (admin raised so the fuzz is never throttled).",
        "",
        "## Load",
        "",
        *_load(data["load"]),
        "",
        "## Fuzz",
        "",
        *_fuzz(data["fuzz"]),
        "",
        f"Total run time {data['total_s']} s.",
    ])
