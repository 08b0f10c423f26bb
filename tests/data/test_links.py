"""Folders built from symbolic links (a subset of a data set, one shared copy) are read like
torchvision's ImageFolder reads them, by every command that walks folders; loops and dangling
links are named, and no folder is read twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from googlenet.cli.main import main
from googlenet.data.trees import open_tree, split_from_tree, walk_directory
from googlenet.errors import DataError
from googlenet.inference.predictor import find_images

CLASSES = ("cat", "dog")


@pytest.fixture(scope="module")
def linked(tmp_path_factory) -> Path:
    """links/<class> -> ../real/<class>, each with 4 photos; one photo is itself a link."""
    root = tmp_path_factory.mktemp("linked")
    for c, name in enumerate(CLASSES):
        folder = root / "real" / name
        folder.mkdir(parents=True)
        for i in range(4):
            Image.effect_noise((40, 36), 30 + 10 * i + 40 * c).convert("RGB").save(folder / f"{i}.png")
    (root / "links").mkdir()
    for name in CLASSES:
        (root / "links" / name).symlink_to(root / "real" / name, target_is_directory=True)
    (root / "elsewhere.png").write_bytes((root / "real" / "cat" / "0.png").read_bytes())
    (root / "real" / "dog" / "4.png").symlink_to(root / "elsewhere.png")
    return root / "links"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(linked, tmp_path_factory) -> Path:
    """One training step on the linked folder (tiny input): `train` reads through the links."""
    out = tmp_path_factory.mktemp("run") / "run"
    code = main(["train", "--data", str(linked), "--variant", "bn", "--input-size", "32",
                 "--batch-size", "4", "--workers", "0", "--epochs", "1", "--max-steps", "1",
                 "--val-fraction", "0.25", "--output-dir", str(out), "--quiet"])
    assert code == 0
    return out


def test_the_walk_follows_links_to_folders_and_files(linked):
    files = walk_directory(linked).files
    assert files == [f"cat/{i}.png" for i in range(4)] + [f"dog/{i}.png" for i in range(5)]
    split = split_from_tree(open_tree(str(linked), None), "")
    assert split.classes == list(CLASSES) and len(split.samples) == 9
    assert find_images([linked]) == [linked / name for name in files]


def test_train_predict_evaluate_and_features_read_a_folder_of_links(trained, linked, tmp_path, capsys):
    model = str(trained / "last.pt")
    code, out, _ = run(capsys, "predict", str(linked), "-m", model, "--format", "json", "--workers", "0")
    assert code == 0 and len(json.loads(out)) == 9
    code, out, _ = run(capsys, "evaluate", "-m", model, "--data", str(linked), "--workers", "0")
    assert code == 0, out
    code, out, _ = run(capsys, "features", str(linked), "-m", model, "--output",
                       str(tmp_path / "f.npy"), "--workers", "0")
    assert code == 0 and "9 images" in out


def test_detection_reads_linked_annotation_and_image_folders(tmp_path):
    from detection_scenes import write_voc

    from googlenet.detection.data import load_detection

    real = write_voc(tmp_path / "real")
    (tmp_path / "voc").mkdir()
    for name in ("annotations", "images", "splits"):
        (tmp_path / "voc" / name).symlink_to(real / name, target_is_directory=True)
    assert len(load_detection(tmp_path / "voc").samples) == len(load_detection(real).samples) > 0
    images = tmp_path / "pictures"
    images.mkdir()
    (images / "linked").symlink_to(real / "images", target_is_directory=True)
    assert [p.name for p in find_images([images])] == sorted(p.name for p in (real / "images").iterdir())


def test_loops_are_walked_once_and_dangling_links_named(tmp_path, capsys, trained):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(folder / "sub" / "a.png")
    (folder / "sub" / "up").symlink_to(folder, target_is_directory=True)  # a loop
    (folder / "again").symlink_to(folder / "sub", target_is_directory=True)  # a second way in
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")
    (folder / "self.png").symlink_to(folder / "self.png")
    walk = walk_directory(folder)
    assert walk.files == ["again/a.png", "gone.png", "self.png"]  # "again" sorts before "sub"
    assert walk.repeats == {"again/up": "", "sub": "again"}
    code, out, _ = run(capsys, "predict", str(folder), "-m", str(trained / "last.pt"),
                       "--format", "json", "--workers", "0")
    errors = {Path(r["file"]).name: r.get("error") for r in json.loads(out)}
    assert code == 1 and errors["a.png"] is None
    assert "dangling symbolic link" in errors["gone.png"] and "loop" in errors["self.png"]


def test_two_class_folders_linked_to_one_folder_are_an_error(tmp_path):
    (tmp_path / "real").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "real" / "a.png")
    (tmp_path / "data").mkdir()
    for name in ("cat", "kitten"):
        (tmp_path / "data" / name).symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(DataError, match=r"kitten: the same folder as .*cat \(through a symbolic link\)"):
        split_from_tree(open_tree(str(tmp_path / "data"), None), "")
