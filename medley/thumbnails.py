"""Small JPEG thumbnails of an item's artwork, rendered once and kept on disk.

The artwork is the item's image or, failing that, one frame of its video. Decoding goes through
the same guarded loaders the enrichment workers use, because stored uploads are as hostile as
they were on arrival; any decode failure becomes a 404 with a reason, never a 500.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from enrich.base import MediaDecodeError
from enrich.images import open_image
from medley.config import Settings
from medley.db.models import Item, Media
from medley.domain import MediaKind
from medley.errors import NotFound

# Bump when the rendering below changes, so caches and browsers drop the old pictures.
RENDER_VERSION = 1
JPEG_QUALITY = 85
# A thumbnail request holds a request thread; a video that will not yield a frame in this
# time is reported as undecodable rather than left to the 10-minute enrichment timeout.
FRAME_TIMEOUT_S = 30.0
# Private: a thumbnail is fetched with an API key, and a shared cache must not hand it to
# callers without one.
CACHE_CONTROL = "private, max-age=86400"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    kind: MediaKind
    path: Path
    sha256: str


def source_of(item: Item) -> Source:
    """The media a thumbnail is drawn from: the image, else the video; NotFound if neither."""
    by_kind = {m.kind: m for m in item.media}
    for kind in (MediaKind.IMAGE, MediaKind.VIDEO):
        media: Media | None = by_kind.get(kind.value)
        if media is not None:
            return Source(kind, Path(media.path), media.sha256)
    raise NotFound(f"item {item.id} has no image or video to make a thumbnail from")


def etag(source: Source, px: int) -> str:
    # Content-addressed: the same upload and size always render the same bytes.
    return f'"{source.sha256}-{px}-v{RENDER_VERSION}"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison, a list of tags or `*`."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return tag in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}


def render(source: Source, px: int, *, max_pixels: int, max_seconds: float) -> bytes:
    """JPEG bytes of `source`, RGB and upright, its longest side `px` (never enlarged).

    Raises MediaDecodeError, with a reason users can read, when the file does not decode.
    """
    if source.kind is MediaKind.VIDEO:
        with tempfile.TemporaryDirectory(prefix="medley-thumb-") as scratch:
            frame = _video_frame(source.path, Path(scratch), max_seconds)
            img = open_image(frame, max_pixels)
    else:
        img = open_image(source.path, max_pixels)
    return _jpeg(_shrink(img, px))


def _shrink(img: Image.Image, px: int) -> Image.Image:
    width, height = img.size
    scale = px / max(width, height)
    if scale >= 1:
        return img  # enlarging adds bytes, not detail; the console scales small ones itself
    # max(1, ...): a 10000x3 banner must not round to a zero-pixel side.
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap shrinks by whole factors first: much faster on large photos, same look.
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def _video_frame(path: Path, scratch: Path, max_seconds: float) -> Path:
    # The keyframe extractor's scene detection decodes the whole video; a thumbnail needs one
    # seek, so this takes its probe and frame grabber on their own.
    from enrich.video import grab_frames, probe

    info = probe(path, max_seconds=max_seconds)
    if not info.has_video:
        raise MediaDecodeError("has no video stream")
    target = scratch / "frame.jpg"
    # The middle, like the keyframe extractor for a single scene: the first frame is often a
    # black fade-in. A container that misstates its duration gets a second try at the start.
    times = [info.duration / 2, 0.0] if info.duration > 0 else [0.0]
    for t in times:
        grab_frames(path, [(t, target)], FRAME_TIMEOUT_S)
        if target.exists() and target.stat().st_size > 0:
            return target
    raise MediaDecodeError("no video frame could be decoded")


class ThumbnailCache:
    """Rendered thumbnails under `data_dir/thumbs`, one file per source content and size."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir / "thumbs"
        self.px = settings.thumbnail_px
        self.max_pixels = settings.max_image_pixels
        self.max_seconds = settings.max_media_seconds

    def path_for(self, source: Source) -> Path:
        name = f"{source.sha256}-{self.px}-v{RENDER_VERSION}.jpg"
        return self.root / source.sha256[:2] / name

    def get(self, source: Source) -> bytes:
        """The cached thumbnail, rendering and storing it first if needed.

        Raises NotFound when the stored artwork no longer decodes.
        """
        target = self.path_for(source)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            pass
        try:
            data = render(source, self.px, max_pixels=self.max_pixels,
                          max_seconds=self.max_seconds)
        except MediaDecodeError as exc:
            raise NotFound(f"this item's artwork cannot be decoded: {exc}") from exc
        try:
            self._store(target, data)
        except OSError as exc:
            # The cache only saves work; a full or read-only disk must not cost the picture.
            log.warning("thumbnail cache write failed: %s", exc)
        return data

    @staticmethod
    def _store(target: Path, data: bytes) -> None:
        # Concurrent first requests each render and replace; readers only ever see whole files.
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
