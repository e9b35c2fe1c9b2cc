"""The import layers (pyproject.toml, checked by `lint-imports` in `make lint`) place every
module of the `medley` package, so a new one cannot slip past them."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import medley

ROOT = Path(__file__).resolve().parents[2]


def test_every_medley_module_is_in_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = next(c for c in config["tool"]["importlinter"]["contracts"]
                  if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in re.split(r"[|:]", layer)}
    modules = {f"medley.{m.name}" for m in pkgutil.iter_modules(medley.__path__)}
    assert modules - named == set(), "add these to a layer in pyproject.toml"
