"""A tiny open_clip architecture with random weights, for tests only."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "medley-tiny-clip"
CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_tiny_clip(folder: Path) -> tuple[Path, Path]:
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{NAME}.json"
    config.write_text(json.dumps(CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(NAME, pretrained=None)
    ckpt = folder / f"{NAME}.pt"
    torch.save(model.state_dict(), ckpt)
    return config, ckpt
