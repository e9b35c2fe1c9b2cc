"""What this CPU offers for inference, and which precision a model family runs in.

Machines of one kind differ: one has AMX, another AVX-512-BF16 without AMX, another only AVX2.
`MEDLEY_CLIP_PRECISION` / `MEDLEY_TEXT_PRECISION` = `auto` (the default) picks per machine and
model family, from what `python -m benchmarks enrich` measured (bench/enrich.md, and issue 13's AMX
figures):

- AMX: bf16 for both (ViT-B-32 106.6 images/s in bf16 against 42.9 int8; MiniLM 944 against
  557 sentences/s);
- AVX-512-BF16 without AMX: bf16 for text (226.7 against 147.3 sentences/s), int8 for CLIP
  (24.17 against 15.56 images/s: VNNI int8 GEMMs beat bf16 dot products there);
- otherwise int8 (dynamic int8 Linear layers, `enrich.quantize`).

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


def choose(wanted: Precision, device: str, family: str,
           flags: tuple[str, ...] | None = None) -> Precision:
    """The precision `family` ("clip" or "text") loads in: `auto` resolved for this machine;
    int8 and bf16 kernels here are CPU paths, so a GPU runs fp32 whatever was asked."""
    if device != "cpu":
        return Precision.FP32
    if wanted is not Precision.AUTO:
        return wanted
    have = features() if flags is None else flags
    if "amx_bf16" in have:
        return Precision.BF16
    if "avx512_bf16" in have and family == "text":
        return Precision.BF16
    return Precision.INT8


def agrees(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The smallest cosine between matching rows (1.0 for identical directions)."""
    a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    b = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())
