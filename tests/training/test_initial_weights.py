"""Sec. 7's ensemble protocol: the initial weights have a seed of their own (--init-seed) apart
from the sampling's (--seed), and --init-from starts a run from another run's initial weights
or from a weights file's, so that seven runs share one initialisation and differ in sampling."""

from __future__ import annotations

import pytest
import torch
import yaml

from googlenet.cli.main import main
from googlenet.errors import ConfigError
from googlenet.training.assembly import make_model, resolve_init_from
from googlenet.training.config import load_recipe, with_overrides

CPU = torch.device("cpu")
QUICK = ["--variant", "bn", "--epochs", "1", "--batch-size", "256", "--workers", "0", "--quiet",
         "--amp", "off", "--max-steps", "1", "--no-aux-logits"]


def initial_state(**overrides) -> dict[str, torch.Tensor]:
    config = with_overrides(load_recipe("digits"), {"variant": "bn", **overrides})
    config, initial = resolve_init_from(config)
    return make_model(config, 10, CPU, initial=initial).state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_init_seed_alone_decides_the_initial_weights():
    shared = initial_state(seed="1", init_seed="7")
    assert same(shared, initial_state(seed="2", init_seed="7"))  # another sampling seed
    assert not same(shared, initial_state(seed="1", init_seed="8"))  # the check can fail
    assert same(initial_state(seed="3"), initial_state(seed="5", init_seed="3"))  # default: --seed


def test_runs_record_both_seeds_and_start_from_anothers_initial_weights(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--output-dir", str(first), *QUICK, "--seed", "1", "--init-seed", "7"]) == 0
    assert "initial weights from init seed 7, sampling from seed 1" in capsys.readouterr().out
    recorded = yaml.safe_load((first / "config.yaml").read_text())
    assert recorded["run"]["seed"] == 1 and recorded["run"]["init_seed"] == 7
    assert recorded["resolved"]["init_seed"] == 7
    # the second run names the first instead of its seed
    assert main(["train", "--output-dir", str(second), "--init-from", str(first), "--seed", "2",
                 *QUICK]) == 0
    again = yaml.safe_load((second / "config.yaml").read_text())
    assert again["run"]["init_seed"] == 7 and again["model"]["variant"] == "bn"
    assert again["model"]["init_from"] == str(first)
    assert same(initial_state(init_from=str(first), seed="2"),
                initial_state(init_seed="7", aux_logits=False))  # the heads follow the run
    with pytest.raises(ConfigError, match="contradicts --init-from"):
        initial_state(init_from=str(first), init_seed="8")
    with pytest.raises(ConfigError, match="that run's variant is 'bn', this one's 'paper'"):
        initial_state(init_from=str(first), variant="paper")


def test_a_weights_file_gives_its_weights_exactly_or_a_clear_error(tmp_path):
    from googlenet import build_model
    from googlenet.artifact.files import save_safetensors
    from googlenet.artifact.record import Artifact
    from googlenet.data.preprocessing import preset

    def save(model, classes, path):
        return save_safetensors(Artifact("bn", tuple(classes), preset("inception"),
                                         state_dict=model.state_dict()), path)

    torch.manual_seed(123)
    model = build_model("bn", num_classes=10, aux_logits=True)
    path = save(model, [str(i) for i in range(10)], tmp_path / "start.safetensors")
    assert same(initial_state(init_from=str(path), init_seed="1"), model.state_dict())
    other = save(build_model("bn", num_classes=3), "abc", tmp_path / "three.safetensors")
    with pytest.raises(ConfigError, match=r"\(bn, 3 classes\) are not this model's \(bn, 10 "
                                          r"classes\); start from them with --model"):
        initial_state(init_from=str(other))
    with pytest.raises(ConfigError, match="choose one"):
        initial_state(init_from=str(path), weights=str(path))


def test_a_run_whose_record_is_unreadable_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("run: [unclosed\n")
    assert main(["train", "--init-from", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'config.yaml'}: not valid YAML" in err and "Traceback" not in err
