"""Uploads: typed from the bytes, size-limited, stored once per content."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from medley.domain import MediaKind
from medley.errors import PayloadTooLarge, UnsupportedMedia
from medley.media import MediaStore


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_png_is_stored_by_hash_and_identical_uploads_share_a_file(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1 << 20)
    data = _png_bytes()
    a = store.save(MediaKind.IMAGE, io.BytesIO(data), "a.png")
    b = store.save(MediaKind.IMAGE, io.BytesIO(data), "renamed.bin")
    assert a.mime == "image/png" and a.size == len(data)
    assert a.path == b.path and a.path is not None and a.path.read_bytes() == data
    assert list(store.tmp.iterdir()) == []


def test_mislabeled_part_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1 << 20)
    with pytest.raises(UnsupportedMedia, match="image/png"):
        store.save(MediaKind.AUDIO, io.BytesIO(_png_bytes()), "song.wav")
    assert list(store.tmp.iterdir()) == []


def test_unknown_bytes_are_refused(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1 << 20)
    with pytest.raises(UnsupportedMedia, match="not a recognised"):
        store.save(MediaKind.VIDEO, io.BytesIO(b"<script>alert(1)</script>" * 10), "x.mp4")


def test_oversize_is_refused_while_streaming(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1000)
    with pytest.raises(PayloadTooLarge, match="1000 byte"):
        store.save(MediaKind.IMAGE, io.BytesIO(_png_bytes() + b"\0" * 5000), "big.png")
    assert list(store.tmp.iterdir()) == []


def test_empty_upload_keeps_no_file(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1000)
    got = store.save(MediaKind.IMAGE, io.BytesIO(b""), "empty.png")
    assert got.path is None and got.size == 0
