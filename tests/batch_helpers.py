"""Generated photographs and a small model file for the batch-job tests (plain helpers)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from googlenet import build_model
from googlenet.artifact.files import save_safetensors
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.preprocessing import Preprocessing

CLASSES = ("ant", "bee", "cat", "dog", "eel")


def write_photos(folder: Path, count: int, start: int = 0) -> list[Path]:
    """`count` JPEGs of varied sizes and content (noise, shapes, gradients): decoding, resizing
    and cropping do real work on each."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(start, start + count):
        size = (48 + 7 * (i % 9), 40 + 5 * (i % 7))
        image = Image.effect_noise(size, 20 + i % 50).convert("RGB")
        draw = ImageDraw.Draw(image)
        draw.ellipse((i % 11, i % 13, size[0] - i % 5, size[1] - i % 3), fill=(37 * i % 256, 90, 200))
        files.append(folder / f"{i:04d}.jpg")
        image.save(files[-1], quality=90)
    return files


def small_model(path: Path, input_size: int = 64) -> Path:
    torch.manual_seed(0)
    model = build_model("bn", num_classes=len(CLASSES), aux_logits=False)
    preprocessing = Preprocessing(input_size=input_size, crop_ratio=0.875, mean=(0.5, 0.45, 0.4),
                                  std=(0.25, 0.25, 0.25))
    artifact = Artifact("bn", CLASSES, preprocessing, provenance=Provenance(source="test", config=None),
                        state_dict=model.state_dict())
    return save_safetensors(artifact, path)
