"""The demo catalog: a JSONL manifest of sample items for `medley ingest --demo`.

Built on the sample media of `medley.samples`. Each item's description is a short editorial
blurb and its audio a narration of what it shows, so the metadata text and the dialogue say
different things, as they do in real catalogs: weighting speech up in the editor console
visibly moves each item's neighbours toward what is said in it.
"""

from __future__ import annotations

import json
from pathlib import Path

from medley.samples import _build, _write, build_samples

# (narration key, title, image, video, tags, published_at). A photo item also gets its
# narration as audio.
CATALOG: list[tuple[str, str, str, str | None, str, str]] = [
    ("coffee", "Coffee Break", "coffee", None, "coffee|espresso|cafe|food", "2024-03-04"),
    ("chelsea", "Chelsea the Cat", "chelsea", "silent", "cat|pet|animal", "2024-04-12"),
    ("astronaut", "Portrait of an Astronaut", "astronaut", None, "space|astronaut", "2024-05-20"),
    ("rocket", "Falcon 9 Launch", "rocket", None, "space|rocket|launch", "2024-06-01"),
    ("hubble", "Hubble Deep Field", "hubble", None, "space|galaxies|astronomy", "2024-07-09"),
    ("china", "Summer Palace, Beijing", "china", None, "travel|china|lake", "2024-08-15"),
    ("flower", "Orange Dahlia", "flower", None, "flower|garden|nature", "2024-09-03"),
    ("space", "Journey to Space", "rocket", "space", "space|rocket|video", "2024-10-10"),
    ("tour", "A Tour of the Collection", "coffee", "tour", "tour|travel|video", "2024-11-01"),
]


BLURBS: dict[str, str] = {
    "coffee": "Morning rituals, taken slowly. From the Everyday Pleasures series.",
    "chelsea": "Our office mascot, in a short portrait.",
    "astronaut": "An official portrait from 1992.",
    "rocket": "Launch-day stills from Florida.",
    "hubble": "A landmark image in the history of astronomy.",
    "china": "A summer afternoon in Beijing.",
    "flower": "A close look at a late-summer bloom.",
    "space": "A short journey beyond the sky.",
    "tour": "Everything in the collection, in thirty seconds.",
}


def demo_catalog(out_dir: Path) -> Path:
    """Write `demo_catalog.jsonl` (paths relative to it) next to freshly built samples."""
    out_dir = Path(out_dir)
    samples = build_samples(out_dir)
    videos = {"space": samples.slideshow, "tour": samples.tour, "silent": samples.silent}

    def rel(path: Path) -> str:
        return path.relative_to(out_dir).as_posix()

    lines = []
    for key, title, image, video, tags, date in CATALOG:
        row: dict[str, object] = {
            "external_id": f"demo-{key}",
            "title": title,
            "description": BLURBS[key],
            "tags": tags.split("|"),
            "language": "en",
            "age_rating": "all",
            "published_at": f"{date}T12:00:00Z",
            "image": rel(samples.photos[image]),
        }
        if key in samples.photos:
            row["audio"] = rel(samples.speech[key])
        if video:
            row["video"] = rel(videos[video])
        lines.append(json.dumps(row))
    path = out_dir / "demo_catalog.jsonl"
    # Always rewritten (cheap), so a changed catalog never leaves a stale manifest behind.
    path.unlink(missing_ok=True)
    return _build(path, _write(("\n".join(lines) + "\n").encode()))
