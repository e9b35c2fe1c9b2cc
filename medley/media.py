"""Uploaded media: streamed to disk, typed from the bytes, stored by content hash."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import filetype

from medley.domain import MediaKind
from medley.errors import PayloadTooLarge, StorageFull, UnsupportedMedia

CHUNK = 1024 * 1024

# What each upload part may hold, by MIME type detected from the file's first bytes.
ACCEPTED: dict[MediaKind, frozenset[str]] = {
    MediaKind.IMAGE: frozenset(
        {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
    ),
    MediaKind.AUDIO: frozenset(
        {"audio/x-wav", "audio/mpeg", "audio/x-flac", "audio/ogg", "audio/mp4", "audio/aac",
         "audio/x-aiff", "audio/opus"}
    ),
    MediaKind.VIDEO: frozenset(
        {"video/mp4", "video/webm", "video/x-matroska", "video/quicktime", "video/x-msvideo",
         "video/mpeg", "video/x-m4v"}
    ),
}


@dataclass(frozen=True)
class StoredMedia:
    kind: MediaKind
    sha256: str
    path: Path | None  # None for an empty upload: nothing to keep, the modality fails
    mime: str
    size: int
    filename: str | None


def sniff(head: bytes, kind: MediaKind) -> str:
    """The MIME type of `head` if it is acceptable for `kind`; otherwise UnsupportedMedia."""
    guess = filetype.guess(head)
    if guess is None:
        raise UnsupportedMedia(f"the {kind} part is not a recognised {kind} format")
    mime = guess.mime
    if mime not in ACCEPTED[kind]:
        raise UnsupportedMedia(
            f"the {kind} part holds {mime} data; accepted: {', '.join(sorted(ACCEPTED[kind]))}"
        )
    return mime


class MediaStore:
    """Content-addressed files under one folder; identical uploads share one file."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str, mime: str) -> Path:
        ext = mime.split("/")[-1].removeprefix("x-")
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def save(self, kind: MediaKind, src: BinaryIO, filename: str | None) -> StoredMedia:
        """Copy `src` in chunks, hashing as it goes, refusing oversize and mistyped files."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                head = b""
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(
                            f"the {kind} part is over the {self.max_bytes} byte upload limit"
                        )
                    if len(head) < 8192:
                        head += chunk[: 8192 - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            if size == 0:
                tmp.unlink()
                return StoredMedia(kind, sha, None, "application/x-empty", 0, filename)
            mime = sniff(head, kind)
            final = self.path_for(sha, mime)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                tmp.unlink()
            else:
                os.replace(tmp, final)
            return StoredMedia(kind, sha, final, mime, size, filename)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull("the media store is out of disk space") from exc
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def scratch_dir(self) -> Path:
        """A private folder for a task's intermediate files (keyframes, audio tracks)."""
        return Path(tempfile.mkdtemp(dir=self.tmp))

    @staticmethod
    def drop_scratch(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
