"""The `medley eval` report: tables, intervals and the protocol, as JSON and markdown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medley.bench import movielens as ml
from medley.bench.evaluate import (
    EVAL_OVERRIDES,
    LABELS,
    OBJECTIVE,
    PEERS,
    SEARCH_SPACE,
    SYSTEMS,
    TUNE_SLICE_USERS,
)
from medley.bench.movielens import Split
from medley.bench.report import table as md_table
from medley.config import Settings

METRICS = ("ndcg@10", "recall@10", "coverage@10", "new_items_recall@10")


def _rounded(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()
            if k != "per_user_ndcg@10"}


def _verdict(results: Mapping[str, Any]) -> dict[str, Any]:
    med = results["medley"]
    return {
        "medley_beats_every_peer": {k: all(med[k] > results[p][k] for p in PEERS)
                                    for k in ("ndcg@10", "new_items_recall@10")},
        "ndcg_diff_ci95_vs": {p: [round(x, 4) for x in ml.paired_interval(
            med["per_user_ndcg@10"], results[p]["per_user_ndcg@10"])] for p in PEERS},
    }


def report(test: Split, results: dict[str, Any], cut: Split, at_cut: dict[str, Any],
           settings: Settings, trail: list[Any], on_val: tuple[Split, dict[str, Any]] | None,
           runtime: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dataset": ml.CITATION, "protocol": ml.PROTOCOL,
        "split": {"per_user": ml.describe(test), "global_cut": ml.describe(cut)},
        "settings": {k: getattr(settings, k) for k in SEARCH_SPACE},
        "defaults": {k: Settings.model_fields[k].default for k in SEARCH_SPACE},
        "results": {s: _rounded(results[s]) for s in SYSTEMS},
        **_verdict(results),
        "global_cut": {"results": {s: _rounded(at_cut[s]) for s in SYSTEMS},
                       **_verdict(at_cut)},
        "runtime_s": round(runtime, 1),
    }
    if on_val is not None:
        data["split"]["validation"] = ml.describe(on_val[0])
        data["validation_results"] = {s: _rounded(on_val[1][s]) for s in SYSTEMS}
        data["tuning"] = {"objective": OBJECTIVE,
                          "trail [setting, value, ndcg@10, new recall@10]": trail}
    data["markdown"] = _markdown(data)
    return data


def results_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    return md_table(["system", "NDCG@10", "recall@10", "coverage@10", "new items: recall@10"],
                    [[LABELS[s], *(results[s][k] for k in METRICS)] for s in SYSTEMS])


def _verdict_lines(d: Mapping[str, Any], users: int) -> str:
    wins = d["medley_beats_every_peer"]
    ci = ", ".join(f"{LABELS[p]} [{lo:+.3f}, {hi:+.3f}]"
                   for p, (lo, hi) in d["ndcg_diff_ci95_vs"].items())
    return (f"Medley beats every peer on NDCG@10: **{'yes' if wins['ndcg@10'] else 'no'}**; "
            f"on the new-items slice: **{'yes' if wins['new_items_recall@10'] else 'no'}**. "
            f"95% bootstrap interval (over the {users} users) of Medley's NDCG@10 minus each "
            f"peer's: {ci}.")


def _markdown(d: Mapping[str, Any]) -> str:
    t, g = d["split"]["per_user"], d["split"]["global_cut"]
    tuned = "tuning" in d
    rows = [[k, d["defaults"][k], f"**{x}**" if x != d["defaults"][k] else x]
            for k, x in d["settings"].items()]
    lines = [
        "# Offline evaluation: MovieLens (ml-latest-small)", "", f"Data: {d['dataset']}", "",
        "## Protocol", "", *(f"- {line}" for line in d["protocol"]), "",
        "## Results: each user's history split 80/20 by time", "",
        f"{t['train_ratings']} training / {t['test_ratings']} test ratings, now = {t['now']}; "
        f"{t['users']} users with history; {t['held_out']} held-out items, "
        f"{t['new_items_users']} users in the new-items slice; {t['candidates']} candidates.", "",
        results_table(d["results"]), "", _verdict_lines(d, t["users"]), "",
        "## Results: one global cut at 80% of all ratings", "",
        f"now = {g['now']}; {g['users']} users with history; {g['new_items_users']} users in "
        "the new-items slice.", "",
        results_table(d["global_cut"]["results"]), "", _verdict_lines(d["global_cut"], g["users"]),
        "", "## Settings", "",
        ("Chosen by one coordinate-ascent pass on a validation split (each user's training "
         "history re-split 90/10, 15% of its items held out with seed 1), maximising "
         f"{OBJECTIVE} (the slice on {TUNE_SLICE_USERS} sampled users); trail in eval.json."
         if tuned else "Medley as it ships, the defaults of `medley/config.py`, except for "
         f"{', '.join(f'`{k}` = {v}' for k, v in EVAL_OVERRIDES.items())}: a 30-day "
         "popularity half-life suits a platform's traffic, not ~12 ratings a day over 22 years; "
         "and a replay of past ratings can only punish slots spent exploring new items (the "
         "\"with its exploration slots\" row shows what they cost). The defaults themselves "
         "were chosen with `medley eval --tune` on a validation split (each user's training "
         "history re-split 90/10), never on these test users."),
        "The peers share the fitted state: same behaviour, same ALS model.", "",
        md_table(["setting", "default", "used"], rows), "",
    ]
    if tuned:
        lines += ["Validation split:", "", results_table(d["validation_results"]), ""]
    lines.append(f"Runtime: {d['runtime_s']} s for the whole run (`medley eval`), 2 CPU cores.")
    return "\n".join(lines)
