"""Recipes, overrides and the resolved configuration."""

from dataclasses import fields

import pytest
import yaml

from googlenet.data.config import DataConfig, data_config_from_dict, upgrade_config
from googlenet.errors import ConfigError
from googlenet.training.config import (
    SCALED_WARMUP_EPOCHS,
    SECTION_TYPES,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    field_owner,
    load_recipe,
    recipe_names,
    resolve_optim,
    with_overrides,
)


def test_bundled_recipes_load():
    assert {"paper", "fast"} <= set(recipe_names())
    for name in recipe_names():
        assert isinstance(load_recipe(name), TrainConfig)


def test_paper_recipe_is_the_papers():
    paper = load_recipe("paper")
    assert paper.model.variant == "paper" and paper.model.aux_weight == 0.3
    assert (paper.optim.optimizer, paper.optim.momentum) == ("sgd", 0.9)
    assert (paper.optim.schedule, paper.optim.step_epochs, paper.optim.gamma) == ("step", 8, 0.96)
    assert (paper.optim.weight_decay, paper.optim.batch_size) == (2e-4, 32)
    assert paper.optim.averaging == "polyak"  # Sec. 6: "Polyak averaging [13]"
    assert (paper.augment.policy, paper.augment.scale) == ("paper", (0.08, 1.0))
    assert paper.augment.ratio == pytest.approx((3 / 4, 4 / 3))
    # BVLC's train_val.prototxt and solver.prototxt
    assert paper.optim.bias_lr_scale == 2.0 and paper.data.preprocess == "caffe"
    assert (paper.optim.lr, paper.optim.lr_scaling, paper.optim.reference_batch_size) == (
        0.01, "linear", 32)


def test_linear_scaling_from_the_reference_batch_with_a_warm_up():
    optim = load_recipe("paper").optim
    one = resolve_optim(optim, world_size=1)
    assert (one.global_batch_size, one.lr, one.warmup_epochs) == (32, 0.01, 0.0)
    eight = resolve_optim(optim, world_size=8)  # 8 GPUs x 32 = 256: 8 x BVLC's rate
    assert (eight.global_batch_size, eight.lr, eight.warmup_epochs) == (256, pytest.approx(0.08),
                                                                        SCALED_WARMUP_EPOCHS)
    assert (one.warmup_start, eight.warmup_start) == (0.0, 1 / 8)  # Goyal: from 0.01 up to 0.08
    unscaled = resolve_optim(load_recipe("fast").optim, world_size=8)
    assert unscaled.lr == load_recipe("fast").optim.lr


def test_every_field_has_help_text_and_reads_naturally():
    for cls in SECTION_TYPES.values():
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
    assert "augment" not in {f.name for f in fields(SECTION_TYPES["augment"])}
    assert "data" not in {f.name for f in fields(SECTION_TYPES["data"])}


def test_names_of_older_runs_are_read():
    values = config_to_dict(TrainConfig())
    values["data"]["data"] = values["data"].pop("path")
    values["augment"]["augment"] = values["augment"].pop("policy")
    values["resolved"] = {"lr": 1.0}
    assert config_from_dict(values) == TrainConfig()


def test_older_names_are_upgraded_in_one_place_for_both_readers():
    old = {"data": {"data": "digits", "input_size": 48}, "augment": {"augment": "none"},
           "optim": {"lr": 0.1}}
    assert upgrade_config(old) == {"data": {"path": "digits", "input_size": 48},
                                   "augment": {"policy": "none"}, "optim": {"lr": 0.1}}
    assert config_from_dict(old).data == data_config_from_dict(old["data"]) == DataConfig(input_size=48)
    assert config_from_dict(old).augment.policy == "none"


@pytest.mark.parametrize("read", [
    lambda data, where: config_from_dict({"data": data}, where),
    lambda data, where: data_config_from_dict(data, where),
], ids=["config_from_dict", "data_config_from_dict"])
def test_unknown_fields_are_refused_by_both_readers_alike(read):
    with pytest.raises(ConfigError, match=r"^runs/x/last.pt: unknown field\(s\) in section 'data': "
                                          r"colour, size$"):
        read({"path": "digits", "size": 3, "colour": "red"}, "runs/x/last.pt")


def test_overrides_are_typed():
    config = with_overrides(load_recipe("paper"), {
        "lr": "0.1", "epochs": "3", "variant": "bn", "channels_last": False, "scale": "0.2,1",
        "output": "runs/x"})
    assert config.optim.lr == 0.1 and config.optim.epochs == 3 and config.model.variant == "bn"
    assert config.run.channels_last is False and config.augment.scale == (0.2, 1.0)
    assert config.run.output == "runs/x"


def test_field_names_are_unique_across_sections():
    assert len(field_owner()) > 40  # every field has one flag


def test_round_trip_through_yaml(tmp_path):
    config = with_overrides(load_recipe("fast"), {"seed": "7"})
    path = tmp_path / "copy.yaml"
    path.write_text(dump_yaml(config))
    assert load_recipe(str(path)) == config
    assert config_from_dict(yaml.safe_load(dump_yaml(config))) == config
    assert config_to_dict(config)["run"]["seed"] == 7


@pytest.mark.parametrize("overrides,message", [
    ({"lr": "fast"}, "optim.lr: expected float"),
    ({"epochs": "2.5"}, "optim.epochs: expected int"),
    ({"variant": "vgg"}, "model.variant must be one of paper, bn"),
    ({"schedule": "linear"}, "optim.schedule must be one of"),
    ({"batch_size": "0"}, "optim.batch_size must be positive"),
    ({"scale": "0.1"}, "expected 2 comma-separated values"),
    ({"learning_rate": "0.1"}, "unknown configuration field 'learning_rate'"),
])
def test_bad_overrides_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        with_overrides(load_recipe("paper"), overrides)


def test_bad_recipes_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe 'slow'"):
        load_recipe("slow")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recipe(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 0.1\n  sped: 3\n")
    with pytest.raises(ValueError, match="unknown field.*sped"):
        load_recipe(str(bad))
    bad.write_text("optimizer: {lr: 0.1}\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_recipe(str(bad))


def test_paper_recipe_distorts_as_howard_and_flips_as_bvlc():
    augment = load_recipe("paper").augment
    assert (augment.photometric, augment.pca_lighting) == ("howard", 0.1)  # Sec. 6 -> Howard 2013
    assert augment.strengths_set() == []  # Howard's factors are fixed: [0.5, 1.5]
    assert augment.hflip == 0.5  # BVLC train_val.prototxt, mirror: true
    finetune = load_recipe("finetune").augment
    assert finetune.photometric == "jitter" and finetune.jitter_strengths()["brightness"] == 0.4


def test_older_augment_sections_keep_their_color_jitter():
    values = config_to_dict(TrainConfig())
    del values["augment"]["photometric"]
    assert config_from_dict(values).augment.photometric == "howard"  # nothing set: the default
    values["augment"].update(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0)  # googlenet 0.1
    assert config_from_dict(values).augment.photometric == "jitter"
    values["augment"]["photometric"] = "howard"  # said explicitly: kept (and refused when training)
    assert config_from_dict(values).augment.photometric == "howard"
