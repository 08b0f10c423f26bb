"""Loader: bad images dropped and named, exact determinism and mid-epoch resume, DDP sharding."""

import pytest
import torch
from helpers import jpeg_bytes, write_split_tree, write_tree
from PIL import Image

from googlenet.data.config import AugmentConfig, DataConfig
from googlenet.data.loader import EpochSampler, make_loader
from googlenet.data.splits import load_datasets

PAPER = AugmentConfig(policy="paper")  # Howard's photometric distortions, as the paper recipe
EVAL = AugmentConfig(policy="none")


def load(tmp_path, root, augment=PAPER, **fields):
    data = DataConfig(path=str(root), input_size=16, cache_dir=str(tmp_path / "cache"), **fields)
    return load_datasets(data, augment, seed=5)


def epoch(loader, number, skip=0):
    loader.set_epoch(number, skip_batches=skip)
    return list(loader)


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
        assert x.bad == y.bad


@pytest.fixture
def bad_tree(tmp_path):
    """train/: 4 good cats, 4 good dogs, and three unreadable cat files."""
    root = write_split_tree(tmp_path / "data", classes={"cat": 4, "dog": 4})
    cats = root / "train" / "cat"
    (cats / "empty.jpg").write_bytes(b"")
    (cats / "notes.jpg").write_text("not a picture\n")
    (cats / "cut.jpg").write_bytes(jpeg_bytes()[:300])
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_images_are_dropped_and_named(tmp_path, bad_tree, workers):
    datasets = load(tmp_path, bad_tree, EVAL)
    batches = epoch(make_loader(datasets.train, 4, train=False, workers=workers, seed=0), 0)
    assert sum(len(b.images) for b in batches) == 8 and len(batches) == 3
    assert torch.cat([b.labels for b in batches]).tolist() == [0] * 4 + [1] * 4
    bad = sorted(reason for b in batches for reason in b.bad)
    cats = bad_tree / "train" / "cat"
    assert bad == [f"{cats / 'cut.jpg'}: corrupt or truncated image (Truncated File Read)",
                   f"{cats / 'empty.jpg'}: empty file (0 bytes)",
                   f"{cats / 'notes.jpg'}: not an image (unrecognised format)"]
    mixed = [b for b in batches if b.bad and len(b.images)]
    assert mixed and all(b.images.shape[1:] == (3, 16, 16) for b in mixed)  # good ones come through


def test_a_batch_of_only_bad_images_is_empty(tmp_path, monkeypatch):
    root = write_split_tree(tmp_path / "data")
    (root / "train" / "aardvark").mkdir()
    (root / "train" / "aardvark" / "a.png").write_bytes(b"")
    Image.new("RGB", (64, 64)).save(root / "train" / "aardvark" / "b.png")
    write_tree(root / "val", {"aardvark": 1})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # b.png is now a decompression bomb
    datasets = load(tmp_path, root, EVAL)
    first = epoch(make_loader(datasets.train, 2, train=False, workers=0, seed=0), 0)[0]
    assert first.images.shape == (0, 3, 16, 16) and first.labels.shape == (0,)
    bomb = "decompression bomb refused (Image size (4096 pixels) exceeds limit of 2000 pixels)"
    assert [reason.split(": ", 1)[1] for reason in first.bad] == ["empty file (0 bytes)", bomb]


def test_same_seed_same_batches_with_any_worker_count(tmp_path):
    root = write_split_tree(tmp_path / "data", classes={"cat": 7, "dog": 6})
    datasets = load(tmp_path, root)
    with_workers = make_loader(datasets.train, 4, train=True, workers=2, seed=1)
    first, second = epoch(with_workers, 0), epoch(with_workers, 1)
    assert len(first) == len(with_workers) == 3  # 13 images, the partial batch dropped
    no_workers = make_loader(datasets.train, 4, train=True, workers=0, seed=1)
    assert_same_batches(first, epoch(no_workers, 0))
    assert not torch.equal(first[0].images, second[0].images)  # a new epoch: new order and crops
    assert_same_batches(first, epoch(with_workers, 0))  # persistent workers, epoch 0 again
    other_seed = epoch(make_loader(datasets.train, 4, train=True, workers=0, seed=2), 0)
    assert not torch.equal(first[0].images, other_seed[0].images)


def test_skip_batches_resumes_mid_epoch_exactly(tmp_path):
    root = write_split_tree(tmp_path / "data", classes={"cat": 9, "dog": 8})
    datasets = load(tmp_path, root)
    loader = make_loader(datasets.train, 3, train=True, workers=2, seed=3)
    full = epoch(loader, 4)
    assert_same_batches(epoch(loader, 4, skip=2), full[2:])
    assert len(loader) == 5 and epoch(loader, 4, skip=5) == []
    with pytest.raises(ValueError, match=r"skip_batches must be in \[0, 5\]"):
        loader.set_epoch(4, skip_batches=6)


