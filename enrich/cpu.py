"""What this CPU offers for inference, and which precision a model family runs in.

Machines of one kind differ: one has AMX, another AVX-512-BF16 without AMX, another only AVX2.
`MEDLEY_CLIP_PRECISION` / `MEDLEY_TEXT_PRECISION` = `auto` (the default) picks per machine:

- bf16 where the CPU computes bf16 natively (AMX, AVX-512-BF16): weights cast to bfloat16;
  measured here (`medley bench enrich`) well ahead of both fp32 and int8;
- int8 otherwise (dynamic int8 Linear layers, `enrich.quantize`), the fastest path on AVX2/VNNI.

Whatever is picked must keep embeddings within cosine MIN_COSINE of fp32 on calibration inputs
(`agrees`); a model that does not falls back to int8, and the choice is in its version string.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from medley.config import Precision

MIN_COSINE = 0.99
KNOWN = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2")


@functools.cache
def features(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...]:
    """The inference-relevant flags of this CPU (empty where /proc/cpuinfo is not readable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return tuple(f for f in KNOWN if f in flags)


def native_bf16(flags: tuple[str, ...]) -> bool:
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose(wanted: Precision, device: str, flags: tuple[str, ...] | None = None) -> Precision:
    """The precision a model family loads in: `auto` resolved for this machine; int8 and bf16
    kernels here are CPU paths, so a GPU runs fp32 whatever was asked."""
    if device != "cpu":
        return Precision.FP32
    if wanted is not Precision.AUTO:
        return wanted
    return Precision.BF16 if native_bf16(features() if flags is None else flags) else \
        Precision.INT8


def agrees(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The smallest cosine between matching rows (1.0 for identical directions)."""
    a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    b = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())
