"""`Predictor`: an artifact and a backend; images in, top classes and probabilities out.

    predictor = Predictor.load("imagenet")                  # or a run, a weights file, an .onnx
    predictor.predict(["cat.jpg", "photos/"], top_k=5)     # -> [Prediction(...)], bad files named
    predictor.predict([Image.open("cat.jpg"), tensor])      # decoded images: PIL or 3 x H x W
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from googlenet.artifact.build import artifact_of
from googlenet.artifact.record import Artifact
from googlenet.data.config import DEFAULT_MAX_IMAGE_MB, MB
from googlenet.data.crops import MultiCrop, multi_crop
from googlenet.data.images import read_file, read_transformed
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.trees import walk_directory
from googlenet.errors import DataError
from googlenet.inference.backends import Backend, TorchBackend, open_backend
from googlenet.inference.options import AVERAGES
from googlenet.model.network import GoogLeNet
from googlenet.runtime.device import resolve_device
from googlenet.weights.sources import Preprocess, load_artifact

ImageInput = str | Path | Image.Image | Tensor  # a file or folder, or a decoded image
OnBatch = Callable[[int, float], None]  # (images in the batch, images per second so far)
CHUNK = 256  # crops per forward pass: bounds memory with 144 crops per image


@dataclass(frozen=True)
class Prediction:
    file: str | None  # the image's file, when it came from one
    classes: list[str]  # best first
    probabilities: list[float]
    error: str | None = None  # why the file could not be used (classes empty then)


class Predictor:
    def __init__(self, artifact: Artifact, backend: Backend) -> None:
        self.artifact, self.backend = artifact, backend

    @classmethod
    def load(cls, source: str | Path, *, backend: str = "auto", device: str | torch.device = "auto",
             preprocess: Preprocess = None, threads: int | None = None) -> Predictor:
        """Any model source (see weights.sources.load_artifact) on a backend."""
        artifact = load_artifact(source, preprocess=preprocess)
        return cls(artifact, open_backend(artifact, backend, resolve_device(device), threads))

    @classmethod
    def from_model(cls, model: GoogLeNet, *, classes: Sequence[str] | None = None,
                   preprocessing: Preprocessing | None = None,
                   device: str | torch.device = "cpu") -> Predictor:
        """A model held in memory (e.g. just trained or fine-tuned): its classes and preprocessing
        come from its record (`model.artifact`); `classes` / `preprocessing` replace them."""
        artifact = artifact_of(model).without_weights()
        artifact = replace(artifact, classes=tuple(classes) if classes is not None else artifact.classes,
                           preprocessing=preprocessing or artifact.preprocessing)
        return cls(artifact, TorchBackend(model, resolve_device(device)))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.artifact.classes

    @property
    def preprocessing(self) -> Preprocessing:
        return self.artifact.preprocessing

    @property
    def name(self) -> str:
        return self.artifact.source

    def transform(self, crops: int = 1) -> MultiCrop:
        """image -> crops x 3 x S x S: the views of one crop scheme (1, 10 or 144; Sec. 7), as
        this model expects them."""
        return multi_crop(self.preprocessing, (crops,))

    @torch.no_grad()
    def crop_scores(self, views: Tensor, counts: Sequence[int], average: str = "probs") -> list[Tensor]:
        """N x V x 3 x S x S -> one N x C score per scheme (V = sum(counts)): softmax (or logits)
        averaged over each scheme's crops. On the CPU, float32."""
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
        n, v = views.shape[:2]
        flat = views.reshape(n * v, *views.shape[2:])
        logits = torch.cat([self.backend(flat[i:i + CHUNK]).float().cpu()
                            for i in range(0, len(flat), CHUNK)]).reshape(n, v, -1)
        values = logits.softmax(-1) if average == "probs" else logits
        scores, start = [], 0
        for count in counts:
            scores.append(values[:, start:start + count].mean(1))
            start += count
        return scores

    def top(self, probabilities: Tensor, top_k: int, files: Sequence[str | None]) -> list[Prediction]:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        best = probabilities.topk(min(top_k, len(self.classes)), dim=1)
        return [Prediction(file, [self.classes[i] for i in labels], values.tolist())
                for file, values, labels in zip(files, best.values, best.indices)]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5, crops: int = 1,
                **file_options: Any) -> list[Prediction]:
        """The top classes of each image, in input order: image files and folders (searched, as
        `predict_files` does, which takes `file_options`: batch_size, workers, max_image_mb; a
        file that cannot be used gets a Prediction naming the problem), PIL images (any mode) and
        RGB 3 x H x W tensors (uint8, or float in [0, 1], as torchvision's ToTensor gives)."""
        items = [images] if isinstance(images, (str, Path, Image.Image, Tensor)) else list(images)
        results: list[Prediction] = []
        for are_paths, run in itertools.groupby(items, key=lambda item: isinstance(item, (str, Path))):
            run = list(run)
            results += (self.predict_files(run, top_k, crops, **file_options) if are_paths
                        else self.predict_images(run, top_k, crops))
        return results

    def predict_images(self, images: Sequence[Image.Image | Tensor], top_k: int = 5,
                       crops: int = 1) -> list[Prediction]:
        """The top classes of decoded images: PIL (any mode: converted to RGB) or 3 x H x W tensors."""
        transform = self.transform(crops)
        views = torch.stack([transform(image) for image in images])
        return self.top(self.crop_scores(views, [crops])[0], top_k, [None] * len(images))

    def predict_files(self, inputs: Sequence[str | Path], top_k: int = 5, crops: int = 1,
                      batch_size: int = 32, workers: int = 0,
                      max_image_mb: float = DEFAULT_MAX_IMAGE_MB,
                      on_start: Callable[[int], None] | None = None,
                      on_batch: OnBatch | None = None) -> list[Prediction]:
        """Predictions for image files and folders (searched), in input order; a file that
        cannot be read (or is over `max_image_mb`) gets a Prediction naming the problem.
        `on_start(files)` once the folders are searched (a progress bar's total);
        `on_batch(files, files/s)` after every batch, unreadable files included."""
        files = find_images(inputs)
        if on_start is not None:
            on_start(len(files))
        results: list[Prediction] = []
        batches = image_batches(files, self.transform(crops), batch_size, workers, max_image_mb)
        for images, indices, errors in timed(batches, on_batch):
            results += [Prediction(str(files[i]), [], [], error) for i, error in errors.items()]
            if images is not None:
                probabilities = self.crop_scores(images, [crops])[0]
                results += self.top(probabilities, top_k, [str(files[i]) for i in indices])
        order = {str(f): i for i, f in enumerate(files)}
        return sorted(results, key=lambda p: order[p.file])  # type: ignore[index]


