"""Model throughput, each Medley path beside its plain peer in the same run on the same inputs.

Repeats are interleaved (A, B, A, B...) and the median is reported, because the CPUs here are
shared and their speed drifts within a run. Every figure in enrich.md is read from enrich.json.
"""

from __future__ import annotations

import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import table, write_report
from benchmarks.speech import bench_speech
from benchmarks.timing import interleaved
from enrich import cpu
from medley.config import Precision

VIT_B32_GFLOP = 8.8  # image tower, 224 px, per image
TARGET_SPEEDUP, TARGET_COSINE = 1.5, 0.99

# "|"-separated choices for each slot of a catalog description.
_VOCAB = {
    "adj": "vintage|rustic|handmade|modern|compact|lightweight|waterproof|ergonomic|elegant|"
    "sturdy|minimalist|colourful|foldable|insulated|wireless|washable",
    "material": "oak|walnut|leather|linen|ceramic|steel|bamboo|cotton|wool|glass|brass|velvet",
    "item": "lamp|chair|backpack|mug|jacket|desk|kettle|rug|headphones|vase|blanket|bicycle|"
    "tent|notebook|sofa|teapot",
    "feature": "with adjustable straps|with a matte finish|with two hidden pockets|with a five "
    "year warranty|in a soft grey colour|with a quick release clip|that folds flat for "
    "storage|with hand-stitched seams",
    "use": "for everyday use|for small apartments|for outdoor adventures|as a gift|for the "
    "home office|for cold winter evenings|for long train journeys",
    # skimage.data photos: people, animals, objects, space, microscopy, text
    "photos": "astronaut|coffee|chelsea|rocket|cat|immunohistochemistry|retina|"
    "hubble_deep_field|camera|horse|page|coins",
}

FAST_PATHS = (Precision.INT8, Precision.BF16)  # each measured beside plain fp32


def catalog_descriptions(n: int, seed: int = 0) -> list[str]:
    """Deterministic product blurbs of ~14 words, varied in wording and length."""
    rng = random.Random(seed)

    def pick(slot: str) -> str:
        return rng.choice(_VOCAB[slot].split("|"))

    out = []
    for _ in range(n):
        text = f"{pick('adj').capitalize()} {pick('adj')} {pick('material')} {pick('item')} "
        text += f"{pick('feature')}, {pick('use')}"
        if rng.random() < 0.5:
            text += f" and {pick('feature')}"
        out.append(text + ".")
    return out


def sample_photos(n: int) -> list[Any]:
    """n real photos (scikit-image, scikit-learn samples), with mirrored copies to reach n."""
    import skimage.data
    from PIL import Image, ImageOps
    from sklearn.datasets import load_sample_images

    names = _VOCAB["photos"].split("|")
    arrays = [getattr(skimage.data, n)() for n in names] + list(load_sample_images().images)
    photos = [Image.fromarray(a).convert("RGB") for a in arrays]
    photos += [ImageOps.mirror(p) for p in photos]
    return [photos[i % len(photos)] for i in range(n)]


def _cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = (a * b).sum(axis=1)
    return {"cosine_min": round(float(c.min()), 5), "cosine_mean": round(float(c.mean()), 5)}


