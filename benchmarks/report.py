"""One writer for every benchmark: a JSON file with the figures and a Markdown view of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(
    out_dir: Path, name: str, data: dict[str, Any], markdown: str
) -> tuple[Path, Path]:
    """Write `out_dir/name.json` and `out_dir/name.md`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def head_commit() -> str:
    """The checkout's short commit id, for a report's provenance ("unknown" outside git)."""
    import subprocess

    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip() or "unknown"


def publish(out_dir: Path, name: str, result: dict[str, Any],
            render: Callable[[dict[str, Any], str], str]) -> str:
    """A single-measurement benchmark's ending: its result stamped with the commit, written
    as `name`.json and `name`.md (the markdown `render(result, commit)` makes), and returned
    for printing."""
    commit = head_commit()
    text = render(result, commit)
    write_report(out_dir, name, {**result, "commit": commit}, text)
    return text


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats keep the precision they were rounded to in the JSON."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
