"""Sources: digits, ImageFolder directories, tar read in place, .tar.gz unpacked to a cache."""

import pytest
import torch
from helpers import SHARED_DATA, pack, write_image, write_split_tree, write_tree

from googlenet.data.config import AugmentConfig, DataConfig
from googlenet.data.digits import digits_splits
from googlenet.data.splits import load_datasets

EVAL = AugmentConfig(policy="none")


def load(tmp_path, **fields):
    return load_datasets(DataConfig(input_size=16, cache_dir=str(tmp_path / "cache"), **fields),
                         EVAL, seed=0)


def items(dataset):
    return [(dataset[i][0], dataset[i][1]) for i in range(len(dataset))]


def same_items(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) and p == q for (x, p), (y, q) in zip(a, b))


# --- digits


def test_digits_split_is_stratified_and_fixed():
    train, val = digits_splits()
    assert len(train.labels) + len(val.labels) == 1797 and 355 <= len(val.labels) <= 365
    assert train.images.shape[1:] == (3, 8, 8) and train.images.dtype == torch.uint8
    assert int(train.images.max()) == 255
    all_counts = torch.bincount(torch.cat([train.labels, val.labels]), minlength=10)
    val_counts = torch.bincount(val.labels, minlength=10)
    assert ((val_counts - 0.2 * all_counts).abs() <= 0.5).all()  # round(20%) of every class
    again_train, again_val = digits_splits()
    assert again_val.names == val.names and torch.equal(again_train.images, train.images)


def test_digits_validation_set_does_not_depend_on_the_training_seed():
    a = load_datasets(DataConfig(input_size=8), EVAL, seed=0)
    b = load_datasets(DataConfig(input_size=8), EVAL, seed=123)
    assert a.classes == [str(d) for d in range(10)]
    assert same_items(items(a.val), items(b.val))


# --- directories and archives


@pytest.mark.parametrize("val_name", ["val", "test"])
def test_directory_with_train_and_val(tmp_path, val_name):
    root = write_split_tree(tmp_path / "data", val_name=val_name)
    datasets = load(tmp_path, path=str(root))
    assert datasets.classes == ["cat", "dog"]
    assert len(datasets.train) == len(datasets.val) == 6
    image, label, bad = datasets.train[5]
    assert image.shape == (3, 16, 16) and label == 1 and bad is None


def test_tar_read_in_place_and_tar_gz_unpacked_give_the_directory_samples(tmp_path):
    root = write_split_tree(tmp_path / "data")
    by_dir = load(tmp_path, train_dir=str(root / "train"), val_dir=str(root / "val"))
    # Class roots found inside archives at different depths: cifar10/train/<class>, val/<class>.
    train_tar = pack(root / "train", tmp_path / "train.tar", "cifar10/train")
    val_tgz = pack(root / "val", tmp_path / "val.tar.gz", "val", mode="w:gz")
    by_tar = load(tmp_path, train_dir=str(train_tar), val_dir=str(val_tgz))
    assert same_items(items(by_dir.train), items(by_tar.train))
    assert same_items(items(by_dir.val), items(by_tar.val))
    assert by_tar.train.split.reader.where("x") == f"{train_tar}:x"  # read in place
    cached = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(cached) == 1 and cached[0].startswith("val.tar.gz-")  # no temporary left behind
    mtime = (tmp_path / "cache" / cached[0]).stat().st_mtime_ns
    load(tmp_path, train_dir=str(train_tar), val_dir=str(val_tgz))  # unpacked once, then reused
    assert (tmp_path / "cache" / cached[0]).stat().st_mtime_ns == mtime


def test_archive_holding_train_and_val(tmp_path):
    root = write_split_tree(tmp_path / "data", val_name="test")
    datasets = load(tmp_path, path=str(pack(root, tmp_path / "all.tar", "imagenet")))
    assert datasets.classes == ["cat", "dog"] and len(datasets.val) == 6


def test_in_memory_gives_the_same_samples(tmp_path):
    root = write_split_tree(tmp_path / "data")
    files = load(tmp_path, path=str(root))
    memory = load(tmp_path, path=str(root), in_memory=True)
    assert memory.train.split.images.shape == (6, 3, 18, 18)  # held at the eval resize size
    assert same_items(items(files.train), items(memory.train))


