"""`googlenet predict`: top-k classes for a user's image files, with a clear error per bad file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .data import multi_crop
from .data.images import BadImage, decode_image, is_image_file
from .evaluate import crop_scores, load_for_eval

IMAGE_SUFFIXES_EXTRA = (".gif",)  # predict also takes GIFs (their first frame)


@dataclass(frozen=True)
class Prediction:
    file: str
    classes: list[str]  # best first
    probabilities: list[float]
    error: str | None = None


def find_images(inputs: list[str]) -> list[Path]:
    """Files named on the command line as they are; directories searched for images, sorted."""
    found: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and
                            (is_image_file(p.name) or p.suffix.lower() in IMAGE_SUFFIXES_EXTRA))
            if not images:
                raise ValueError(f"no images in directory {path}")
            found += images
        else:
            found.append(path)  # a missing or unreadable file gets its own error entry
    if not found:
        raise ValueError("no images given")
    return found


class ImageFiles(Dataset):
    def __init__(self, files: list[Path], transform: Callable) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, str | None]:
        path = self.files[index]
        try:
            return self.transform(decode_image(path.read_bytes())), index, None
        except BadImage as error:
            return None, index, str(error)
        except OSError as error:
            return None, index, f"cannot read ({error.strerror or error})"


def collate(items: list) -> list:
    return items  # images of one batch may fail; stacked after filtering


def image_batches(files: list[Path], transform: Callable, batch_size: int, workers: int
                  ) -> Iterator[tuple[torch.Tensor | None, list[int], dict[int, str]]]:
    """Decoded, transformed batches of `files`: (the readable images stacked, or None when
    none is; their indices into `files`; index -> error for the unreadable ones)."""
    loader = DataLoader(ImageFiles(files, transform), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate)
    for items in loader:
        good = [(image, index) for image, index, error in items if error is None]
        errors = {index: error for _, index, error in items if error is not None}
        images = torch.stack([image for image, _ in good]) if good else None
        yield images, [index for _, index in good], errors


@torch.no_grad()
def predict_files(inputs: list[str], source: str, *, top_k: int = 5, crops: int = 1,
                  batch_size: int = 32, workers: int = 2, device: torch.device | None = None,
                  variant: str | None = None) -> tuple[list[Prediction], float]:
    """Predictions in input order, and the images per second achieved. `source`: a checkpoint,
    published weights (imagenet, bvlc), a weights file or an exported .onnx."""
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}")
    device = device or torch.device("cpu")
    model = load_for_eval(source, device, variant)
    files = find_images(inputs)
    transform = multi_crop(model.data, (crops,))
    k = min(top_k, len(model.classes))
    results: list[Prediction] = []
    start = time.perf_counter()
    for images, indices, errors in image_batches(files, transform, batch_size, workers):
        results += [Prediction(str(files[index]), [], [], error) for index, error in errors.items()]
        if images is None:
            continue
        probabilities = crop_scores(model.model, images.to(device), [crops], "probs", 256)[0].cpu()
        best = probabilities.topk(k, dim=1)
        for index, values, labels in zip(indices, best.values, best.indices):
            results.append(Prediction(str(files[index]), [model.classes[i] for i in labels],
                                      values.tolist()))
    order = {str(f): i for i, f in enumerate(files)}
    results.sort(key=lambda p: order[p.file])
    return results, len(files) / (time.perf_counter() - start)


def render_predictions(predictions: list[Prediction], fmt: str) -> str:
    if fmt == "json":
        import json

        return json.dumps([{"file": p.file, "error": p.error} if p.error else
                           {"file": p.file, "predictions": [
                               {"class": c, "probability": q}
                               for c, q in zip(p.classes, p.probabilities)]}
                           for p in predictions], indent=2)
    lines = []
    for p in predictions:
        if p.error:
            lines.append(f"{p.file}: error: {p.error}")
        else:
            lines.append(f"{p.file}: " + ", ".join(f"{c} {q:.3f}"
                                                   for c, q in zip(p.classes, p.probabilities)))
    return "\n".join(lines)
