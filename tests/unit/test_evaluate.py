"""The evaluation protocol (`medley.recs.evaluation`) on MovieLens, the metrics, and
`python -m benchmarks eval`'s run on a tiny synthetic dataset."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import movielens as ml
from benchmarks import peers
from benchmarks.eval_run import run_eval
from benchmarks.evaluate import PEERS, SYSTEMS, Peers, build_table, fit
from index.base import FUSED, Where
from medley.config import Settings
from medley.recs import evaluation as ev
from medley.recs.evaluation import ExactSearch, rank_overall

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-small"


def write_dataset(folder: Path, users: int = 40, items: int = 90, seed: int = 0) -> Path:
    """MovieLens-shaped CSVs: users prefer two genres, rate ~30 items over ~3 years."""
    rng = random.Random(seed)
    genres = {i: rng.sample(GENRES, 2) for i in range(1, items + 1)}
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "movies.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["movieId", "title", "genres"])
        for i, g in genres.items():
            w.writerow([i, f"Movie {i} ({1990 + i % 30})", "|".join(g)])
        w.writerow([items + 1, "Never Rated (2001)", "(no genres listed)"])
    with (folder / "ratings.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        for u in range(1, users + 1):
            likes = set(rng.sample(GENRES, 2))
            start = 1_000_000_000 + rng.randrange(0, 60_000_000)
            for k, i in enumerate(rng.sample(sorted(genres), 30)):
                good = bool(likes & set(genres[i]))
                rating = rng.choice([4.0, 4.5, 5.0] if good else [1.0, 2.5, 3.0, 3.5])
                w.writerow([u, i, rating, start + k * 86400 * rng.randrange(1, 20)])
    return folder


def stub_embed(texts: list[str]) -> np.ndarray:
    """Hashed bag of words, 32 dims: titles sharing genres land close together."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for r, text in enumerate(texts):
        for word in text.replace(",", " ").replace(".", " ").split():
            out[r, int(hashlib.md5(word.encode()).hexdigest(), 16) % 32] += 1.0
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("movielens"))


@pytest.fixture(scope="module")
def split(dataset: Path) -> ev.Split:
    ratings, movies = ml.load(dataset)
    return ev.split(ratings, list(movies))


def test_events_view_every_rating_like_from_four() -> None:
    events = ev.events([ev.Rating("u", "1", 3.5, 10.0), ev.Rating("u", "2", 4.0, 20.0)])
    assert [(e.item_id, e.type.value, e.ts) for _, e in events] == [
        ("1", "view", 10.0), ("2", "view", 20.0), ("2", "like", 20.0)]
    assert [seq for seq, _ in events] == [1, 2, 3]
    assert all(e.value is None for _, e in events)


def test_held_out_items_have_no_training_events(split: ev.Split, dataset: Path) -> None:
    ratings, movies = ml.load(dataset)
    eligible = {i for i in movies if sum(r.item == i for r in ratings) >= 5}
    assert len(split.held_out) == round(0.15 * len(eligible)) > 0
    assert split.held_out <= eligible
    assert not {r.item for r in split.train + split.test} & split.held_out
    assert {r.item for r in split.held_out_ratings} == split.held_out
    table = build_table(split, movies, dict(zip(split.catalog, stub_embed(
        [movies[i].text for i in split.catalog]), strict=True)))
    w = fit(split, table, Settings(data_dir=Path("unused"), collab_factors=8))
    assert w.collab is not None and not set(w.collab.item_ids) & split.held_out
    assert not set(w.behavior.interactions) & split.held_out
    assert all(split.created[i] == split.now for i in split.held_out)
    assert ev.split(ratings, list(movies)).held_out == split.held_out  # seeded


def test_split_is_by_time_within_each_users_history(split: ev.Split) -> None:
    by_user: dict[str, tuple[list[float], list[float]]] = {}
    for r in split.train:
        by_user.setdefault(r.user, ([], []))[0].append(r.ts)
    for r in split.test:
        by_user.setdefault(r.user, ([], []))[1].append(r.ts)
    for train_ts, test_ts in by_user.values():
        assert not train_ts or not test_ts or max(train_ts) <= min(test_ts)
        assert len(train_ts) == round(0.8 * (len(train_ts) + len(test_ts)))
    assert split.now == max(r.ts for r in split.train)


def test_a_global_cut_splits_all_ratings_at_one_moment(dataset: Path) -> None:
    ratings, movies = ml.load(dataset)
    cut = ev.split(ratings, list(movies), per_user=False)
    assert max(r.ts for r in cut.train) <= min(r.ts for r in cut.test)
    assert len(cut.train) == round(0.8 * (len(cut.train) + len(cut.test)))


def test_items_are_created_at_their_first_training_rating(split: ev.Split) -> None:
    first: dict[str, float] = {}
    for r in sorted(split.train, key=lambda r: r.ts):
        first.setdefault(r.item, r.ts)
    start = min(r.ts for r in split.train + split.test + split.held_out_ratings)
    for item in split.candidates:  # first training rating, else the start of the data
        assert split.created[item] == first.get(item, start)


def test_relevant_sets_follow_the_protocol(split: ev.Split) -> None:
    seen = split.train_items()
    for user, items in split.relevant().items():
        assert user in seen and not items & seen[user]
        liked = {r.item for r in split.test if r.user == user and r.rating >= 4}
        assert items == liked - seen[user]
    for user, items in split.relevant_new().items():
        assert user in seen and items <= split.held_out


def test_ndcg() -> None:
    rel = {"a", "b", "c"}
    assert ev.ndcg_at_k(["a", "b", "c", "x"], rel) == pytest.approx(1.0)
    assert ev.ndcg_at_k(["c", "a", "b"], rel) == pytest.approx(1.0)
    assert ev.ndcg_at_k(["x", "y", "z"], rel) == 0.0
    assert ev.ndcg_at_k([], rel) == 0.0
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ev.ndcg_at_k(["x", "a"], rel) == pytest.approx((1 / math.log2(3)) / ideal)
    many = {str(i) for i in range(20)}  # more relevant items than k: ideal is 10 hits
    assert ev.ndcg_at_k([str(i) for i in range(10)], many) == pytest.approx(1.0)
    assert ev.ndcg_at_k([*"xxxxxxxxxx", "a"], rel) == 0.0  # only the top 10 count


def test_recall_is_hits_over_min_k_relevant() -> None:
    assert ev.recall_at_k(["a", "x", "b"], {"a", "b", "c"}) == pytest.approx(2 / 3)
    many = {str(i) for i in range(20)}
    assert ev.recall_at_k([str(i) for i in range(10)], many) == 1.0
    assert ev.recall_at_k([str(i) for i in range(5)] + list("vwxyz"), many) == 0.5
    assert ev.recall_at_k(["x"], {"a"}) == 0.0
    assert ev.recall_at_k(["a"], set()) == 0.0


def test_coverage_counts_distinct_top10_items_over_catalog() -> None:
    assert ev.coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    assert ev.coverage([[str(i) for i in range(12)]], 100) == pytest.approx(0.1)
    assert ev.coverage([], 10) == 0.0


def test_paired_interval_brackets_a_constant_difference() -> None:
    lo, hi = ml.paired_interval({"u": 0.5, "v": 0.7}, {"u": 0.3, "v": 0.5})
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)


def test_exact_search_agrees_with_the_table(split: ev.Split, dataset: Path) -> None:
    _, movies = ml.load(dataset)
    vecs = stub_embed([movies[i].text for i in split.catalog])
    table = build_table(split, movies, dict(zip(split.catalog, vecs, strict=True)))
    search = ExactSearch(table)
    where = Where(exclude_ids=frozenset(list(split.held_out)[:3]))
    for q in np.random.default_rng(0).normal(size=(5, vecs.shape[1])):  # no exact ties
        ours = search(FUSED, q, 7, where)
        theirs = table.nearest(FUSED, q, 7, where)
        assert [i for i, _ in ours] == [i for i, _ in theirs]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    assert len(search(FUSED, vecs[0], 10_000, where)) == int(table.mask(where).sum())


def test_recbole_atomic_files_load_like_movielens(tmp_path: Path) -> None:
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n186\t302\t4.5\t891717742\n")
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir\n"
        "303\tMystery \"Film\"\t\tunknown\n")
    ratings, movies = ml.load(tmp_path)
    assert ratings == [ev.Rating("196", "242", 3.0, 881250949.0),
                       ev.Rating("186", "302", 4.5, 891717742.0)]
    assert movies["302"] == ml.Movie("L.A. Confidential (1997)", ("Crime", "Film-Noir"))
    assert movies["303"] == ml.Movie('Mystery "Film"', ())
    assert ml.about(tmp_path)[1] == ml.ML100K_CITATION


def test_embeddings_are_cached_by_text(tmp_path: Path) -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return stub_embed(texts)

    a = ml.embed_catalog(["x. Drama", "y. Comedy"], embed, tmp_path, "stub")
    b = ml.embed_catalog(["x. Drama", "y. Comedy"], embed, tmp_path, "stub")
    ml.embed_catalog(["x. Drama", "z. Comedy"], embed, tmp_path, "stub")
    assert calls == [2, 2] and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)


def test_run_eval_on_a_tiny_dataset(dataset: Path, tmp_path: Path, split: ev.Split) -> None:
    report = run_eval(dataset, tmp_path, embed=stub_embed, cache_dir=None,
                      overrides={"collab_factors": 8}, tune_settings=True)
    saved = json.loads((tmp_path / "eval.json").read_text())
    shown = [s for s in SYSTEMS if s != "lightfm" or peers.have_lightfm()]
    assert set(saved["results"]) == set(shown)
    markdown = (tmp_path / "eval.md").read_text()
    assert "| Medley |" in markdown and "Targets (issue 11)" in markdown
    assert "## Medley's learned model" in markdown
    for system in shown:
        m = report["results"][system]
        for key in ("ndcg@10", "recall@10", "coverage@10", "new_items_ndcg@10",
                    "new_items_recall@10"):
            assert 0.0 <= m[key] <= 1.0
    assert set(report["ndcg_diff_ci95_vs"]) == set(PEERS) & set(shown)
    assert set(report["new_items_ndcg_diff_ci95_vs"]) == set(PEERS) & set(shown)
    assert report["tuning"]["trail [setting, value, ndcg@10, new recall@10]"][0][0] == "start"
    assert report["split"]["per_user"]["held_out"] == len(split.held_out)
    assert set(report["global_cut"]["results"]) == set(shown)
    for results, verdict in ((report["results"], report),
                             (report["global_cut"]["results"], report["global_cut"])):
        best = max(PEERS, key=lambda p: results[p]["ndcg@10"] if p in results else -1.0)
        assert verdict["best_peer"]["peer"] == best
        assert verdict["best_content_only_new_items"]["peer"] in peers.CONTENT_ONLY
    assert set(report["targets"]) == {"best_peer", "best_content_only_new_items"}
    assert set(report["global_cut"]["targets"]) == {"above_popularity",
                                                    "best_content_only_new_items"}
    for name in ("per_user", "global_cut"):
        z = report["peers"][name]["zblend"]
        assert z["variant"] in peers.VARIANTS and z["weight"] in peers.BLEND_WEIGHTS


def test_medley_overall_answers_never_hold_held_out_items(split: ev.Split, dataset: Path) -> None:
    _, movies = ml.load(dataset)
    vecs = dict(zip(split.catalog, stub_embed([movies[i].text for i in split.catalog]),
                    strict=True))
    w = fit(split, build_table(split, movies, vecs), Settings(data_dir=Path("unused"),
                                                             collab_factors=8))
    others = Peers(w)
    for user in split.relevant():
        for system in SYSTEMS:
            ranked = rank_overall(w, system, user, others)
            assert not set(ranked) & split.held_out
            assert not set(ranked) & split.train_items()[user]


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (REAL_DATA / "ratings.csv").is_file():
        pytest.skip(f"MovieLens not found at {REAL_DATA}")
    from medley.config import get_settings

    return run_eval(REAL_DATA, tmp_path_factory.mktemp("eval"),
                    cache_dir=get_settings().data_dir / "eval")


@pytest.mark.heavy
def test_blend_beats_every_peer_on_new_items(real_report: dict[str, Any]) -> None:
    r = real_report["results"]
    assert all(r["medley"]["new_items_recall@10"] > r[p]["new_items_recall@10"] for p in PEERS)


@pytest.mark.heavy
def test_blend_beats_every_peer_on_ndcg(real_report: dict[str, Any]) -> None:
    r = real_report["results"]
    assert all(r["medley"]["ndcg@10"] > r[p]["ndcg@10"] for p in PEERS), r
