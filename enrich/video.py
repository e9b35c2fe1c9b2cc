"""ffprobe/ffmpeg helpers: probe a media file, pick keyframes, extract the audio track.

Uploads are hostile until decoded: ffmpeg runs without a shell, with a timeout, reading only
local files (`-protocol_whitelist file` and a `file:` URL, so no path can be read as a
protocol or an option), and every failure becomes a `MediaDecodeError` with a readable reason.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enrich.base import MediaDecodeError

PROBE_QUIET = ("-hide_banner", "-loglevel", "error")
QUIET = ("-nostdin", *PROBE_QUIET)  # ffprobe has no -nostdin; ffmpeg would read the terminal
LOCAL_ONLY = ("-protocol_whitelist", "file")
PROBE_TIMEOUT_S = 60.0
DECODE_TIMEOUT_S = 600.0
# Cross-fades select several neighbouring frames; keep one per scene change.
MIN_SCENE_GAP_S = 0.5
# Scene scores on a small copy are as telling as on the full frame, and far cheaper.
SCENE_SCALE = "scale='min(320,iw)':-2"
FRAMES_PER_RUN = 16  # inputs one ffmpeg process opens at once
KEYFRAME_SCALE = "scale='min(1024,iw)':'min(1024,ih)':force_original_aspect_ratio=decrease"
# Demuxers that open other files named inside the upload (playlists, concat lists).
REFUSED_FORMATS = frozenset({"hls", "concat", "dash", "tty", "lavfi"})
_PTS_TIME = re.compile(r"pts_time:(-?[0-9.]+(?:e-?\d+)?)")


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds; 0.0 when the container does not say
    has_video: bool  # a real video stream (not cover art, not a still image)
    has_audio: bool
    width: int | None = None
    height: int | None = None
    format_name: str = ""


def _url(path: Path) -> str:
    return f"file:{Path(path).resolve()}"


def _limit(max_seconds: float | None) -> float:
    if max_seconds is not None:
        return max_seconds
    from medley.config import get_settings  # lazy: settings read the environment

    return get_settings().max_media_seconds


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.1f} seconds"


def _detail(stderr: str, path: Path) -> str:
    """ffmpeg's last error line, without the server-side path."""
    text = stderr.replace(_url(path), "").replace(str(path), "")
    lines = [ln.strip(" :") for ln in text.splitlines() if ln.strip(" :")]
    return f" ({lines[-1][:200]})" if lines else ""


def _reason(stderr: str, path: Path) -> str:
    low = stderr.lower()
    if "moov atom not found" in low:
        return "video is truncated or incomplete (its index is missing)"
    if "invalid data found" in low or "could not find codec" in low:
        return "not a recognised audio or video format"
    return "could not be decoded" + _detail(stderr, path)


def _run(args: list[str], path: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaDecodeError(f"decoding took longer than {timeout_s:.0f} seconds") from exc


def _check_file(path: Path) -> None:
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise MediaDecodeError("media file could not be read") from exc
    if size == 0:
        raise MediaDecodeError("media file is empty")


def probe(path: Path, *, max_seconds: float | None = None) -> MediaInfo:
    """Describe `path`; refuse undecodable files and media longer than `max_seconds`
    (default: the `max_media_seconds` setting)."""
    _check_file(path)
    args = ["ffprobe", *PROBE_QUIET, *LOCAL_ONLY, "-print_format", "json"]
    args += ["-show_format", "-show_streams", _url(path)]
    proc = _run(args, path, PROBE_TIMEOUT_S)
    if proc.returncode != 0:
        raise MediaDecodeError(_reason(proc.stderr, path))
    try:
        data = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise MediaDecodeError("could not be decoded (unreadable probe output)") from exc
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    format_name = str(fmt.get("format_name", ""))
    if set(format_name.split(",")) & REFUSED_FORMATS:
        raise MediaDecodeError(f"unsupported container ({format_name})")
    # A PNG or JPEG probes as a one-frame "video"; it is not a video for us.
    still = format_name == "image2" or format_name.endswith("_pipe")
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if still or not (videos or has_audio):
        kind = f" (it is a {streams[0].get('codec_name', 'still')} image)" if still else ""
        raise MediaDecodeError(f"has no audio or video stream{kind}")
    duration = _duration(fmt, streams)
    limit = _limit(max_seconds)
    if duration > limit:
        raise MediaDecodeError(f"media is {_human(duration)} long, over the {_human(limit)} limit")
    first = videos[0] if videos else {}
    return MediaInfo(
        duration=duration,
        has_video=bool(videos),
        has_audio=has_audio,
        width=first.get("width"),
        height=first.get("height"),
        format_name=format_name,
    )


def _duration(fmt: dict[str, object], streams: list[dict[str, object]]) -> float:
    values = [fmt.get("duration"), *(s.get("duration") for s in streams)]
    seconds = []
    for value in values:
        try:
            seconds.append(float(str(value)))
        except ValueError:
            continue  # "N/A" or missing
    finite = [s for s in seconds if np.isfinite(s) and s >= 0]
    return max(finite, default=0.0)


def _scene_times(path: Path, threshold: float, limit: float, timeout_s: float) -> list[float]:
    """Timestamps of the first decodable frame and of every scene change after it."""
    select = f"select='eq(n,0)+gt(scene,{threshold:g})'"
    args = ["ffmpeg", *QUIET, *LOCAL_ONLY, "-i", _url(path), "-map", "0:v:0", "-an", "-sn"]
    args += ["-dn", "-t", f"{limit:.3f}", "-vf", f"{SCENE_SCALE},{select},metadata=print:file=-"]
    proc = _run([*args, "-f", "null", "-"], path, timeout_s)
    times = [float(m) for m in _PTS_TIME.findall(proc.stdout)]
    if not times:
        raise MediaDecodeError("no video frame could be decoded" + _detail(proc.stderr, path))
    kept: list[float] = []
    for t in sorted(times):
        if not kept or t - kept[-1] >= MIN_SCENE_GAP_S:
            kept.append(max(t, 0.0))
    return kept


def _evenly(items: list[float], count: int) -> list[float]:
    if len(items) <= count:
        return items
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, count)).astype(int))
    return [items[i] for i in picks]


