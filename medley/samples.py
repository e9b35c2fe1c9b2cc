"""Real sample media for tests, the demo catalog (`medley.demo`) and benchmarks.

Everything is built from files that installed packages already carry (scikit-image and
scikit-learn photos), speech from `espeak-ng` and videos from `ffmpeg`, so no download is
needed. Builds are deterministic and idempotent: a file that already exists is reused, and
each file is written under a temporary name first, so an interrupted build never leaves a
half-written file that a later run would take for finished.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y")
# Bit-exact flags keep encoder version strings out of the files, so rebuilds are identical.
BITEXACT = ("-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact")
FRAME = (640, 360)
TOUR_SECONDS = 30.0

# name: (package, file inside it, licence, credit), as the packages document them.
PHOTO_SOURCES: dict[str, tuple[str, str, str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png", "public domain", "NASA: Eileen Collins"),
    "coffee": ("skimage", "data/coffee.png", "CC0", "Rachel Michetti, Pikolo Espresso Bar"),
    "chelsea": ("skimage", "data/chelsea.png", "CC0", "Stefan van der Walt"),
    "rocket": ("skimage", "data/rocket.jpg", "public domain", "SpaceX: Falcon 9 and DSCOVR"),
    "hubble": ("skimage", "data/hubble_deep_field.jpg", "public domain", "NASA: Hubble XDF"),
    "china": ("sklearn", "datasets/images/china.jpg", "CC BY 2.0", "danielbuechele (flickr)"),
    "flower": ("sklearn", "datasets/images/flower.jpg", "CC BY 2.0", "vultilion (flickr)"),
}

NARRATIONS: dict[str, str] = {
    "coffee": "A fresh cup of coffee on a wooden table. Dark espresso with golden crema, "
    "served in a white porcelain cup for a slow morning coffee break.",
    "chelsea": "Chelsea the cat sits still and stares at the camera. A tabby cat with striped "
    "ginger and grey fur, bright eyes and long white whiskers.",
    "astronaut": "Astronaut Eileen Collins poses in her orange flight suit beside an American "
    "flag. She was the first woman to pilot the space shuttle.",
    "rocket": "A Falcon nine rocket lifts off from Cape Canaveral on a column of fire and "
    "smoke, carrying a deep space weather satellite into orbit.",
    "hubble": "The Hubble telescope's deepest view of the universe. Thousands of distant "
    "galaxies glow in the darkness of space, billions of light years away.",
    "china": "The Tower of Buddhist Incense at the Summer Palace in Beijing. A red and green "
    "pagoda with curved roofs rises above trees, overlooking a wide lake.",
    "flower": "An orange dahlia in full bloom. Layers of soft petals curl around the centre "
    "of the flower against dark green leaves in the garden.",
    "space": "From the launch pad to the edge of the universe. A rocket climbs into the sky, "
    "an astronaut gets ready for her flight, and the Hubble telescope looks back at "
    "thousands of distant galaxies.",
    "tour": "Welcome to a short tour of our collection. We begin with a cup of espresso on a "
    "wooden table. Next, Chelsea the tabby cat watches the camera. Then the Summer Palace in "
    "Beijing rises above a quiet lake, and an orange dahlia opens in the garden. Finally, an "
    "astronaut gets ready to fly, and a rocket lifts off into the sky. Every item here can "
    "be found by what you see, by what you hear, and by what you read.",
}


@dataclass(frozen=True)
class SampleSet:
    root: Path
    photos: dict[str, Path]  # name -> copied photo (astronaut, coffee, chelsea, ...)
    speech: dict[str, Path]  # name -> espeak-ng WAV narration
    slideshow: Path  # ~12 s MP4 (H.264 + AAC): rocket, astronaut, hubble + voice-over
    tour: Path  # 30 s MP4 with speech: all photos as slides (upload-to-ready benchmark)
    silent: Path  # MP4 with NO audio track, one static slide (no scene change)
    empty: Path  # zero bytes, named .png
    truncated_png: Path
    truncated_mp4: Path  # index (moov) at the end, cut off: unusable
    bomb_png: Path  # ~100 KB file declaring 30000x30000 pixels
    png_as_wav: Path  # a PNG renamed .wav
    garbage: Path  # random bytes
    sources_file: Path  # SOURCES.json: origin and licence of every photo

    @property
    def licences(self) -> dict[str, str]:
        return {name: src[2] for name, src in PHOTO_SOURCES.items()}


def _package_dir(package: str) -> Path:
    # find_spec locates the package without importing it (skimage's import is slow).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed; it carries the sample photos")
    return Path(next(iter(spec.submodule_search_locations)))


def _source_path(name: str) -> Path:
    package, inner, _, _ = PHOTO_SOURCES[name]
    return _package_dir(package) / inner


def _sources_json() -> bytes:
    fields = ("package", "path", "licence", "credit")
    rows = {name: dict(zip(fields, src, strict=True)) for name, src in PHOTO_SOURCES.items()}
    return json.dumps(rows, indent=2, sort_keys=True).encode()


def _build(target: Path, make: Callable[[Path], object]) -> Path:
    """Run `make(tmp)` unless `target` exists, then move the result into place atomically."""
    if target.exists() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        make(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _run(args: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def _speak(text: str) -> Callable[[Path], object]:
    # Text goes through stdin, never argv, so no sentence can be mistaken for an option.
    def make(tmp: Path) -> None:
        _run(["espeak-ng", "-v", "en-us", "-s", "160", "--stdin", "-w", str(tmp)], stdin=text)

    return make


def _slides(images: list[Path], seconds: float, audio: Path | None) -> Callable[[Path], object]:
    """Each image held for `seconds` (hard cuts = scene changes), optional padded voice-over."""
    w, h = FRAME
    total = seconds * len(images)

    def make(tmp: Path) -> None:
        args = list(FFMPEG)
        chains, labels = [], ""
        for i, img in enumerate(images):
            args += ["-loop", "1", "-framerate", "25", "-t", f"{seconds}", "-i", str(img)]
            chains.append(
                f"[{i}:v]scale={w}:{h}:force_original_aspect_ratio=decrease,"
                f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v{i}]"
            )
            labels += f"[v{i}]"
        graph = ";".join([*chains, f"{labels}concat=n={len(images)}:v=1:a=0[v]"])
        maps = ["-map", "[v]"]
        if audio is not None:
            args += ["-i", str(audio)]
            # Pad the narration with silence so the audio track spans the whole video.
            graph += f";[{len(images)}:a]apad,aresample=44100[a]"
            maps += ["-map", "[a]", "-c:a", "aac", "-b:a", "64k", "-ac", "1"]
        args += ["-filter_complex", graph, *maps, "-t", f"{total}"]
        args += ["-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "30"]
        args += ["-threads", "2", "-movflags", "+faststart", "-map_metadata", "-1", *BITEXACT]
        _run([*args, "-f", "mp4", str(tmp)])

    return make


def _copy(src: Path) -> Callable[[Path], object]:
    return lambda tmp: shutil.copyfile(src, tmp)


def _write(data: bytes) -> Callable[[Path], object]:
    return lambda tmp: tmp.write_bytes(data)


def _truncate(src: Path, fraction: float) -> Callable[[Path], object]:
    return lambda tmp: tmp.write_bytes(src.read_bytes()[: int(src.stat().st_size * fraction)])


def _truncated_mp4(src: Path) -> Callable[[Path], object]:
    """Cameras write the index (moov) last; an interrupted upload of such a file is unusable."""

    def make(tmp: Path) -> None:
        full = tmp.with_name(tmp.name + ".full.mp4")
        try:
            _run([*FFMPEG, "-i", str(src), "-c", "copy", *BITEXACT, "-f", "mp4", str(full)])
            tmp.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
        finally:
            full.unlink(missing_ok=True)

    return make


def bomb_png_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit black PNG that declares `width`x`height` pixels but is only ~100 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed 1-bit pixels
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def build_samples(out_dir: Path) -> SampleSet:
    """Build (or reuse) every sample file under `out_dir`."""
    out_dir = Path(out_dir)
    photos: dict[str, Path] = {}
    for name in PHOTO_SOURCES:
        src = _source_path(name)
        photos[name] = _build(out_dir / "photos" / f"{name}{src.suffix}", _copy(src))
    sources = out_dir / "SOURCES.json"
    _build(sources, _write(_sources_json()))

    speech = {k: _build(out_dir / "speech" / f"{k}.wav", _speak(t)) for k, t in NARRATIONS.items()}

    videos = out_dir / "videos"
    space = [photos["rocket"], photos["astronaut"], photos["hubble"]]
    slideshow = _build(videos / "space_slideshow.mp4", _slides(space, 4.0, speech["space"]))
    # Every cut here scores over 0.5 on ffmpeg's scene detector (flower -> rocket did not).
    order = ["coffee", "chelsea", "china", "flower", "astronaut", "rocket"]
    per_slide = TOUR_SECONDS / len(order)
    tour_slides = _slides([photos[n] for n in order], per_slide, speech["tour"])
    tour = _build(videos / "collection_tour_30s.mp4", tour_slides)
    silent = _build(videos / "chelsea_silent.mp4", _slides([photos["chelsea"]], 4.0, None))

    bad = out_dir / "hostile"
    rng = random.Random(20261128)  # fixed seed: the same garbage on every build
    return SampleSet(
        root=out_dir,
        photos=photos,
        speech=speech,
        slideshow=slideshow,
        tour=tour,
        silent=silent,
        empty=_touch(bad / "empty.png"),
        truncated_png=_build(bad / "truncated.png", _truncate(photos["coffee"], 0.5)),
        truncated_mp4=_build(bad / "truncated.mp4", _truncated_mp4(slideshow)),
        bomb_png=_build(bad / "bomb_30000x30000.png", lambda t: t.write_bytes(bomb_png_bytes())),
        png_as_wav=_build(bad / "not_really_audio.wav", _copy(photos["coffee"])),
        garbage=_build(bad / "garbage.bin", _write(rng.randbytes(64 * 1024))),
        sources_file=sources,
    )


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.stat().st_size:  # touch() would bump mtime on every run
        path.write_bytes(b"")
    return path
