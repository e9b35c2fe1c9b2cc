"""Turn a CTranslate2 Whisper folder into an openai-whisper checkpoint (`.pt`).

The only Whisper weights reachable here are CTranslate2 folders from the package registry, while
openai-whisper loads `{"dims": ..., "model_state_dict": ...}` files. The two hold the same tensors
under other names, with attention projections fused, so converting is a rename plus a few splits.

`model.bin` layout (little-endian): u32 version, spec name, u32 revision, u32 variable count, then
per variable: name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, raw bytes; then u32 alias
count and (alias, target) name pairs. Strings are a u16 length followed by NUL-terminated UTF-8.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

SUPPORTED_VERSIONS = (5, 6)  # the layouts with a u8 dtype id that CTranslate2 writes for Whisper
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16 bits
}
_BF16 = 5
_HEAD_DIM = 64  # every released Whisper size uses 64-wide attention heads


class _Reader:
    """Bounds-checked cursor, so a truncated file fails with a ValueError, not garbage."""

    def __init__(self, buf: np.ndarray, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> np.ndarray:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated CTranslate2 model at byte {self.pos}")
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int:
        return int(struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)).tobytes())[0])

    def string(self) -> str:
        raw = self.take(self.unpack("H")).tobytes()
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.path}: not a CTranslate2 model (bad string)") from exc


def read_ct2(path: Path | str) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 `model.bin` (aliases included), as arrays.

    Arrays are read-only views of the file, except bfloat16 ones, which are widened to float32.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file() or path.stat().st_size == 0:
        raise ValueError(f"{path}: missing or empty CTranslate2 model file")
    # memmap keeps a 3 GB large-v3 file out of RAM until the tensors are actually copied.
    r = _Reader(np.memmap(path, dtype=np.uint8, mode="r"), path)
    version = r.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: not a CTranslate2 model of a known version (got {version})")
    spec = r.string()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: not a CTranslate2 Whisper model (spec {spec!r})")
    r.unpack("I")  # spec revision: the tensor names below have been stable across revisions
    out: dict[str, np.ndarray] = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        rank = r.unpack("B")
        if rank > 8:
            raise ValueError(f"{path}: implausible rank {rank} for {name}")
        shape = tuple(r.unpack("I") for _ in range(rank))
        type_id = r.unpack("B")
        if type_id not in _DTYPES:
            raise ValueError(f"{path}: unknown dtype id {type_id} for {name}")
        dtype = _DTYPES[type_id]
        nbytes = r.unpack("I")
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{path}: {name} holds {nbytes} bytes for shape {shape}")
        value = r.take(nbytes).view(dtype).reshape(shape)
        if type_id == _BF16:  # numpy has no bfloat16: its bits are the top half of a float32
            value = (value.astype(np.uint32) << 16).view(np.float32)
        out[name] = value
    for _ in range(r.unpack("I")):
        alias, target = r.string(), r.string()
        if target not in out:
            raise ValueError(f"{path}: alias {alias} points at missing {target}")
        out[alias] = out[target]
    if r.pos != len(r.buf):
        raise ValueError(f"{path}: {len(r.buf) - r.pos} unexpected trailing bytes")
    return out


def _float(t: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A weight as floats, undoing int8/int16 quantisation (`q = round(w * scale)`, per row)."""
    if name not in t:
        raise ValueError(f"not a complete Whisper model: missing {name}")
    value = t[name]
    if value.dtype.kind == "f":
        return np.array(value)  # copy out of the memmap
    scale = t.get(name + "_scale")
    if scale is None:
        raise ValueError(f"integer weight {name} has no {name}_scale")
    scale = scale.astype(np.float32).reshape(scale.shape + (1,) * (value.ndim - scale.ndim))
    return value.astype(np.float32) / scale


def _scalar(t: dict[str, np.ndarray], name: str, default: int) -> int:
    return int(t[name].reshape(-1)[0]) if name in t else default


