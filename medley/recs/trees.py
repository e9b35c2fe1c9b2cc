"""The learned ranker's trees as flat arrays, evaluated by one compiled loop.

LightGBM's own `Booster.predict` walks a request's few hundred candidates through a few
hundred trees at about 5 µs per candidate on these CPUs (1.7 ms for 350 rows and 262 trees):
most of what the learned ranker added to a for-you request. The same walk over flat arrays,
compiled once per process by numba, takes a fraction of that and releases the GIL while it
runs, so other requests' Python goes on beside it.

Only what the ranker trains is supported: numerical splits ("<="), with LightGBM's three
missing-value rules. A model with anything else (categorical splits, linear trees, averaged
output) is refused by `Forest.of`, and the caller keeps LightGBM's own predict.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# LightGBM's missing-value rule per split (`missing_type` in its model dump).
MISSING = {"None": 0, "Zero": 1, "NaN": 2}
# A value counts as zero under the "Zero" rule within this (LightGBM's kZeroThreshold).
ZERO = 1e-35


class Unsupported(ValueError):
    """The model uses a kind of split this evaluator does not implement."""


@dataclass(frozen=True)
class Forest:
    """Every tree's split nodes in one array set. A child index >= 0 is a node; a negative one
    is ~leaf (leaf k is -k-1). A tree that is a single leaf has its root as ~leaf."""

    feature: np.ndarray  # int32, per node: the feature it splits on
    threshold: np.ndarray  # float64: go left when value <= threshold
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    default_left: np.ndarray  # uint8: where a missing value goes (rules Zero and NaN)
    missing: np.ndarray  # uint8: MISSING's codes
    roots: np.ndarray  # int32, per tree
    leaf_value: np.ndarray  # float64, per leaf (shrinkage already applied by LightGBM)
    features: int  # columns the input must have

    @classmethod
    def of(cls, dump: dict[str, Any]) -> Forest:
        """From `Booster.dump_model()`'s dict."""
        if dump.get("average_output") or dump.get("num_tree_per_iteration", 1) != 1:
            raise Unsupported("averaged or multi-class output")
        nodes: list[tuple[int, float, int, int, int, int]] = []
        leaves: list[float] = []

        def add(tree: dict[str, Any]) -> int:
            if "leaf_coeff" in tree:
                raise Unsupported("linear trees")
            if "leaf_value" in tree:
                leaves.append(float(tree["leaf_value"]))
                return -len(leaves)  # ~(len(leaves) - 1)
            if tree.get("decision_type") != "<=":
                raise Unsupported(f"split {tree.get('decision_type')!r}")
            k = len(nodes)
            nodes.append((0, 0.0, 0, 0, 0, 0))  # children first need their own indices
            left, right = add(tree["left_child"]), add(tree["right_child"])
            nodes[k] = (int(tree["split_feature"]), float(tree["threshold"]), left, right,
                        int(bool(tree["default_left"])), MISSING[str(tree["missing_type"])])
            return k

        roots = []
        for info in dump["tree_info"]:
            if info.get("num_cat", 0):
                raise Unsupported("categorical splits")
            roots.append(add(info["tree_structure"]))
        cols = list(zip(*nodes, strict=True)) if nodes else [()] * 6
        return cls(np.asarray(cols[0], dtype=np.int32), np.asarray(cols[1], dtype=np.float64),
                   np.asarray(cols[2], dtype=np.int32), np.asarray(cols[3], dtype=np.int32),
                   np.asarray(cols[4], dtype=np.uint8), np.asarray(cols[5], dtype=np.uint8),
                   np.asarray(roots, dtype=np.int32), np.asarray(leaves, dtype=np.float64),
                   int(dump["max_feature_idx"]) + 1)

    @property
    def trees(self) -> int:
        return len(self.roots)

    def predict(self, x: np.ndarray, rows: np.ndarray | None = None, start: int = 0,
                stop: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Raw scores (what LightGBM's predict gives a ranking objective) for rows of x: the
        sum over trees [start, stop), added into `out` where given (`rows`: only these rows
        of x, the rest of `out` untouched)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < self.features:
            raise ValueError(f"expected rows of {self.features} features, got {x.shape}")
        if out is None:
            out = np.zeros(len(x), dtype=np.float64)
        which = np.arange(len(x), dtype=np.int64) if rows is None else \
            np.asarray(rows, dtype=np.int64)
        _kernel()(x, which, self.roots[start:stop], self.feature, self.threshold, self.left,
                  self.right, self.default_left, self.missing, self.leaf_value, out)
        return out


def _walk(x: np.ndarray, rows: np.ndarray, roots: np.ndarray, feature: np.ndarray,
          threshold: np.ndarray, left: np.ndarray, right: np.ndarray, default_left: np.ndarray,
          missing: np.ndarray, leaf_value: np.ndarray, out: np.ndarray) -> None:
    """LightGBM's NumericalDecision per node (tree.h): NaN reads as 0 unless the rule is NaN;
    a missing value (NaN under NaN, ~0 under Zero) goes the default way; else <= goes left.
    Adds each row's leaf values over the trees `roots` into out[row]."""
    for i in rows:
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while node >= 0:
                v = x[i, feature[node]]
                rule = missing[node]
                if v != v and rule != 2:
                    v = 0.0
                if (rule == 2 and v != v) or (rule == 1 and abs(v) <= ZERO):
                    node = left[node] if default_left[node] else right[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += leaf_value[-node - 1]
        out[i] += total


_compiled: Any = None
_compile_lock = threading.Lock()


def _kernel() -> Any:
    """`_walk` compiled by numba (once per process, cached on disk where it can be), or the
    plain Python function where numba is missing (correct, slow: tests and odd platforms)."""
    global _compiled
    if _compiled is None:
        with _compile_lock:
            if _compiled is None:
                try:
                    import numba

                    _compiled = numba.njit(cache=True, nogil=True)(_walk)
                except ImportError:  # pragma: no cover - numba ships with openai-whisper
                    log.warning("numba is not installed: the ranker's trees run in Python")
                    _compiled = _walk
    return _compiled