def sgemm_gflops() -> float:
    """Best fp32 matmul throughput numpy reaches here: the fp32 compute ceiling."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return round(2 * 2048**3 / best / 1e9, 1)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_clip(work: Path, repeats: int, gflops: float) -> dict[str, Any]:
    import open_clip
    import torch

    from enrich.clip import ClipModel
    from medley.config import ModelSettings, Precision, Settings

    torch.manual_seed(0)
    plain, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    plain.eval()
    checkpoint = work / "vit-b-32-random.pt"
    torch.save(plain.state_dict(), checkpoint)
    def settings(p: Precision) -> ModelSettings:
        return Settings(data_dir=work, clip_pretrained=None, clip_checkpoint=checkpoint,
                        clip_precision=p, clip_batch_size=32).models

    paths = {p: ClipModel(settings(p)).image_embedder() for p in FAST_PATHS}
    for embedder in paths.values():
        embedder.load()
    medley = paths[cpu.choose(Precision.AUTO, "cpu", "clip")]  # this machine's default
    photos = sample_photos(32)

    def baseline() -> np.ndarray:
        with torch.inference_mode():
            return plain.encode_image(torch.stack([preprocess(p) for p in photos])).numpy()

    runs: dict[str, Callable[[], Any]] = {p.value: partial(e.embed, photos)
                                          for p, e in paths.items()}
    secs = interleaved({**runs, "open_clip_fp32": baseline}, repeats)
    ref = baseline()
    ref_n = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    chosen = medley.info.version.rsplit("/", 1)[-1]
    return {
        "model": "ViT-B-32 image tower, RANDOM weights (no pretrained CLIP weights are reachable "
        "here; same compute as the real model)",
        "batch": 32,
        "medley_path": medley.info.version,
        "paths": {p.value: {"images_per_s": round(32 / secs[p.value], 2),
                            "speedup": round(secs["open_clip_fp32"] / secs[p.value], 2),
                            **_cosines(e.embed(photos), ref)} for p, e in paths.items()},
        "medley_images_per_s": round(32 / secs[chosen], 2),
        "open_clip_fp32_images_per_s": round(32 / secs["open_clip_fp32"], 2),
        "speedup": round(secs["open_clip_fp32"] / secs[chosen], 2),
        **_cosines(medley.embed(photos), ref),
        # With random weights all photos land close together; this says how close.
        "fp32_mean_cosine_between_photos": round(float((ref_n @ ref_n.T).mean()), 3),
        "gflop_per_image": VIT_B32_GFLOP,
        "fp32_ceiling_images_per_s": round(gflops / VIT_B32_GFLOP, 1),
    }


def bench_text(work: Path, repeats: int, gflops: float) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    from enrich.text import SentenceEmbedder, model_folder
    from medley.config import Precision, Settings

    settings = Settings(data_dir=work, text_precision=Precision.INT8).models
    paths = {p: SentenceEmbedder(settings.model_copy(update={"text_precision": p}))
             for p in FAST_PATHS}
    start = time.perf_counter()
    paths[Precision.INT8].load()  # builds the int8 model into work/models/onnx on first use
    load_s = time.perf_counter() - start
    paths[Precision.BF16].load()
    medley = paths[cpu.choose(Precision.AUTO, "cpu", "text")]
    plain = SentenceTransformer(str(model_folder(settings)), device="cpu", local_files_only=True)
    texts = catalog_descriptions(1000)

    def baseline() -> np.ndarray:
        return plain.encode(texts, batch_size=settings.text_batch_size)

    runs: dict[str, Callable[[], Any]] = {p.value: partial(e.embed, texts)
                                          for p, e in paths.items()}
    secs = interleaved({**runs, "st_fp32": baseline}, repeats)
    ref = baseline()
    secs["medley"] = secs[medley.info.version.rsplit("/", 1)[-1]]
    tokens = float(np.mean([len(t) for t in plain.tokenizer(texts)["input_ids"]]))
    linear_params = sum(
        int(m.weight.numel()) for m in plain.modules() if isinstance(m, torch.nn.Linear)
    )
    gflop = 2 * linear_params * tokens / 1e9
    return {
        "model": f"all-MiniLM-L6-v2 ({medley.info.version})",
        "sentences": len(texts),
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "mean_tokens": round(tokens, 1),
        "batch": settings.text_batch_size,
        "medley_sentences_per_s": round(len(texts) / secs["medley"], 1),
        "st_fp32_sentences_per_s": round(len(texts) / secs["st_fp32"], 1),
        "speedup": round(secs["st_fp32"] / secs["medley"], 2),
        "paths": {p.value: {"sentences_per_s": round(len(texts) / secs[p.value], 1),
                            "speedup": round(secs["st_fp32"] / secs[p.value], 2),
                            **_cosines(e.embed(texts), ref)} for p, e in paths.items()},
        **_cosines(medley.embed(texts), ref),
        "medley_first_load_s": round(load_s, 1),
        "gflop_per_sentence_linear": round(gflop, 3),
        "fp32_ceiling_sentences_per_s": round(gflops / gflop, 1),
    }


def _limits(clip: dict[str, Any], text: dict[str, Any]) -> list[str]:
    notes = []
    for name, r, unit in (("CLIP", clip, "images"), ("Text", text, "sentences")):
        measured = ", ".join(f"{k} {v['speedup']}x" for k, v in r["paths"].items())
        if r["speedup"] < TARGET_SPEEDUP or r["cosine_min"] < TARGET_COSINE:
            notes.append(
                f"{name} misses a target (speedup {r['speedup']} vs {TARGET_SPEEDUP}, cosine min "
                f"{r['cosine_min']} vs {TARGET_COSINE}). This CPU offers "
                f"{', '.join(cpu.features()) or 'no AVX2'}; the paths measured are "
                f"{measured}; what the "
                "fast path does not cover (attention, GELU, norms, tokenising or resizing) "
                f"stays in its own precision; the fp32 ceiling is "
                f"{r.get('fp32_ceiling_images_per_s', r.get('fp32_ceiling_sentences_per_s'))} "
                f"{unit}/s; {os.cpu_count()} cores, shared with whatever else runs."
            )
    return notes


def run_enrich_bench(
    out_dir: Path, *, quick: bool = False, stages: dict[str, Any] | None = None
) -> dict[str, Any]:
    import torch

    repeats = 3 if quick else 5
    gflops = sgemm_gflops()
    with tempfile.TemporaryDirectory(prefix="medley-bench-enrich-") as tmp:
        work = Path(tmp)
        clip = bench_clip(work, repeats, gflops)
        text = bench_text(work, repeats - 1, gflops)
        speech = bench_speech(work, 1 if quick else 2)
    data: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_features": list(cpu.features()),
            "default_paths": {f: cpu.choose(Precision.AUTO, "cpu", f).value
                              for f in ("clip", "text")},
            "torch_threads": torch.get_num_threads(),
            "numpy_sgemm_gflops": gflops,
        },
        "quick": quick,
        "repeats": repeats,
        "clip": clip,
        "text": text,
        "speech": speech,
    }
    if stages is not None:
        data["upload_to_ready"] = stages
    data["limits"] = _limits(clip, text)
    data["summary"] = {
        "clip_speedup": clip["speedup"],
        "clip_cosine_min": clip["cosine_min"],
        "text_speedup": text["speedup"],
        "text_cosine_min": text["cosine_min"],
        **{k: v for k, v in speech.items() if k.endswith("_audio_s_per_s")},
    }
    write_report(out_dir, "enrich", data, render(data))
    return data


def _paths(unit: str, r: dict[str, Any], key: str, peer_name: str, peer: float) -> str:
    """Every Medley path beside the plain fp32 peer, measured in the same interleaved runs."""
    rows = [[f"Medley {name}", v[key], v["speedup"], v["cosine_min"]]
            for name, v in r["paths"].items()]
    return table(["path", unit, "x fp32", "cosine min to fp32"],
                 [*rows, [peer_name, peer, 1.0, 1.0]])


def render(d: dict[str, Any]) -> str:
    c, t, s = d["clip"], d["text"], d["speech"]
    parts = [
        "# Enrichment throughput",
        f"Medians of {d['repeats']} interleaved runs; numpy SGEMM here: "
        f"{d['machine']['numpy_sgemm_gflops']} GFLOP/s, torch threads "
        f"{d['machine']['torch_threads']}.",
        f"CPU features: {', '.join(d['machine'].get('cpu_features', [])) or 'none listed'}; "
        f"the default (`auto`) runs {d['machine'].get('default_paths', {})} here.",
        f"## CLIP images\n{c['model']}. Batch {c['batch']} photos; Medley: `{c['medley_path']}`.",
        _paths("images/s", c, "images_per_s", "open_clip fp32",
               c["open_clip_fp32_images_per_s"]),
        f"Speedup **{c['speedup']}x**; cosine to fp32 min {c['cosine_min']}, mean "
        f"{c['cosine_mean']} (fp32 photos' mutual cosine: {c['fp32_mean_cosine_between_photos']})."
        f" fp32 ceiling {c['fp32_ceiling_images_per_s']} images/s ({c['gflop_per_image']} "
        "GFLOP/image at the SGEMM rate).",
        f"## Text\n{t['model']}; {t['sentences']} catalog descriptions, {t['mean_words']} words "
        f"/ {t['mean_tokens']} tokens each, batch {t['batch']}.",
        _paths("sentences/s", t, "sentences_per_s", "sentence-transformers fp32",
               t["st_fp32_sentences_per_s"]),
        f"Speedup **{t['speedup']}x**; cosine min {t['cosine_min']}, mean {t['cosine_mean']}. "
        f"Linear layers: {t['gflop_per_sentence_linear']} GFLOP/sentence, fp32 ceiling "
        f"{t['fp32_ceiling_sentences_per_s']}/s. Medley's first load (int8 build): "
        f"{t['medley_first_load_s']} s, cached after.",
        f"## Speech\n{s['model']}; {s['clip']}. Medley's default: `{s['medley_default_backend']}`.",
        table(
            ["backend", "audio s per wall s"],
            [
                [k.removesuffix("_audio_s_per_s"), v]
                for k, v in s.items()
                if k.endswith("_audio_s_per_s")
            ],
        ),
    ]
    if "upload_to_ready" in d:
        rows = [[k, v] for k, v in d["upload_to_ready"].items() if not isinstance(v, dict)]
        parts += ["## Upload to ready", table(["measure", "value"], rows)]
        stages = d["upload_to_ready"].get("stages", {})
        keys = sorted({k for v in stages.values() for k in v})
        parts += [
            "Per modality (seconds; they run in parallel):",
            table(["modality", *keys],
                  [[m, *[round(v[k], 3) if k in v else "" for k in keys]]
                   for m, v in sorted(stages.items())]),
        ]
    if d["limits"]:
        parts += ["## Targets missed", *[f"- {n}" for n in d["limits"]]]
    return "\n\n".join(parts)
