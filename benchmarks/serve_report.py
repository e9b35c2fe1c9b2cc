"""The Markdown view of `bench/serve.json`, the target verdict, and what limits the latency,
worked out from the measured figures (every number below is read from the JSON)."""

from __future__ import annotations

from typing import Any

from benchmarks.report import table

TARGET_P95_MS = 50.0
TARGET_ENDPOINTS = ("similar", "recommendations")
TARGET_CLIENTS = 16


QUIET = 0.3  # cores of other work below which a run counts as undisturbed


def _other(r: dict[str, Any]) -> str:
    v = r.get("other_cpu_cores")
    return "" if v is None else (f"**{v}**" if v >= QUIET else str(v))


def _run(runs: list[dict[str, Any]], endpoint: str, clients: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["endpoint"] == endpoint and r["concurrency"] == clients),
                None)


def target_verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    p95 = {}
    for e in TARGET_ENDPOINTS:
        r = _run(runs, e, TARGET_CLIENTS)
        p95[e] = r["p95_ms"] if r else None
    met = all(v is not None and v < TARGET_P95_MS for v in p95.values())
    return {"p95_below_ms": TARGET_P95_MS, "clients": TARGET_CLIENTS, "p95_ms": p95, "met": met}


def limits(data: dict[str, Any]) -> list[str]:
    """What bounds the latency at 16 clients, from the measurements."""
    runs, prof = data["runs"], data.get("profile") or {}
    cores = data["machine"]["cores"]
    out = []
    floor = _run(runs, "healthz", TARGET_CLIENTS)
    for e in TARGET_ENDPOINTS:
        r, one = _run(runs, e, TARGET_CLIENTS), _run(runs, e, 1)
        if not r or not r["rps"]:
            continue
        cpu_ms = r["server_cpu_cores"] / r["rps"] * 1000
        need = TARGET_CLIENTS / (TARGET_P95_MS / 1000) * (r["mean_ms"] / r["p95_ms"])
        line = (f"`{e}` at {TARGET_CLIENTS} clients: {r['rps']} req/s, mean {r['mean_ms']} ms "
                f"(closed loop: mean latency = clients / throughput = "
                f"{TARGET_CLIENTS / r['rps'] * 1000:.0f} ms). The server used "
                f"{r['server_cpu_cores']} of {cores} cores and the load generator "
                f"{r['client_cpu_cores']}; that is {cpu_ms:.1f} ms of server CPU per request. "
                f"p95 < {TARGET_P95_MS:.0f} ms at this latency spread needs about {need:.0f} "
                f"req/s, i.e. at most {1000 / need * min(cores, r['server_cpu_cores'] + 0.05):.1f}"
                f" ms of server CPU per request at the same core use.")
        idle = cores - r.get("machine_busy_cores", cores)
        if r["server_cpu_cores"] < 1.3 and idle > 0.4:
            line += (f" {idle:.2f} cores stayed idle: the server's request work does not spread "
                     f"over the cores (one Python process; the GIL serialises it).")
        if one:
            line += f" One client alone: p50 {one['p50_ms']} ms, {one['rps']} req/s."
        ep = (prof.get("endpoints") or {}).get(e)
        if ep and ep["inclusive"]:
            whole = ep["inclusive"][0]["ms_per_call"]
            parts = [f"{f['function'].rsplit('/', 1)[-1]} {f['ms_per_call']}"
                     for f in ep["inclusive"] if f["ms_per_call"] < 0.9 * whole]
            top = ", ".join(parts[:6])
            line += (f" In-process (no HTTP, one thread) the handler takes p50 {ep['p50_ms']} ms,"
                     f" of which {ep['index_ms_per_call']} ms in "
                     f"{ep['index_searches_per_call']} index searches; inclusive ms per call: "
                     f"{top}.")
        out.append(line)
    if floor:
        out.append(f"HTTP floor (`/healthz`, no ranking) at {TARGET_CLIENTS} clients: "
                   f"{floor['rps']} req/s, p95 {floor['p95_ms']} ms, server "
                   f"{floor['server_cpu_cores']} cores: about "
                   f"{floor['server_cpu_cores'] / max(floor['rps'], 1e-9) * 1000:.2f} ms of "
                   f"server CPU per request is FastAPI/uvicorn alone.")
    for w in (data.get("whatif") or {}).get("runs", []):
        base = _run(runs, w["endpoint"], w["concurrency"])
        if base and w["concurrency"] == TARGET_CLIENTS:
            env = " ".join(f"{k}={v}" for k, v in data["whatif"]["env"].items())
            out.append(f"What-if `{env}` (server restarted with only that setting changed), "
                       f"`{w['endpoint']}` at {TARGET_CLIENTS} clients, as shipped against "
                       f"with that setting: p95 {base['p95_ms']} against {w['p95_ms']} ms, "
                       f"{base['rps']} against {w['rps']} req/s, server "
                       f"{base['server_cpu_cores']} against {w['server_cpu_cores']} cores.")
    tick = prof.get("idle_tick")
    if tick:
        stages = ", ".join(f"{k[:-3]} {v} ms" for k, v in tick.items()
                           if k.endswith("_ms") and k != "tick_ms")
        out.append(f"Background sync with nothing changing (in-process): {tick['tick_ms']} ms "
                   f"per tick at {tick['ticks_per_s']} ticks/s = {tick['cores']} cores (stages "
                   f"called on their own: {stages}); the server itself idled at "
                   f"{data['startup'].get('idle_cpu_cores')} cores after start-up. That work "
                   f"holds the GIL beside every request.")
    index = prof.get("index") or {}
    if index:
        sc = index["thread_scaling_without_payload"]
        out.append(f"Index query (fused, limit {index['limit']}, similar's filter): "
                   f"{index['query_ms_with_payload']} ms with payload (as the service asks, "
                   f"though it reads only ids and scores), {index['query_ms_without_payload']} "
                   f"ms without; {sc['threads_1_per_s']}/s on one thread, "
                   f"{sc['threads_2_per_s']}/s on two ({sc['speedup']}x, "
                   f"{sc['threads_2_cores']} cores busy)"
                   + (": concurrent queries do not overlap (the binding holds the GIL or a lock "
                      "while it searches)." if sc["speedup"] < 1.3 else "."))
    recall = index.get("recall")
    if recall:
        out.append(f"Index candidates against exact cosine over the serving table (fused, "
                   f"top {recall['limit']}, {recall['queries']} items' neighbours): recall "
                   f"{recall['recall_mean']} on average, {recall['recall_min']} at worst.")
    created = index.get("created_filter") or {}
    if created:
        parts = [f"{k.replace('_', ' ')}: {v['ms']} ms, {v['hits_per_query']} of "
                 f"{v['wanted']} wanted hits" for k, v in created.items()]
        out.append("Fused query restricted to items created in the last 14 / 2 days (how "
                   "new-item candidates can be found in the index): " + "; ".join(parts) + ".")
    scaling = prof.get("thread_scaling") or {}
    for name, s in scaling.items():
        out.append(f"Thread scaling in-process, `{name}`: {s['threads_1_per_s']}/s with one "
                   f"thread, {s['threads_2_per_s']}/s with two ({s['speedup']}x, "
                   f"{s['threads_2_cores']} cores busy): "
                   + ("runs in parallel." if s["speedup"] >= 1.6 else
                      "serialised (the GIL, or a lock) — more threads or clients add queueing, "
                      "not throughput."))
    return out


