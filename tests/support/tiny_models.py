"""A tiny open_clip architecture with random weights, for tests and test subprocesses only.

Point `MEDLEY_CLIP_MODEL` at `NAME`, `MEDLEY_CLIP_MODEL_CONFIG` and `MEDLEY_CLIP_CHECKPOINT` at
the two files `write_tiny_clip` returns: open_clip registers an architecture under its file's
stem, so the JSON file is named after `NAME`.
"""

from __future__ import annotations

import json
from pathlib import Path

NAME = "medley-tiny-clip"
EMBED_DIM = 64
IMAGE_SIZE = 32
CONFIG = {
    "embed_dim": EMBED_DIM,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 64, "patch_size": 8},
    # The real CLIP tokenizer (bundled with open_clip, offline) needs the full vocabulary.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_tiny_clip(folder: Path) -> tuple[Path, Path]:
    """Write `NAME`.json and a random-weight checkpoint; returns (config_path, checkpoint_path)."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{NAME}.json"
    config.write_text(json.dumps(CONFIG, indent=1))
    open_clip.add_model_config(config)
    torch.manual_seed(0)  # the same weights every time, so results are comparable across runs
    model = open_clip.create_model(NAME, pretrained=None)
    checkpoint = folder / f"{NAME}.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint
