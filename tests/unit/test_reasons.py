"""Readable reasons, reciprocal-rank fusion of search spaces, and age ratings."""

from __future__ import annotations

import pytest

from medley.domain import ADULT_AGE, Modality, age_min
from medley.recs.reasons import SIMILAR_BY, dialogue_phrase, similar, words
from medley.recs.search import rrf

SEGMENTS: list[dict[str, object]] = [
    {"start": 0.0, "text": "Welcome back to the kitchen."},
    {"start": 4.0, "text": "  Today we bake sourdough bread with a crispy crust.  "},
    {"start": 9.0, "text": "Bread needs time, so be patient."},
    {"start": 15.0},  # a segment without text
]


# --- words / dialogue_phrase ------------------------------------------------------------------
def test_words_drop_stopwords_case_and_single_letters() -> None:
    assert words("The Cat and a DOG, in the box: x!") == {"cat", "dog", "box"}
    assert words("It's") == {"it's"}
    assert words("") == set()


def test_dialogue_phrase_picks_the_segment_sharing_most_words() -> None:
    phrase = dialogue_phrase("how to bake crispy sourdough bread", SEGMENTS)
    assert phrase == "Today we bake sourdough bread with a crispy crust."  # stripped


def test_dialogue_phrase_counts_words_not_stopwords() -> None:
    # "the" and "to" are in the first segment but say nothing; "patient" picks the third
    assert dialogue_phrase("the patient to the", SEGMENTS) == "Bread needs time, so be patient."


@pytest.mark.parametrize(
    ("query", "segments"),
    [
        ("quantum physics", SEGMENTS),  # nothing shared
        ("the and of to", SEGMENTS),  # only stopwords shared
        ("bread", []),  # no transcript
        ("", SEGMENTS),
    ],
)
def test_dialogue_phrase_none_when_nothing_is_shared(
    query: str, segments: list[dict[str, object]]
) -> None:
    assert dialogue_phrase(query, segments) is None


def test_dialogue_phrase_tie_keeps_the_earlier_segment() -> None:
    first = "Today we bake sourdough bread with a crispy crust."
    assert dialogue_phrase("bread", SEGMENTS) == first


# --- similar ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({Modality.IMAGE: 0.6, Modality.TEXT: 0.1}, "similar artwork"),
        ({Modality.IMAGE: 0.1, Modality.TEXT: 0.3, Modality.SPEECH: 0.2},
         "similar description and tags"),
        ({Modality.SPEECH: 0.4, Modality.VIDEO: 0.39}, "similar dialogue"),
        ({Modality.VIDEO: 0.2, Modality.IMAGE: -0.5}, "similar scenes"),
        ({Modality.CLIP_TEXT: 0.05}, "similar story"),
    ],
)
def test_similar_names_the_strongest_modality(parts: dict[Modality, float], expected: str) -> None:
    assert similar(parts, 0.0, "Anything") == [expected]


def test_similar_adds_co_engagement_when_strong_enough() -> None:
    assert similar({Modality.TEXT: 0.5}, 0.6, "Heat") == [
        "similar description and tags", "people who liked Heat also liked this"]
    assert similar({Modality.TEXT: 0.5}, 0.05, "Heat") == ["similar description and tags"]
    assert similar({}, 0.9, "Heat") == ["people who liked Heat also liked this"]


@pytest.mark.parametrize(
    "parts",
    [{}, {Modality.IMAGE: 0.0}, {Modality.IMAGE: -0.2, Modality.TEXT: -0.1}],
)
def test_similar_falls_back_when_no_modality_agrees(parts: dict[Modality, float]) -> None:
    assert similar(parts, 0.0, "X") == ["similar content"]


def test_every_modality_has_a_similarity_reason() -> None:
    assert set(SIMILAR_BY) == set(Modality)


# --- rrf --------------------------------------------------------------------------------------
ONE = {Modality.TEXT: 1.0, Modality.SPEECH: 1.0, Modality.IMAGE: 0.5, Modality.CLIP_TEXT: 0.75}


def _total(parts: dict[str, dict[Modality, float]], item: str) -> float:
    return sum(parts[item].values())


def test_rrf_first_in_two_spaces_beats_first_in_one() -> None:
    parts = rrf({Modality.TEXT: ["both", "solo"], Modality.SPEECH: ["both", "x"]}, ONE)
    assert _total(parts, "both") > _total(parts, "solo")
    assert set(parts["both"]) == {Modality.TEXT, Modality.SPEECH}
    assert set(parts["solo"]) == {Modality.TEXT}


def test_rrf_consistent_second_places_beat_one_first_place() -> None:
    parts = rrf({Modality.TEXT: ["star", "steady"], Modality.SPEECH: ["other", "steady"]}, ONE)
    assert _total(parts, "steady") > _total(parts, "star")


def test_rrf_rank_and_weight() -> None:
    parts = rrf({Modality.TEXT: ["a", "b"], Modality.IMAGE: ["b"]}, ONE)
    assert parts["a"][Modality.TEXT] == pytest.approx(1 / 61)
    assert parts["b"][Modality.TEXT] == pytest.approx(1 / 62)
    assert parts["b"][Modality.IMAGE] == pytest.approx(0.5 / 61)  # a lighter space counts less
    assert parts["a"][Modality.TEXT] > parts["b"][Modality.IMAGE]


def test_rrf_of_nothing() -> None:
    assert rrf({}, ONE) == {}
    assert rrf({Modality.TEXT: []}, ONE) == {}


# --- age_min ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("all", 0),
        ("G", 0),
        ("PG", 8),
        ("PG-13", 13),
        ("pg-13", 13),
        (" R ", 17),
        ("NC-17", 18),
        ("TV-MA", 17),
        ("TV-Y7", 7),
        ("16+", 16),
        ("FSK 12", 12),
        ("12A", 12),
        ("0", 0),
        ("250", 99),  # capped
        ("weird", ADULT_AGE),  # unknown word: the safe side
    ],
)
def test_age_min(rating: str | None, expected: int | None) -> None:
    assert age_min(rating) == expected


def test_unknown_rating_is_adult_only() -> None:
    assert ADULT_AGE == 18
