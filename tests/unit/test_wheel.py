"""The wheel built from the tree (what the image installs) holds the service only: no benchmark
code (`benchmarks/` runs from a checkout), no tests, and no module importing a dev-only
dependency; the evaluation protocol the fusion editor uses is in it."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not the source: the benchmark dataset, the virtualenv, git, caches, and earlier builds (a
# stale build/lib would put removed modules back into the wheel).
SKIP_TOP = {"data", "build", "dist"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == ROOT
    return {n for n in names
            if n in ("__pycache__", ".pytest_cache") or n.endswith((".pyc", ".egg-info"))
            or (top and (n.startswith(".") or n in SKIP_TOP))}


def _dev_modules() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()
             for req in project["optional-dependencies"]["dev"]}
    return {"importlinter" if n == "import-linter" else n.replace("-", "_") for n in names}


def _imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_wheel_ships_no_benchmark_code(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(ROOT, src, ignore=_ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                    "--no-build-isolation", "--no-index", "-q", "-w", str(out)],
                   check=True, cwd=tmp_path)
    wheel = next(out.glob("medley-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        sources = {n: z.read(n).decode() for n in names if n.endswith(".py")}
    assert "medley/recs/evaluation.py" in names
    assert "medley/cli.py" in names
    shipped = [n for n in names if n.startswith(("benchmarks/", "medley/bench/", "tests/"))]
    assert shipped == []
    dev = _dev_modules()
    assert "schemathesis" in dev
    uses_dev = {n: sorted(_imports(text) & (dev | {"benchmarks"})) for n, text in sources.items()}
    assert {n: found for n, found in uses_dev.items() if found} == {}
