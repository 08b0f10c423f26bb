"""The accuracy tally: the one place top-1/top-5 hits are counted (evaluation, validation)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

TOP_K = 5


def top_predictions(scores: Tensor, k: int = TOP_K) -> Tensor:
    """The indices of the k best classes (fewer when there are fewer classes), best first."""
    return scores.topk(min(k, scores.shape[1]), dim=1).indices


@dataclass
class Accuracy:
    """Top-1 and top-5 hits over batches, and a confusion matrix (rows: true, columns: predicted)."""

    num_classes: int
    top1: int = 0
    top5: int = 0
    images: int = 0
    confusion: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def add(self, scores: Tensor, labels: Tensor) -> None:
        scores, labels = scores.detach().float().cpu(), labels.cpu()
        top = top_predictions(scores)
        self.top1 += int((top[:, 0] == labels).sum())
        self.top5 += int((top == labels[:, None]).any(1).sum())
        self.images += len(labels)
        self.confusion.index_put_((labels, top[:, 0]), torch.ones_like(labels), accumulate=True)

    @property
    def top1_rate(self) -> float:
        return self.top1 / max(self.images, 1)

    @property
    def top5_rate(self) -> float:
        return self.top5 / max(self.images, 1)

    def per_class(self) -> list[float]:
        """Top-1 accuracy of each class."""
        return (self.confusion.diag() / self.confusion.sum(1).clamp(min=1)).tolist()
