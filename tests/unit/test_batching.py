"""Cross-task micro-batching (enrich/batching.py): tasks that run at once share one model call,
each gets its own row back, and one bad input fails only its own task."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from enrich.batching import MicroBatcher


class Model:
    """Embeds a word as [len(word), index in its batch]; refuses the word 'bad'."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, words: Sequence[str]) -> np.ndarray:
        self.calls.append(list(words))
        if "bad" in words:
            raise ValueError("cannot embed 'bad'")
        return np.array([[len(w), k] for k, w in enumerate(words)], dtype=np.float32)


def run_at_once(batcher: MicroBatcher[str], words: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    go = threading.Barrier(len(words))

    def task(word: str) -> None:
        go.wait()
        try:
            out[word] = batcher(word)
        except Exception as exc:
            out[word] = exc

    threads = [threading.Thread(target=task, args=(w,)) for w in words]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_tasks_running_at_once_share_a_model_call_and_get_their_own_rows() -> None:
    model = Model()
    batcher = MicroBatcher("t", model.embed, max_items=32, max_wait_s=0.2)
    words = [f"w{'x' * k}" for k in range(12)]
    out = run_at_once(batcher, words)
    assert len(model.calls) < len(words)  # batched: fewer model calls than tasks
    assert sorted(w for call in model.calls for w in call) == sorted(words)
    for w in words:
        assert out[w][0] == len(w)  # type: ignore[index]


def test_batches_stop_at_their_size() -> None:
    model = Model()
    batcher = MicroBatcher("t", model.embed, max_items=4, max_wait_s=0.2)
    run_at_once(batcher, [f"w{k}" for k in range(10)])
    assert max(len(c) for c in model.calls) <= 4


def test_one_bad_input_fails_only_its_own_task() -> None:
    model = Model()
    batcher = MicroBatcher("t", model.embed, max_items=32, max_wait_s=0.2)
    out = run_at_once(batcher, ["good", "bad", "fine"])
    assert isinstance(out["bad"], ValueError)
    assert out["good"][0] == 4 and out["fine"][0] == 4  # type: ignore[index]


def test_a_lone_task_waits_at_most_the_wait() -> None:
    model = Model()
    batcher = MicroBatcher("t", model.embed, max_items=32, max_wait_s=0.05)
    assert batcher("solo")[0] == 4
    with pytest.raises(ValueError):
        batcher("bad")
    assert batcher("again")[0] == 5  # the batcher thread survived the failure
