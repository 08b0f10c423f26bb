"""Where the images come from: a directory or a tar archive laid out like ImageFolder.

Both are listed as a Tree of relative POSIX paths, so one set of rules finds
the splits (train/ beside val/ or test/) and the class-folder root (the folder
whose children are the class folders) wherever they sit inside.

Symbolic links to folders and files are followed, as torchvision's ImageFolder does (the usual
way to build a subset of a data set); a folder reached twice (a loop, or two links to one
folder) is walked once, and a class folder that repeats another is an error naming both.

Policies: an empty class folder is an error naming it (keeping it would give
a class no training images; dropping it would shift every later class index);
hidden folders (".name") are not classes; files that are not images (by
extension) and images lying directly in the class-folder root are ignored,
as torchvision's ImageFolder does.
"""

from __future__ import annotations

import io
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

from googlenet.data.config import DEFAULT_MAX_IMAGE_MB, MB, DataConfig
from googlenet.data.images import IMAGE_SUFFIXES, decoding_errors, is_image_file, read_file
from googlenet.data.subsets import evenly_spaced
from googlenet.data.tar import TarReader, index_tar, is_compressed, unpack_to_cache
from googlenet.errors import BadImage, DataError, NotFound


class Reader(Protocol):
    def read(self, name: str) -> bytes: ...

    def where(self, name: str) -> str: ...


class DirectoryReader:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_IMAGE_MB * MB) -> None:
        self.root, self.max_bytes = Path(root), max_bytes

    def read(self, name: str) -> bytes:
        return read_file(self.root / name, self.max_bytes)

    def where(self, name: str) -> str:
        return str(self.root / name) if name else str(self.root)


@dataclass(frozen=True)
class Tree:
    """The image files (sorted) and every folder of a directory or archive, relative to its root."""

    reader: Reader
    files: list[str]
    dirs: set[str]
    repeats: dict[str, str] = field(default_factory=dict)  # folder -> the one it repeats (links)


@dataclass(frozen=True)
class FileSplit:
    """One split: its class-folder root, classes, and (name for the reader, class index) samples."""

    location: str
    reader: Reader
    samples: list[tuple[str, int]]
    classes: list[str]


def open_tree(path_text: str, cache_dir: str | None,
              max_image_mb: float = DEFAULT_MAX_IMAGE_MB) -> Tree:
    """The images of a folder or archive; image files over `max_image_mb` are refused when read."""
    max_bytes = int(max_image_mb * MB)
    path = Path(path_text).expanduser()
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    if path.is_file() and is_compressed(path):
        path = unpack_to_cache(path, cache_dir)
    if path.is_dir():
        walk = walk_directory(path)
        return Tree(DirectoryReader(path, max_bytes), walk.files, walk.dirs, walk.repeats)
    members, dirs = index_tar(path)
    files = sorted(name for name in members if is_image_file(name))
    return Tree(TarReader(path, members, max_bytes), files, dirs | parent_dirs(files))


@dataclass(frozen=True)
class Walk:
    """What walk_directory found, relative to its root (POSIX paths)."""

    files: list[str]  # image files, sorted; dangling links and link loops among them, by name
    dirs: set[str]  # every folder reached, links to folders included
    repeats: dict[str, str]  # a folder not walked -> the folder it is (a loop, or a second link)


def walk_directory(root: Path) -> Walk:
    """The image files under `root`, following symbolic links to folders and files; a folder
    is walked once however many links reach it (its (st_dev, st_ino) is remembered)."""
    files: list[str] = []
    dirs: set[str] = set()
    walked: dict[tuple[int, int], str] = {}
    repeats: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()  # which of two links to one folder is walked does not depend on the disk
        relative = Path(dirpath).relative_to(root).as_posix()
        relative = "" if relative == "." else relative
        try:
            info = os.stat(dirpath)
        except OSError:  # vanished while walking
            dirnames.clear()
            continue
        if (info.st_dev, info.st_ino) in walked:
            repeats[relative] = walked[(info.st_dev, info.st_ino)]
            dirnames.clear()
            continue
        walked[(info.st_dev, info.st_ino)] = relative
        dirs.update(posixpath.join(relative, name) for name in dirnames)
        files.extend(posixpath.join(relative, name) for name in filenames if is_image_file(name))
    return Walk(sorted(files), dirs, repeats)


def parent_dirs(files: list[str]) -> set[str]:
    dirs: set[str] = set()
    for name in files:
        parent = posixpath.dirname(name)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return dirs


def under(name: str, prefix: str) -> bool:
    return not prefix or name.startswith(prefix + "/")


def train_folder(tree: Tree) -> str:
    """The shallowest train/ folder of the tree, or "" (the root) when it has none: where its
    training images are, with or without a val/ beside it (e.g. CIFAR-10's train.tar alone)."""
    trains = sorted((d for d in tree.dirs if posixpath.basename(d) == "train"),
                    key=lambda d: (d.count("/"), d))
    return trains[0] if trains else ""


def find_splits(tree: Tree) -> tuple[str, str] | None:
    """The shallowest train/ folder and the val/ (else test/) folder beside it; None when the
    tree has no train/ folder (one set of class folders)."""
    trains = sorted((d for d in tree.dirs if posixpath.basename(d) == "train"),
                    key=lambda d: (d.count("/"), d))
    if not trains:
        return None
    parent = posixpath.dirname(trains[0])
    for name in ("val", "test"):
        if posixpath.join(parent, name) in tree.dirs:
            return trains[0], posixpath.join(parent, name)
    raise DataError(f"{tree.reader.where(parent)}: has train/ but no val/ or test/ beside it")