def grab_frames(path: Path, picks: list[tuple[float, Path]], timeout_s: float) -> None:
    """One ffmpeg run, one seeking input per frame: process start-up costs more than a seek."""
    args = ["ffmpeg", *QUIET, "-y"]
    for t, _ in picks:
        # Seek half a millisecond early so rounding never lands on the frame before a cut.
        args += [*LOCAL_ONLY, "-ss", f"{max(t - 0.0005, 0.0):.4f}", "-i", _url(path)]
    for i, (_, target) in enumerate(picks):
        args += ["-map", f"{i}:v:0", "-frames:v", "1", "-vf", KEYFRAME_SCALE, "-q:v", "3"]
        args += ["-f", "image2", "-update", "1", _url(target)]
    _run(args, path, timeout_s)


def extract_keyframes(
    path: Path,
    out_dir: Path,
    cap: int,
    scene_threshold: float,
    *,
    max_seconds: float | None = None,
    timeout_s: float = DECODE_TIMEOUT_S,
) -> list[Path]:
    """Write up to `cap` JPEG keyframes of `path` into `out_dir` and return them in time order:
    the first frame plus scene changes (an evenly spaced subset when there are more), or
    evenly spaced frames when the video has no scene change."""
    if cap < 1:
        raise ValueError("cap must be at least 1")
    info = probe(path, max_seconds=max_seconds)
    if not info.has_video:
        raise MediaDecodeError("has no video stream")
    limit = _limit(max_seconds)
    times = _scene_times(path, scene_threshold, limit, timeout_s)
    if len(times) == 1 and info.duration > 0:
        # One scene: the first frame is often a black fade-in; sample the middle of slices.
        times = [(i + 0.5) * info.duration / cap for i in range(cap)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [out_dir / f"keyframe_{i:02d}.jpg" for i in range(cap)]
    for target in targets:
        target.unlink(missing_ok=True)  # a retried task must not return a stale frame
    picked = list(zip(_evenly(times, cap), targets, strict=False))
    for start in range(0, len(picked), FRAMES_PER_RUN):
        grab_frames(path, picked[start : start + FRAMES_PER_RUN], timeout_s)
    frames = [t for _, t in picked if t.exists() and t.stat().st_size > 0]
    if not frames:
        raise MediaDecodeError("no video frame could be decoded")
    return frames


def extract_audio(
    path: Path,
    out_wav: Path,
    *,
    max_seconds: float | None = None,
    timeout_s: float = DECODE_TIMEOUT_S,
) -> Path | None:
    """Write the first audio track of `path` as 16 kHz mono 16-bit WAV; None when the file
    has no audio track (a silent video)."""
    info = probe(path, max_seconds=max_seconds)
    if not info.has_audio:
        return None
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_wav.with_name(f".{out_wav.name}.partial")
    args = ["ffmpeg", *QUIET, "-y", *LOCAL_ONLY, "-i", _url(path), "-map", "0:a:0", "-vn"]
    args += ["-sn", "-dn", "-t", f"{_limit(max_seconds):.3f}", "-ac", "1", "-ar", "16000"]
    args += ["-c:a", "pcm_s16le", "-f", "wav", _url(tmp)]
    try:
        proc = _run(args, path, timeout_s)
        # 44 bytes is a bare WAV header: nothing was decoded.
        if not tmp.exists() or tmp.stat().st_size <= 44:
            raise MediaDecodeError("audio track could not be decoded" + _detail(proc.stderr, path))
        tmp.replace(out_wav)
    finally:
        tmp.unlink(missing_ok=True)
    return out_wav
