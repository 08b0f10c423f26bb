"""Evenly spaced and stratified subsets: the one definition of "N items spread over a set"."""

from __future__ import annotations

from collections.abc import Sequence


def evenly_spaced(count: int, total: int) -> list[int]:
    """`min(count, total)` distinct indices spread evenly over range(total), sorted."""
    count = min(count, total)
    return [int(i * total / count) for i in range(count)] if count > 0 else []


def stratified(labels: Sequence[int], count: int) -> list[int]:
    """About `count` indices (one at least per class), spread evenly within each class, in index
    order: every class is kept, whatever order the labels are in."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    total = len(labels)
    chosen: list[int] = []
    for members in by_class.values():
        share = max(1, round(count * len(members) / total)) if total else 0
        chosen += [members[i] for i in evenly_spaced(share, len(members))]
    return sorted(chosen)