def _count_layers(t: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in t:
        n += 1
    return n


def _ct2_to_openai(t: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    sd: dict[str, np.ndarray] = {}

    def linear(src: str, dst: str) -> None:
        sd[dst + ".weight"] = _float(t, src + "/weight")
        sd[dst + ".bias"] = _float(t, src + "/bias")

    def norm(src: str, dst: str) -> None:
        sd[dst + ".weight"] = _float(t, src + "/gamma")
        sd[dst + ".bias"] = _float(t, src + "/beta")

    def fused(src: str, dst: str, parts: tuple[str, ...]) -> None:
        # Q/K/V (or K/V) stacked along dim 0. openai-whisper's key projection has no bias, so
        # the key slice of the fused bias (all zeros) is dropped.
        weights = np.split(_float(t, src + "/weight"), len(parts))
        biases = np.split(_float(t, src + "/bias"), len(parts))
        for part, w, b in zip(parts, weights, biases, strict=True):
            sd[f"{dst}.{part}.weight"] = w
            if part != "key":
                sd[f"{dst}.{part}.bias"] = b

    def block(src: str, dst: str, cross: bool) -> None:
        fused(src + "/self_attention/linear_0", dst + ".attn", ("query", "key", "value"))
        linear(src + "/self_attention/linear_1", dst + ".attn.out")
        norm(src + "/self_attention/layer_norm", dst + ".attn_ln")
        if cross:
            linear(src + "/attention/linear_0", dst + ".cross_attn.query")
            fused(src + "/attention/linear_1", dst + ".cross_attn", ("key", "value"))
            linear(src + "/attention/linear_2", dst + ".cross_attn.out")
            norm(src + "/attention/layer_norm", dst + ".cross_attn_ln")
        linear(src + "/ffn/linear_0", dst + ".mlp.0")
        linear(src + "/ffn/linear_1", dst + ".mlp.2")
        norm(src + "/ffn/layer_norm", dst + ".mlp_ln")

    n_audio_layer = _count_layers(t, "encoder")
    n_text_layer = _count_layers(t, "decoder")
    if not n_audio_layer or not n_text_layer:
        raise ValueError("not a complete Whisper model: no encoder or decoder layers")
    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    sd["encoder.positional_embedding"] = _float(t, "encoder/position_encodings/encodings")
    for i in range(n_audio_layer):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    norm("encoder/layer_norm", "encoder.ln_post")
    sd["decoder.token_embedding.weight"] = _float(t, "decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = _float(t, "decoder/position_encodings/encodings")
    for i in range(n_text_layer):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    norm("decoder/layer_norm", "decoder.ln")
    # decoder/projection is an alias of the embeddings; openai-whisper ties them the same way.

    n_mels_state = sd["encoder.conv1.weight"].shape  # (n_audio_state, n_mels, kernel)
    n_vocab, n_text_state = sd["decoder.token_embedding.weight"].shape
    dims = {
        "n_mels": int(n_mels_state[1]),
        "n_audio_ctx": int(sd["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(n_mels_state[0]),
        "n_audio_head": _scalar(t, "encoder/num_heads", int(n_mels_state[0]) // _HEAD_DIM),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(sd["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": _scalar(t, "decoder/num_heads", int(n_text_state) // _HEAD_DIM),
        "n_text_layer": n_text_layer,
    }
    return dims, sd


def _check_against_whisper(dims: dict[str, int], sd: dict[str, np.ndarray]) -> None:
    """Compare names and shapes with the real modules, built on the meta device (no memory).

    The encoder and decoder are built separately because `Whisper.__init__` makes a sparse
    buffer that meta tensors do not support; that buffer is not persistent anyway.
    """
    import torch
    from whisper.model import AudioEncoder, TextDecoder

    d = dims
    with torch.device("meta"):
        enc = AudioEncoder(
            d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"]
        )
        dec = TextDecoder(
            d["n_vocab"], d["n_text_ctx"], d["n_text_state"], d["n_text_head"], d["n_text_layer"]
        )
    expected = {f"encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
    expected |= {f"decoder.{k}": tuple(v.shape) for k, v in dec.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:5]
        raise ValueError(f"converted weights do not fit openai-whisper: {diff}")


def convert(ct2_dir: Path | str, out_path: Path | str) -> Path:
    """Write the openai-whisper checkpoint for `ct2_dir` to `out_path` (atomically)."""
    import torch

    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    dims, sd = _ct2_to_openai(read_ct2(ct2_dir / "model.bin"))
    _check_against_whisper(dims, sd)
    checkpoint = {
        "dims": dims,
        "model_state_dict": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temp name in the same folder: concurrent converters never see half a file, and
    # the last rename wins with an equally valid checkpoint.
    fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(checkpoint, fh)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; other service users may need to read it
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def ensure_checkpoint(ct2_dir: Path | str, out_path: Path | str) -> Path:
    """Convert once; reuse `out_path` while it is newer than the source `model.bin`."""
    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    source = ct2_dir / "model.bin"
    if out_path.is_file() and (
        not source.exists() or out_path.stat().st_mtime >= source.stat().st_mtime
    ):
        return out_path
    return convert(ct2_dir, out_path)