def test_in_memory_takes_photos_of_mixed_sizes(tmp_path):
    root = write_split_tree(tmp_path / "data")
    write_image(root / "train" / "dog" / "big.png", size=(30, 50))
    datasets = load(tmp_path, path=str(root), in_memory=True)
    # Every image is held at the eval resize size (input 16, crop ratio 0.875 -> 18).
    assert datasets.train.split.images.shape[1:] == (3, 18, 18)
    assert all(datasets.train[i][0].shape == (3, 16, 16) for i in range(len(datasets.train)))


@pytest.mark.skipif(not (SHARED_DATA / "cifar10/test.tar").exists(),
                    reason=f"CIFAR-10 not found at {SHARED_DATA}/cifar10/test.tar")
def test_cifar10_test_tar_read_in_place(tmp_path):
    archive = str(SHARED_DATA / "cifar10/test.tar")
    datasets = load(tmp_path, train_dir=archive, val_dir=archive)
    assert datasets.classes[:3] == ["airplane", "automobile", "bird"]
    assert len(datasets.val) == 10_000
    for i in (0, 4321, 9999):
        image, label, bad = datasets.val[i]
        assert bad is None and image.shape == (3, 16, 16) and label == i // 1000


# --- clear errors before training starts


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'}: no such file"):
        load(tmp_path, path=str(tmp_path / "nowhere"))


def test_one_folder_of_class_folders_is_split_per_class(tmp_path):
    root = write_tree(tmp_path / "data", classes={"cat": 10, "dog": 5})
    datasets = load(tmp_path, path=str(root))
    val = sorted(name for name, _ in datasets.val.split.samples)
    assert val == ["cat/000.png", "cat/005.png", "dog/000.png"]  # 20% of each class, spread
    assert len(datasets.train) == 12 and datasets.classes == ["cat", "dog"]
    assert not set(val) & {name for name, _ in datasets.train.split.samples}
    assert load(tmp_path, path=str(root)).val.split.samples == datasets.val.split.samples


def test_a_class_too_small_to_split_is_named(tmp_path):
    root = write_tree(tmp_path / "data", classes={"cat": 4, "dog": 1})
    with pytest.raises(ValueError, match=f"{root}/dog: 1 image"):
        load(tmp_path, path=str(root))


def test_no_val_split(tmp_path):
    root = tmp_path / "data"
    write_tree(root / "train")
    with pytest.raises(ValueError, match="has train/ but no val/ or test/"):
        load(tmp_path, path=str(root))


def test_only_train_dir(tmp_path):
    root = write_split_tree(tmp_path / "data")
    with pytest.raises(ValueError, match="train_dir is set but not val_dir"):
        load(tmp_path, train_dir=str(root / "train"))


def test_empty_dataset(tmp_path):
    root = tmp_path / "data"
    write_tree(root / "train")
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"{root / 'val'}: no images found"):
        load(tmp_path, path=str(root))


def test_empty_class_folder_names_the_folder(tmp_path):
    root = write_split_tree(tmp_path / "data")
    (root / "train" / "bird").mkdir()
    with pytest.raises(ValueError, match=f"{root / 'train' / 'bird'}: empty class folder"):
        load(tmp_path, path=str(root))


def test_empty_class_folder_inside_an_archive(tmp_path):
    root = write_split_tree(tmp_path / "data")
    (root / "val" / "bird").mkdir()
    archive = pack(root, tmp_path / "data.tar", "data")
    with pytest.raises(ValueError, match=f"{archive}:data/val/bird: empty class folder"):
        load(tmp_path, path=str(archive))


def test_validation_classes_must_match(tmp_path):
    root = tmp_path / "data"
    write_tree(root / "train", {"cat": 2, "dog": 2, "emu": 2})
    write_tree(root / "val", {"cat": 2, "dog": 2, "fox": 2})
    with pytest.raises(ValueError, match="missing from validation: emu; not in training: fox"):
        load(tmp_path, path=str(root))


def test_not_an_archive(tmp_path):
    path = tmp_path / "data.tar"
    path.write_bytes(b"not a tar archive\n" * 200)
    with pytest.raises(ValueError, match=f"{path}: not a readable tar archive"):
        load(tmp_path, path=str(path))