def class_root(images: list[str], where: str) -> str:
    """The folder whose children are the class folders: the common folder of the images' folders."""
    parents = {posixpath.dirname(name) for name in images}
    root = posixpath.commonpath(list(parents))
    if parents == {root}:  # every image in one folder: that folder is the only class
        if not root:
            raise DataError(f"{where}: images are not in class folders "
                             "(expected <class>/<image>)")
        root = posixpath.dirname(root)
    return root


def split_from_tree(tree: Tree, prefix: str) -> FileSplit:
    where = tree.reader.where(prefix)
    images = [name for name in tree.files if under(name, prefix)]
    if not images:
        raise DataError(f"{where}: no images found (expected <class>/<image> files ending in "
                         f"{', '.join(IMAGE_SUFFIXES)})")
    root = class_root(images, where)
    classes = sorted(posixpath.basename(d) for d in tree.dirs
                     if posixpath.dirname(d) == root and not posixpath.basename(d).startswith("."))
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for name in images:
        top, sep, _ = name[len(root) + 1 if root else 0:].partition("/")
        if sep and top in index:
            samples.append((name, index[top]))
    check_no_empty_classes(tree, root, classes, samples)
    samples.sort(key=lambda sample: (sample[1], sample[0]))  # ImageFolder's order
    return FileSplit(tree.reader.where(root), tree.reader, samples, classes)


def check_no_empty_classes(tree: Tree, root: str, classes: list[str],
                           samples: list[tuple[str, int]]) -> None:
    used = {label for _, label in samples}
    for label, name in enumerate(classes):
        repeated = tree.repeats.get(posixpath.join(root, name))
        if repeated is not None:
            raise DataError(f"{tree.reader.where(posixpath.join(root, name))}: the same folder as "
                            f"{tree.reader.where(repeated)} (through a symbolic link); a class "
                            "needs a folder of its own")
        if label not in used:
            raise DataError(f"{tree.reader.where(posixpath.join(root, name))}: empty class folder "
                             "(no images); remove it or add images, since dropping it would "
                             "shift the index of every later class")


def some(names: list[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_same_classes(train: FileSplit, val: FileSplit) -> None:
    missing = sorted(set(train.classes) - set(val.classes))
    extra = sorted(set(val.classes) - set(train.classes))
    problems = ([f"missing from validation: {some(missing)}"] if missing else []) + \
               ([f"not in training: {some(extra)}"] if extra else [])
    if problems:
        raise DataError(f"validation classes ({val.location}) differ from training classes "
                         f"({train.location}): {'; '.join(problems)}")


def holdout(split: FileSplit, fraction: float) -> tuple[FileSplit, FileSplit]:
    """One set of class folders split in two: `fraction` of each class, evenly spaced, held out
    for validation (deterministic: the same files every run)."""
    if not 0 < fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {fraction}")
    train, val = [], []
    for label in range(len(split.classes)):
        members = [sample for sample in split.samples if sample[1] == label]
        if len(members) < 2:
            raise DataError(f"{split.location}/{split.classes[label]}: {len(members)} image(s); "
                            "a class needs at least 2 to be split into training and validation")
        held = set(evenly_spaced(max(1, round(fraction * len(members))), len(members)))
        for i, sample in enumerate(members):
            (val if i in held else train).append(sample)
    return (FileSplit(split.location, split.reader, train, split.classes),
            FileSplit(split.location, split.reader, val, split.classes))


def tree_splits(path: str, data: DataConfig) -> tuple[FileSplit, FileSplit]:
    """train/ and val/ (or test/) of a folder or archive, or a held-out share of each class
    when it is one set of class folders."""
    tree = open_tree(path, data.cache_dir, data.max_image_mb)
    prefixes = find_splits(tree)
    if prefixes is None:
        return holdout(split_from_tree(tree, ""), data.val_fraction)
    return split_from_tree(tree, prefixes[0]), split_from_tree(tree, prefixes[1])


def file_splits(data: DataConfig) -> tuple[FileSplit, FileSplit]:
    """The training and validation splits named by path, train_dir and val_dir."""
    if data.train_dir or data.val_dir:
        if not (data.train_dir and data.val_dir):
            given = "train_dir" if data.train_dir else "val_dir"
            missing = "val_dir" if data.train_dir else "train_dir"
            raise DataError(f"{given} is set but not {missing}; "
                            "give both, or neither and point the data path at a folder or "
                            "archive holding train/ and val/")
        train = split_from_tree(open_tree(data.train_dir, data.cache_dir, data.max_image_mb), "")
        val = split_from_tree(open_tree(data.val_dir, data.cache_dir, data.max_image_mb), "")
    else:
        train, val = tree_splits(data.path, data)
    check_same_classes(train, val)
    return train, val


def typical_short_side(data: DataConfig, sample: int = 16) -> int | None:
    """The median shorter side of up to `sample` training images, read from their headers
    (None for the built-in digits or when none can be read): photographs or thumbnails?"""
    if data.path == "digits" and not data.train_dir:
        return None
    train, _ = file_splits(data)
    step = max(1, len(train.samples) // sample)
    sides = []
    for name, _ in train.samples[::step][:sample]:
        try:  # the header only: PIL reads the size without decoding the pixels
            with decoding_errors(), Image.open(io.BytesIO(train.reader.read(name))) as image:
                sides.append(min(image.size))
        except (BadImage, OSError):  # an unreadable file: training names it later
            continue
    return sorted(sides)[len(sides) // 2] if sides else None
