"""Int8 inference on CPU: the two speedups Medley uses, each picked by measurement.

- CLIP (`int8_torch`): PyTorch dynamic int8 of every `nn.Linear`. open_clip's attention blocks use
  `nn.MultiheadAttention`, whose packed input projection is not a Linear and so would stay fp32;
  we swap it for one Linear (q, k and v fused: one int8 GEMM) plus `scaled_dot_product_attention`,
  which computes the same function.
- Sentence transformers (`build_int8_onnx`): export the encoder to ONNX and run it in ONNX Runtime
  with dynamic int8 MatMuls (per-channel weights); its fused kernels also cut the non-GEMM time.
  BERT-like encoders put huge activations on the first token (an "attention sink"), and one
  per-tensor activation scale then quantises every other token coarsely. We measure, on a few
  calibration sentences, how far each Linear alone moves the embedding when quantised
  (`linear_sensitivity`) and keep the few worst in fp32.

Torch, onnx and onnxruntime are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

# A Linear whose quantisation alone moves some calibration embedding by more than this
# (1 - cosine) stays fp32: on all-MiniLM-L6-v2 that is 5 of 37 (mostly FFN down-projections).
SENSITIVE_DROP = 8e-4


@contextmanager
def _quiet() -> Iterator[None]:
    # torch.ao quantisation and the TorchScript ONNX exporter warn that they are deprecated on
    # every call; the versions are pinned and the results are checked by tests and the bench.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _sdpa_attention_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SdpaSelfAttention(nn.Module):
        """Drop-in for a self-attention `nn.MultiheadAttention` with a plain Linear for q/k/v."""

        def __init__(self, mha: nn.MultiheadAttention) -> None:
            super().__init__()
            dim = mha.embed_dim
            self.heads = mha.num_heads
            self.batch_first = mha.batch_first
            self.qkv = nn.Linear(dim, 3 * dim, bias=mha.in_proj_bias is not None)
            self.out = nn.Linear(dim, dim, bias=mha.out_proj.bias is not None)
            with torch.no_grad():
                self.qkv.weight.copy_(mha.in_proj_weight)
                self.out.weight.copy_(mha.out_proj.weight)
                if mha.in_proj_bias is not None:
                    self.qkv.bias.copy_(mha.in_proj_bias)
                if mha.out_proj.bias is not None:
                    self.out.bias.copy_(mha.out_proj.bias)

        def forward(
            self,
            query: torch.Tensor,
            key: torch.Tensor | None = None,
            value: torch.Tensor | None = None,
            need_weights: bool = False,
            attn_mask: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, None]:
            if (key is not None and key is not query) or (value is not None and value is not query):
                raise ValueError("SdpaSelfAttention only does self-attention")
            x = query if self.batch_first else query.transpose(0, 1)
            b, n, d = x.shape
            qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
            y = self.out(y.transpose(1, 2).reshape(b, n, d))
            return (y if self.batch_first else y.transpose(0, 1)), None

    return SdpaSelfAttention


def int8_torch(model: nn.Module) -> nn.Module:
    """Dynamic int8 of all Linear layers (in place), after fusing self-attention projections."""
    import torch
    from torch import nn

    sdpa = _sdpa_attention_class()
    for block in list(model.modules()):
        attn = getattr(block, "attn", None)
        # open_clip's ResidualAttentionBlock; one with ln_1_kv may be fed other keys/values.
        if (
            isinstance(attn, nn.MultiheadAttention)
            and not hasattr(block, "ln_1_kv")
            and attn._qkv_same_embed_dim
            and attn.bias_k is None
            and not attn.add_zero_attn
        ):
            block.attn = sdpa(attn)
    with _quiet():
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            # open_clip reads the weight dtype of an MLP layer to cast token embeddings.
            setattr(module, "int8_original_dtype", torch.float32)  # noqa: B010
    return model


def _fake_int8_linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """What ONNX Runtime's dynamic int8 MatMul computes: uint8 activations with one scale per
    call (range widened to include 0), int8 weights with one symmetric scale per output."""
    import torch.nn.functional as F

    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-12)
    zero = (-lo / scale).round()
    xq = ((x / scale).round() + zero).clamp(0, 255).sub(zero).mul(scale)
    w = linear.weight
    wscale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
    return F.linear(xq, (w / wscale).round().clamp(-127, 127) * wscale, linear.bias)


def linear_sensitivity(model: nn.Module, embed: Callable[[], torch.Tensor]) -> dict[str, float]:
    """Per Linear: the worst 1 - cosine of `embed()` when only that layer is int8."""
    import torch.nn.functional as F
    from torch import nn

    reference = embed()
    drops: dict[str, float] = {}
    for name, layer in model.named_modules():
        if type(layer) is not nn.Linear:
            continue
        hook = layer.register_forward_hook(lambda m, args, _out: _fake_int8_linear(m, args[0]))
        try:
            moved = embed()
        finally:
            hook.remove()
        drops[name] = float((1 - F.cosine_similarity(reference, moved, dim=-1)).max())
    return drops


def _last_hidden(model: nn.Module, input_names: Sequence[str]) -> nn.Module:
    """A Hugging Face encoder as ONNX export wants it: positional tensors in, one tensor out."""
    from torch import nn

    class LastHidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(input_names, tensors, strict=True))).last_hidden_state

    return LastHidden()


def build_int8_onnx(
    encoder: nn.Module,
    example: dict[str, torch.Tensor],
    folder: Path,
    keep_fp32: set[str],
) -> Path:
    """Export `encoder` (inputs: the keys of `example`; output: last_hidden_state) to ONNX and
    quantise its weight MatMuls to int8, except those of the Linear layers named in `keep_fp32`
    (names relative to `encoder`). Returns the int8 model's path inside `folder`."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = list(example)
    fp32_path, int8_path = folder / "encoder-fp32.onnx", folder / "encoder-int8.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]}
    with _quiet(), torch.inference_mode():
        torch.onnx.export(
            _last_hidden(encoder, names),
            tuple(example[n] for n in names),
            str(fp32_path),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    # Node names carry the module path: "/model/encoder/layer.0/output/dense/MatMul".
    excluded = []
    for node in onnx.load(str(fp32_path), load_external_data=False).graph.node:
        scope = node.name.removeprefix("/model/").rpartition("/")[0].replace("/", ".")
        if node.op_type == "MatMul" and scope in keep_fp32:
            excluded.append(node.name)
    with _quiet():
        quantize_dynamic(
            fp32_path,
            int8_path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=excluded,
            extra_options={"MatMulConstBOnly": True},
        )
    return int8_path


def ort_session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0  # 0: one per physical core
    options.log_severity_level = 3  # the optimiser's notes are not errors
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