Batch = tuple[Tensor | None, list[int], dict[int, str]]


def timed(batches: Iterator[Batch], on_batch: OnBatch | None) -> Iterator[Batch]:
    """`image_batches`' batches, `on_batch(files, files/s)` called once each has been used."""
    start, seen = time.perf_counter(), 0
    for batch in batches:
        yield batch
        seen += len(batch[1]) + len(batch[2])
        if on_batch is not None:
            on_batch(len(batch[1]) + len(batch[2]), seen / max(time.perf_counter() - start, 1e-9))


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Files named as they are; directories searched for images, sorted, following symbolic
    links (each folder once). Inside a directory, every entry with an image suffix that is not
    a folder is kept, so a dangling link or a link loop is named like any unreadable file
    instead of vanishing."""
    found: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            images = sorted(path / name for name in walk_directory(path).files)
            if not images:
                raise DataError(f"no images in directory {path}")
            found += images
        else:
            found.append(path)  # a missing or unreadable file gets its own error entry
    if not found:
        raise DataError("no images given")
    return found


class ImageFiles(Dataset):
    def __init__(self, files: list[Path], transform: Callable, max_image_mb: float) -> None:
        self.files, self.transform, self.max_bytes = files, transform, int(max_image_mb * MB)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor | None, int, str | None]:
        image, reason = read_transformed(lambda: read_file(self.files[index], self.max_bytes),
                                         self.transform)
        return image, index, reason


def image_batches(files: list[Path], transform: Callable, batch_size: int, workers: int,
                  max_image_mb: float = DEFAULT_MAX_IMAGE_MB) -> Iterator[Batch]:
    """Decoded, transformed batches of `files`: (the readable images stacked, or None when
    none is; their indices into `files`; index -> error for the unreadable ones)."""
    loader = DataLoader(ImageFiles(files, transform, max_image_mb), batch_size=batch_size,
                        num_workers=workers, collate_fn=list)
    for items in loader:
        good = [(image, index) for image, index, error in items if error is None]
        errors = {index: error for _, index, error in items if error is not None}
        images = torch.stack([image for image, _ in good]) if good else None
        yield images, [index for _, index in good], errors

