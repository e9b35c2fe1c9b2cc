"""The generated catalog `python -m benchmarks ingest` imports: a JSONL manifest for
`medley ingest`.

Shares as the issue sets them: 70% text + image, 20% text + 10-30 s of espeak-ng speech, a few
short ffmpeg videos (1%, at least one from 20 items), the rest text only, mixed in a fixed
shuffled order. Every image, narration and video is different (its own crop of a sample
photo, its own sentences, its own slides): identical media is never extracted twice
(`reused_from`), so copies would time the reuse path instead of the models. Item k's files
depend only on k and the seed, and `medley.samples._build` reuses a finished file, so a second
run, or a larger one, only builds what it has not built before.
"""

from __future__ import annotations

import json
import random
import wave
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.enrich import catalog_descriptions
from medley.samples import _build, _slides, _speak, _write, build_samples

IMAGE, SPEECH, VIDEO, TEXT = "image", "speech", "video", "text"
IMAGE_SHARE, SPEECH_SHARE, VIDEO_SHARE = 0.70, 0.20, 0.01
SPEECH_SECONDS = (10.0, 30.0)
WORDS_PER_SECOND = 2.4  # espeak-ng at 160 words/min on these sentences, pauses included
IMAGE_WIDTH = 480
VIDEO_SLIDES, VIDEO_SLIDE_S = 3, 2.0
TAGS = ("home", "outdoor", "gift", "kitchen", "travel", "office", "winter", "craft", "design")


@dataclass(frozen=True)
class Catalog:
    manifest: Path
    counts: dict[str, int]  # items of each kind: image, speech, video, text
    speech_seconds: float  # audio of the speech items (videos' narration not counted)
    video_seconds: float


def kinds(items: int, seed: int = 0) -> list[str]:
    """Each item's kind, in upload order."""
    n_video = max(1, round(items * VIDEO_SHARE)) if items >= 20 else 0
    n_image, n_speech = round(items * IMAGE_SHARE), round(items * SPEECH_SHARE)
    n_text = max(0, items - n_image - n_speech - n_video)
    out = [IMAGE] * n_image + [SPEECH] * n_speech + [VIDEO] * n_video + [TEXT] * n_text
    random.Random(seed).shuffle(out)
    return out[:items]


def _image(photo: Path, key: str) -> Any:
    """Item k's own picture: a random crop of a sample photo, mirrored at random, with its
    brightness nudged, IMAGE_WIDTH pixels wide, as JPEG."""
    def make(tmp: Path) -> None:
        from PIL import Image, ImageEnhance, ImageOps

        rng = random.Random(key)
        with Image.open(photo) as src:
            img = src.convert("RGB")
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.5, 0.9)), int(h * rng.uniform(0.5, 0.9))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        img = img.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
        img = img.resize((IMAGE_WIDTH, max(1, round(ch * IMAGE_WIDTH / cw))))
        img.save(tmp, format="JPEG", quality=85)

    return make


def _narration(k: int, seed: int, seconds: float) -> str:
    """About `seconds` of speech: catalog sentences cut to a word count; the item number
    makes each narration unique."""
    rng = random.Random(f"{seed}:speech:{k}")
    words = f"Item number {k}.".split()
    target = max(len(words) + 1, round(seconds * WORDS_PER_SECOND))
    while len(words) < target:
        words += catalog_descriptions(1, seed=rng.randrange(1 << 30))[0].split()
    return " ".join(words[:target]).rstrip(",.") + "."


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def _item(k: int, kind: str, root: Path, photos: list[Path], seed: int,
          description: str) -> tuple[dict[str, Any], float]:
    """Item k's manifest row (media paths relative to `root`), building its files; and the
    seconds of its audio."""
    rng = random.Random(f"{seed}:item:{k}")
    row: dict[str, Any] = {
        "external_id": f"bench-ingest-{seed}-{k:05d}",
        "title": " ".join(description.split()[:3]).rstrip(",.") + f" #{k}",
        "description": description,
        "tags": rng.sample(TAGS, 2),
        "language": "en",
    }
    seconds = 0.0
    if kind == IMAGE:
        photo = photos[k % len(photos)]
        path = _build(root / "images" / f"{k:05d}.jpg", _image(photo, f"{seed}:image:{k}"))
        row["image"] = path.relative_to(root).as_posix()
    elif kind == SPEECH:
        target = rng.uniform(*SPEECH_SECONDS)
        path = _build(root / "speech" / f"{k:05d}.wav", _speak(_narration(k, seed, target)))
        row["audio"] = path.relative_to(root).as_posix()
        seconds = wav_seconds(path)
    elif kind == VIDEO:
        slides = [_build(root / "slides" / f"{k:05d}-{j}.jpg",
                         _image(photos[(k + j) % len(photos)], f"{seed}:slide:{k}:{j}"))
                  for j in range(VIDEO_SLIDES)]
        voice = _build(root / "slides" / f"{k:05d}.wav",
                       _speak(_narration(k, seed, VIDEO_SLIDES * VIDEO_SLIDE_S - 1)))
        path = _build(root / "videos" / f"{k:05d}.mp4", _slides(slides, VIDEO_SLIDE_S, voice))
        row["video"] = path.relative_to(root).as_posix()
        seconds = VIDEO_SLIDES * VIDEO_SLIDE_S
    return row, seconds


def build_catalog(root: Path, items: int, seed: int = 0, threads: int = 2) -> Catalog:
    """Build (or reuse) the media and write `root/catalog-<items>.jsonl`."""
    root = Path(root)
    photos = sorted(build_samples(root / "samples").photos.values())
    plan = kinds(items, seed)
    descriptions = catalog_descriptions(items, seed=seed)
    with ThreadPoolExecutor(threads) as pool:  # espeak-ng and ffmpeg run as subprocesses
        built = list(pool.map(lambda k: _item(k, plan[k], root, photos, seed, descriptions[k]),
                              range(items)))
    lines = "".join(json.dumps(row) + "\n" for row, _ in built)
    manifest = root / f"catalog-{items}-{seed}.jsonl"
    manifest.unlink(missing_ok=True)  # rewritten every time (cheap), never stale
    _build(manifest, _write(lines.encode()))
    speech = sum(s for (_, s), kind in zip(built, plan, strict=True) if kind == SPEECH)
    video = sum(s for (_, s), kind in zip(built, plan, strict=True) if kind == VIDEO)
    return Catalog(manifest, dict(Counter(plan)), round(speech, 1), round(video, 1))
