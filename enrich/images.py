"""Safe image decoding: refuse decompression bombs before pixels are decoded, and turn every
way a hostile or broken file can fail into a `MediaDecodeError` with a reason users can read."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from enrich.base import MediaDecodeError

_PIL_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def _megapixels(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:.0f}" if mp >= 10 else f"{mp:.3g}"


def _bomb_error(pixels: int, max_pixels: int) -> MediaDecodeError:
    return MediaDecodeError(
        f"image is {_megapixels(pixels)} megapixels, over the {_megapixels(max_pixels)} "
        "megapixel limit (refused as a possible decompression bomb)"
    )


def _decode_reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError):
        return "image is truncated"
    # PIL's messages can contain the server-side path; keep only the exception's kind.
    return f"image data is corrupt ({type(exc).__name__})"


def open_image(path: Path, max_pixels: int) -> Image.Image:
    """Decode `path` fully into an RGB image, or raise `MediaDecodeError`.

    PIL reads only the header in `Image.open`, so the declared size is checked before any
    pixel is decoded; `load()` then forces the full decode so truncation is caught here and
    not later in a model.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaDecodeError("image file could not be read") from exc
    if size == 0:
        raise MediaDecodeError("image file is empty")

    with warnings.catch_warnings():
        # Our own limit below is authoritative; PIL's softer warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as exc:
            # PIL refuses sizes over twice its global limit inside open(); report the size.
            match = _PIL_BOMB_SIZE.search(str(exc))
            pixels = int(match.group(1)) if match else max_pixels + 1
            raise _bomb_error(pixels, max_pixels) from exc
        except UnidentifiedImageError as exc:
            raise MediaDecodeError("not a recognised image format") from exc
        except Exception as exc:  # hostile headers break plugins in many ways
            raise MediaDecodeError(_decode_reason(exc)) from exc

        with img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise MediaDecodeError("image has no pixels")
            if width * height > max_pixels:
                raise _bomb_error(width * height, max_pixels)
            try:
                img.load()
                return _to_rgb(img)
            except MemoryError as exc:
                raise MediaDecodeError("image is too large to decode") from exc
            except Exception as exc:
                raise MediaDecodeError(_decode_reason(exc)) from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    # Phone photos store rotation in EXIF; models should see them upright.
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Dropping alpha exposes arbitrary colours under transparent pixels; use white.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")
