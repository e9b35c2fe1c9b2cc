"""Which precision a model family loads in, per machine (enrich/cpu.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enrich import cpu
from medley.config import Precision

AMX = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")
ZEN4 = ("avx512_bf16", "avx512_vnni", "avx512f", "avx2")
AVX2 = ("avx2",)


@pytest.mark.parametrize(("wanted", "device", "family", "flags", "runs"), [
    (Precision.AUTO, "cpu", "clip", AMX, Precision.BF16),
    (Precision.AUTO, "cpu", "text", AMX, Precision.BF16),
    (Precision.AUTO, "cpu", "clip", ZEN4, Precision.INT8),  # VNNI int8 beat bf16 there
    (Precision.AUTO, "cpu", "text", ZEN4, Precision.BF16),
    (Precision.AUTO, "cpu", "text", AVX2, Precision.INT8),
    (Precision.AUTO, "cpu", "clip", (), Precision.INT8),
    (Precision.FP32, "cpu", "clip", AMX, Precision.FP32),
    (Precision.INT8, "cpu", "text", AMX, Precision.INT8),
    (Precision.BF16, "cpu", "clip", AVX2, Precision.BF16),  # asked for: slow here, but honoured
    (Precision.AUTO, "cuda", "text", AMX, Precision.FP32),
    (Precision.INT8, "cuda", "clip", AVX2, Precision.FP32),
])
def test_choose(wanted: Precision, device: str, family: str, flags: tuple[str, ...],
                runs: Precision) -> None:
    assert cpu.choose(wanted, device, family, flags) is runs


def test_features_read_the_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu.features(info) == ("amx_tile", "avx512_bf16", "avx512f", "avx2")
    assert cpu.features(tmp_path / "missing") == ()


def test_agrees_is_the_worst_row_cosine() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[2.0, 0.0], [1.0, 1.0]])
    assert cpu.agrees(a, b) == pytest.approx(np.sqrt(0.5))