def render(data: dict[str, Any]) -> tuple[str, list[str]]:
    ds, st, prof = data["dataset"], data["startup"], data.get("profile") or {}
    spec = ds["spec"]
    found = limits(data)
    verdict = data["target"]
    lines = [
        "# python -m benchmarks serve",
        "",
        f"Embedded default (`medley serve`: FastAPI + SQLite + Qdrant Edge + in-process worker) "
        f"on {data['machine']['cores']} cores ({data['machine']['platform']}, Python "
        f"{data['machine']['python']}); load from a separate process, closed loop (no think "
        f"time), {data['duration_s']:.0f} s per endpoint and client count after a warm-up. "
        f"Latency is measured at the client. Scheduled ALS retraining is moved out of the window "
        f"(MEDLEY_COLLAB_RETRAIN_INTERVAL_S={data['server_env']['MEDLEY_COLLAB_RETRAIN_INTERVAL_S']})"
        + ("; the bench's one client key may make "
           f"{data['server_env']['MEDLEY_RATE_LIMITS']['client'][0]:,} requests/s (it stands in "
           "for a whole app's users; at the default 500/s it, not the server, bounded `similar`)"
           if "MEDLEY_RATE_LIMITS" in data["server_env"] else "")
        + f"; everything else is the default. Code: commit {data['code']['commit']}"
        + (f" with uncommitted changes to {', '.join(data['code']['modified'])}"
           if data["code"]["modified"] else "") + ".",
        "",
        f"**Target** (p95 < {verdict['p95_below_ms']:.0f} ms for similar and recommendations at "
        f"{verdict['clients']} clients): **{'met' if verdict['met'] else 'not met'}** "
        f"({', '.join(f'{k} {v} ms' for k, v in verdict['p95_ms'].items())}).",
        "",
        "## Results",
        "",
        table(["endpoint", "clients", "p50 ms", "p95 ms", "p99 ms", "req/s", "errors",
               "server cores", "loadgen cores", "other cores"],
              [[r["endpoint"], r["concurrency"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["rps"],
                r["errors"], r["server_cpu_cores"], r["client_cpu_cores"],
                _other(r)] for r in data["runs"]]),
        "",
        "`healthz` is the HTTP floor (no ranking). `events` posts batches of 1-20 events. "
        "*other cores*: CPU used by anything else on the machine during the run (not the server,"
        f" not the load generator); each run waits for them to fall below {QUIET} cores first; "
        "**bold**: a run that shared the CPUs with other work anyway.",
        "",
        "## Dataset, preparation and start-up",
        "",
        f"- {spec['items']:,} items ({ds.get('new_items', 0):,} created in the last 14 days), "
        f"{spec['events']:,} events, {spec['users']:,} users, {spec['topics']} topics; vectors: "
        f"{', '.join(f'{k} {v}' for k, v in ds['dims'].items())} + fused; index points "
        f"{ds['index']['points']:,}.",
        f"- Preparation {'reused (cached)' if ds.get('reused') else 'built'}; build stages (s): "
        f"{', '.join(f'{k} {v}' for k, v in ds['timings_s'].items())}; this run spent "
        f"{data['prep_s']} s on it.",
        "- Item neighbour lists (`python -m benchmarks.serve_lists`, what a server's sync finds in "
        "the background, saved in the dataset folder): "
        + (f"found in this run, {lists['lists']:,} lists in {lists['lists_s']} s."
           if (lists := data.get("neighbour_lists")) else "reused from the dataset folder, "
           "or code without them."),
        f"- Server start-up: answering after {st.get('listening_s')} s, models probed after "
        f"{st.get('models_probed_s')} s, recommendations ready (all items, events, collaborative "
        f"model) after {st.get('recommendations_ready_s')} s; RSS then {st.get('rss_mib')} MiB; "
        f"background start-up work settled after {st.get('settle_s')} s more "
        f"(idle CPU {st.get('idle_cpu_cores')} cores).",
    ]
    restart = (data.get("whatif") or {}).get("startup") or {}
    if restart:
        lines.append(f"- Restart (the what-if server below, on the same data and the behaviour "
                     f"snapshot the first start saved): recommendations ready after "
                     f"{restart.get('recommendations_ready_s')} s; RSS then "
                     f"{restart.get('rss_mib')} MiB.")
    rates = [f"{r['endpoint']} x{r['concurrency']} {r['answer_cache_hit_rate']}"
             for r in data["runs"] if r.get("answer_cache_hit_rate") is not None]
    if rates:
        lines.append("- Answer-cache hit rate per run (the load generator draws users and items "
                     "at random, so repeats are rare; a client reopening a screen hits): "
                     + ", ".join(rates) + ".")
    lists = [f"{r['endpoint']} x{r['concurrency']} {r['user_lists_hit_rate']}"
             for r in data["runs"] if r.get("user_lists_hit_rate") is not None]
    if lists:
        lines.append("- Nearline user-candidate hit rate per run (answer-cache misses that read "
                     "the user's entry instead of searching): " + ", ".join(lists) + ".")
    if prof:
        lines.append("- Start-up stages timed in-process (s): " + ", ".join(
            f"{k} {v}" for k, v in prof["startup_stages_s"].items()) + ".")
        if prof.get("user_lists"):
            lines.append(f"- Nearline user candidates found in-process: "
                         f"{prof['user_lists']['users']:,} users, "
                         f"{prof['user_lists']['mib']} MiB of arrays.")
    whatif = data.get("whatif") or {}
    if whatif.get("runs"):
        env = " ".join(f"{k}={v}" for k, v in whatif["env"].items())
        lines += ["", f"## What-if: `{env}`", "",
                  "The same server restarted with only this setting changed: "
                  + whatif.get("why", "a sensitivity check, not a recommendation") + ".", "",
                  table(["endpoint", "clients", "p50 ms", "p95 ms", "p99 ms", "req/s", "errors",
                         "server cores", "other cores"],
                        [[r["endpoint"], r["concurrency"], r["p50_ms"], r["p95_ms"], r["p99_ms"],
                          r["rps"], r["errors"], r["server_cpu_cores"], _other(r)]
                         for r in whatif["runs"]])]
    lines += ["", "## What limits it", ""] + [f"- {x}" for x in found]
    if prof:
        lines += ["", "## Where a request's time goes (in-process, pyinstrument)", "",
                  f"{prof['calls']} calls per endpoint, one thread, no HTTP; the route's work "
                  f"including answer serialisation. Full trees: `{prof['profiles_dir']}`.", ""]
        lines.append(table(["endpoint", "p50 ms", "p95 ms", "index searches", "index ms"],
                           [[k, v["p50_ms"], v["p95_ms"], v["index_searches_per_call"],
                             v["index_ms_per_call"]] for k, v in prof["endpoints"].items()]))
        for name, ep in prof["endpoints"].items():
            lines += ["", f"### {name}", "",
                      table(["inclusive (our code)", "ms/call", "self time", "ms/call"],
                            [[a["function"], a["ms_per_call"], b["function"], b["ms_per_call"]]
                             for a, b in zip(ep["inclusive"], ep["self"], strict=False)])]
    return "\n".join(lines), found
