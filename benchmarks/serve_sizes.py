"""`python -m benchmarks sizes`: how latency and memory grow with the catalog, from the reports that
`python -m benchmarks scale` wrote at each size (`bench/scale-*.json`).

Plots, against the number of items, the p50 latency of each read endpoint with one client on
one process (the unloaded cost of an answer) and the server's memory when ready, and fits
memory as a constant plus a cost per item, which is what the report's estimate for sizes that
were not run rests on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import table, write_report

ENDPOINTS = ("similar", "recommendations", "new-items", "search")
ESTIMATE_AT = 1_000_000


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One point per report: items, p50 per endpoint (1 client, 1 process), memory."""
    points = []
    for path in paths:
        data = json.loads(path.read_text())
        one = [s for s in data["startup"] if s["processes"] == 1]
        alone = {r["endpoint"]: r for r in data["runs"]
                 if r["processes"] == 1 and r.get("clients") == 1}
        if not one or not alone:
            continue  # a report without a one-process, one-client run
        points.append({"report": path.name, "items": data["dataset"]["items"],
                       "events": data["dataset"]["events"], "ready_s":
                       one[0].get("recommendations_ready_s"), "pss_mib": one[0].get("pss_mib"),
                       "p50_ms": {e: alone[e]["p50_ms"] for e in ENDPOINTS if e in alone},
                       "cpu_ms": {e: alone[e]["server_cpu_ms_per_request"]
                                  for e in ENDPOINTS if e in alone}})
    return sorted(points, key=lambda p: p["items"])


def memory_fit(points: Sequence[dict[str, Any]]) -> tuple[float, float] | None:
    """Least squares MiB = fixed + per_item * items; None with fewer than two sizes."""
    if len(points) < 2:
        return None
    xs = [float(p["items"]) for p in points]
    ys = [float(p["pss_mib"]) for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    per_item = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mx) ** 2 for x in xs)
    return my - per_item * mx, per_item


def plot(points: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    items = [p["items"] for p in points]
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(10, 4))
    for e in ENDPOINTS:
        lat.plot(items, [p["p50_ms"].get(e) for p in points], marker="o", label=e)
    lat.set(xscale="log", xlabel="items", ylabel="p50 ms (1 client, 1 process)",
            title="Latency")
    lat.legend()
    mem.plot(items, [p["pss_mib"] / 1024 for p in points], marker="o", color="black")
    mem.set(xscale="log", xlabel="items", ylabel="GiB (PSS when ready)", title="Memory")
    for axis in (lat, mem):
        axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_sizes_report(out: Path, reports: Sequence[Path]) -> dict[str, Any]:
    points = load(reports)
    if not points:
        raise ValueError("no report with a one-process, one-client run: run `python -m benchmarks "
                         "scale` first")
    out.mkdir(parents=True, exist_ok=True)
    plot(points, out / "sizes.png")
    fit = memory_fit(points)
    data: dict[str, Any] = {"points": points, "memory_fit": None}
    if fit is not None:
        fixed, per_item = fit
        data["memory_fit"] = {"fixed_mib": round(fixed), "kib_per_item": round(per_item * 1024, 1),
                              f"estimate_mib_at_{ESTIMATE_AT}": round(fixed + per_item
                                                                      * ESTIMATE_AT)}
    write_report(out, "sizes", data, render(data))
    return data


def render(data: dict[str, Any]) -> str:
    points = data["points"]
    lines = ["# Latency and memory against catalog size (`python -m benchmarks sizes`)", "",
             "From the `python -m benchmarks scale` reports at each size: p50 with one client on "
             "one API process, and the server's memory (PSS) once ready. Events are 10x the items.",
             "", "![latency and memory against catalog size](sizes.png)", "",
             table(["items", "events", *[f"{e} p50 ms" for e in ENDPOINTS], "ready s",
                    "memory MiB"],
                   [[f"{p['items']:,}", f"{p['events']:,}",
                     *[p["p50_ms"].get(e, "n/a") for e in ENDPOINTS], p["ready_s"],
                     p["pss_mib"]] for p in points])]
    fit = data["memory_fit"]
    if fit is not None:
        lines += ["", f"Memory fits {fit['fixed_mib']:,} MiB + {fit['kib_per_item']} KiB per "
                  f"item (with its 10 events): about "
                  f"{fit[f'estimate_mib_at_{ESTIMATE_AT}'] / 1024:.1f} GiB at "
                  f"{ESTIMATE_AT:,} items, by the same line."]
    return "\n".join(lines)