def test_in_memory_crop_flip_is_batched_deterministic_and_matches_files(tmp_path):
    root = write_split_tree(tmp_path / "data", classes={"cat": 5, "dog": 5})
    crop_flip = AugmentConfig(policy="crop-flip", crop_padding=2)
    memory = load(tmp_path, root, crop_flip, in_memory=True)
    files = load(tmp_path, root, crop_flip)
    batched = make_loader(memory.train, 4, train=True, workers=0, seed=0)
    assert batched.batched and batched.loader is None
    batches = epoch(batched, 2)
    assert [tuple(b.images.shape) for b in batches] == [(4, 3, 16, 16)] * 2
    for dataset in (memory.train, files.train):  # a second loader; per-sample CropFlip on files
        again = make_loader(dataset, 4, train=True, workers=0, seed=0)
        assert_same_batches(batches, epoch(again, 2))
    assert_same_batches(epoch(batched, 2, skip=1), batches[1:])


def test_digits_in_memory_crop_flip_at_32():
    data = DataConfig(input_size=32)
    datasets = load_datasets(data, AugmentConfig(policy="crop-flip"), seed=0)
    loader = make_loader(datasets.train, 128, train=True, workers=0, seed=0)
    batches = epoch(loader, 0)
    assert len(batches) == len(loader) == len(datasets.train) // 128
    assert batches[0].images.shape == (128, 3, 32, 32) and batches[0].images.dtype == torch.float32
    assert batches[0].labels.dtype == torch.int64 and batches[0].bad == []


def test_loading_leaves_the_global_rng_alone(tmp_path):
    root = write_split_tree(tmp_path / "data")
    datasets = load(tmp_path, root)
    digits = load_datasets(DataConfig(input_size=16), AugmentConfig(policy="crop-flip"), seed=0)
    state = torch.get_rng_state()
    for dataset, workers in [(datasets.train, 0), (datasets.train, 2), (digits.train, 0)]:
        epoch(make_loader(dataset, 2, train=True, workers=workers, seed=0), 0)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("n", [13, 16])
def test_training_shards_cover_the_epoch_with_equal_lengths(n):
    dataset = list(range(n))
    ranks = [EpochSampler(dataset, 2, shuffle=True, seed=0, rank=r, world_size=2) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(3)
    shards = [[index for index, epoch_ in sampler] for sampler in ranks]
    assert len(shards[0]) == len(shards[1]) == len(ranks[0]) == (n + 1) // 2
    assert set(shards[0]) | set(shards[1]) == set(range(n))
    assert len(shards[0]) + len(shards[1]) - n == n % 2  # padded by repeating its start
    single = EpochSampler(dataset, 2, shuffle=True, seed=0)
    single.set_epoch(3)
    order = [index for index, _ in single]
    assert shards[0] == order[0::2][: len(shards[0])]  # rank r takes every world_size-th index


def test_training_loaders_of_two_ranks_have_equal_lengths(tmp_path):
    root = write_split_tree(tmp_path / "data", classes={"cat": 6, "dog": 5})
    datasets = load(tmp_path, root, EVAL)
    loaders = [make_loader(datasets.train, 2, train=True, workers=0, seed=0, rank=r, world_size=2)
               for r in (0, 1)]
    assert len(loaders[0]) == len(loaders[1]) == 3
    batches = [epoch(loader, 0) for loader in loaders]
    assert [len(b) for b in batches] == [3, 3]


def test_eval_shards_count_every_sample_once():
    dataset = list(range(11))
    shards = [list(EpochSampler(dataset, 4, shuffle=False, seed=0, rank=r, world_size=3))
              for r in range(3)]
    indices = sorted(index for shard in shards for index, _ in shard)
    assert indices == list(range(11)) and [len(s) for s in shards] == [4, 4, 3]


def test_eval_loader_keeps_order_and_the_last_partial_batch(tmp_path):
    root = write_split_tree(tmp_path / "data", classes={"cat": 3, "dog": 4})
    datasets = load(tmp_path, root)
    loader = make_loader(datasets.val, 3, train=False, workers=0, seed=0)
    batches = epoch(loader, 0)
    assert len(loader) == len(batches) == 3 and len(batches[-1].labels) == 1
    assert torch.cat([b.labels for b in batches]).tolist() == datasets.val.targets


def test_a_training_set_smaller_than_a_batch_is_an_error(tmp_path):
    datasets = load(tmp_path, write_split_tree(tmp_path / "data"))
    with pytest.raises(ValueError, match="training set of 6 images gives no full batch of 8"):
        make_loader(datasets.train, 8, train=True, workers=0, seed=0)


def test_digits_paper_augmentation_with_workers_matches_without():
    datasets = load_datasets(DataConfig(input_size=16), AugmentConfig(), seed=0)
    first_batches = []
    for workers in (0, 2):
        loader = make_loader(datasets.train, 32, train=True, workers=workers, seed=9)
        loader.set_epoch(1, skip_batches=10)
        batches = iter(loader)
        first_batches.append([next(batches) for _ in range(3)])  # leaving an epoch early is fine
    assert_same_batches(*first_batches)
