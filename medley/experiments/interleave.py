"""Team-draft interleaving (Radlinski, Kurup and Joachims, CIKM 2008): two rankings merged into
one answer, each slot remembering which side (team) put it there; a user's clicks on each
team's items say which ranking they preferred."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

A, B = "A", "B"


def team_draft(first: Sequence[str], second: Sequence[str], n: int, rng: random.Random
               ) -> tuple[list[str], list[str]]:
    """(items, team of each item). Like picking sides in a playground: the team with fewer
    picks so far chooses next (a coin decides a tie), taking its best item not yet taken.

    An item both rankings hold in their first n is marked with its team in lower case: which
    team picked it was the coin's doing, so a click on it says nothing about the rankings and
    only adds noise; `preference` leaves it out (the verdict stays unbiased, with less noise)."""
    out: list[str] = []
    teams: list[str] = []
    taken: set[str] = set()
    picks = {A: 0, B: 0}
    lists = {A: list(first), B: list(second)}
    cursor = {A: 0, B: 0}
    both = set(first[:n]) & set(second[:n])

    def next_of(team: str) -> str | None:
        ranked = lists[team]
        while cursor[team] < len(ranked) and ranked[cursor[team]] in taken:
            cursor[team] += 1
        return ranked[cursor[team]] if cursor[team] < len(ranked) else None

    while len(out) < n:
        ahead = A if picks[A] < picks[B] else B if picks[B] < picks[A] else \
            (A if rng.random() < 0.5 else B)
        order = (ahead, B if ahead == A else A)
        for team in order:  # the other team picks when this one has nothing left
            item = next_of(team)
            if item is not None:
                break
        else:
            break
        out.append(item)
        teams.append(team.lower() if item in both else team)
        taken.add(item)
        picks[team] += 1
    return out, teams


def preference(clicks: Iterable[tuple[str, str]]) -> int:
    """One user's verdict from (item, team) clicks over all their interleaved answers: +1 the
    first ranking (A) won more clicks, -1 the second, 0 a tie (or no click). Clicks on items
    both rankings showed (lower-case teams) do not count."""
    score = 0
    for _, team in clicks:
        score += 1 if team == A else -1 if team == B else 0
    return (score > 0) - (score < 0)
