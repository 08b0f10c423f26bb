"""`googlenet train --data FOLDER` picks a recipe that suits the images given, and says which."""

import pytest
from PIL import Image

from googlenet.cli.train import default_recipe
from googlenet.training.config import check_config, load_recipe


def image_folder(root, side: tuple[int, int]):
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", side, (40 * i, 90, 160)).save(root / split / name / f"{i}.jpg")
    return root


@pytest.mark.parametrize(("side", "recipe", "why"), [
    ((500, 375), "photos", "photographs (375 px typical shorter side)"),
    ((32, 32), "fast", "small images (32 px typical shorter side), trained at 32x32 as CIFAR-10"),
])
def test_photographs_get_the_photos_recipe_and_thumbnails_fast(tmp_path, side, recipe, why):
    folder = image_folder(tmp_path / "mine", side)
    assert default_recipe({"path": str(folder)}) == (recipe, why)


def test_the_other_defaults_and_the_photos_recipe_itself():
    assert default_recipe({}) == ("digits", "the built-in digits")
    assert default_recipe({"weights": "imagenet", "path": "x"}) == ("finetune", "fine-tuning imagenet")
    assert default_recipe({"path": "digits"})[0] == "fast"
    photos = load_recipe("photos")
    check_config(photos)
    assert photos.data.input_size == 128 and photos.augment.policy == "paper"
    assert load_recipe("fast").data.input_size == 32  # 32x32 data such as CIFAR-10 keeps it


def test_unreadable_or_hostile_files_do_not_stop_the_choice(tmp_path):
    folder = image_folder(tmp_path / "mine", (500, 375))
    (folder / "train" / "cat" / "torn.jpg").write_bytes(b"\xff\xd8\xff not the rest")
    bomb = folder / "train" / "dog" / "bomb.png"  # 30000 x 30000 in its header: refused unread
    Image.new("1", (30000, 30000)).save(bomb)
    assert default_recipe({"path": str(folder)})[0] == "photos"
