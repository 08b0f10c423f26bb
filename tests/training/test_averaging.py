"""Sec. 6's Polyak averaging: a uniform average of the iterates, or an EMA."""

import pytest
import torch

from googlenet.errors import ConfigError
from googlenet.training.averaging import ModelAverage, build_average
from googlenet.training.config import OptimConfig


def test_ema_tracks_the_weights_and_batch_norm_statistics_with_warmup():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelAverage(model, "ema", decay=0.9)
    start = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model)  # decay min(0.9, 2/11)
    expected = start + (1 - 2 / 11) * 1.0
    torch.testing.assert_close(ema.module[0].weight, expected)
    torch.testing.assert_close(ema.module[1].running_mean, torch.full((2,), 3.0 * (1 - 2 / 11)))
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_polyak_is_the_mean_of_the_iterates():
    """Polyak and Juditsky 1992: after t updates, the mean of the t iterates (not the start)."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = ModelAverage(model, "polyak")
    iterates = [torch.randn(2, 3, generator=torch.Generator().manual_seed(i)) for i in range(7)]
    for i, weight in enumerate(iterates):
        with torch.no_grad():
            model[0].weight.copy_(weight)
            model[1].running_var.fill_(float(i))
        average.update(model)
    torch.testing.assert_close(average.module[0].weight, torch.stack(iterates).mean(0))
    torch.testing.assert_close(average.module[1].running_var, torch.full((2,), 3.0))  # 0..6
    torch.testing.assert_close(average.module[0].bias, model[0].bias)  # constant: itself


def test_state_round_trip_and_a_kind_that_differs_is_refused():
    model = torch.nn.Linear(3, 1)
    average = ModelAverage(model, "polyak")
    for _ in range(3):
        average.update(model)
    other = ModelAverage(torch.nn.Linear(3, 1), "polyak")
    other.load_state_dict(average.state_dict())
    assert other.updates == 3 and other.weight() == pytest.approx(1 / 3)
    torch.testing.assert_close(other.module.weight, average.module.weight)
    with pytest.raises(ConfigError, match="holds a polyak average"):
        ModelAverage(model, "ema", 0.99).load_state_dict(average.state_dict())
    older = {k: v for k, v in ModelAverage(model, "ema", 0.99).state_dict().items() if k != "kind"}
    ModelAverage(model, "ema", 0.99).load_state_dict(older)  # written before `kind`: an EMA


def test_the_config_chooses_the_average():
    model = torch.nn.Linear(3, 1)
    assert build_average(model, OptimConfig(averaging="none")) is None
    assert build_average(model, OptimConfig(averaging="ema", ema_decay=0.0)) is None
    assert build_average(model, OptimConfig(averaging="polyak", ema_decay=0.0)).kind == "polyak"
    ema = build_average(model, OptimConfig(averaging="ema", ema_decay=0.99))
    assert (ema.kind, ema.decay) == ("ema", 0.99)


def batch_norm_parts():
    from types import SimpleNamespace

    from googlenet.runtime.device import Precision

    return SimpleNamespace(device=torch.device("cpu"), channels_last=False,
                           precision=Precision("cpu", None))


def test_batch_norm_statistics_are_estimated_for_the_weights_evaluated():
    """The running averages describe earlier weights; the estimate is the statistics of the
    given batches under the current weights (a cumulative mean), with dropout off and the
    random stream untouched, and the momentum kept for training."""
    from googlenet.training.engine import estimate_batch_norm

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4),
                                torch.nn.Dropout(0.5))
    model[1].running_mean.fill_(1000.0)  # stale: as after a fast-moving first epoch
    batches = [torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    with torch.no_grad():
        outputs = torch.cat([model[0](b) for b in batches[:3]])  # count=3: the fourth is unused
    before = torch.get_rng_state()
    used = estimate_batch_norm(model, ((b, torch.zeros(5), []) for b in batches),
                               batch_norm_parts(), count=3)
    assert used == 3
    assert torch.equal(torch.get_rng_state(), before)
    mean = outputs.mean((0, 2, 3))
    torch.testing.assert_close(model[1].running_mean, mean)
    # a cumulative mean of each batch's unbiased variance, as BatchNorm keeps it
    variances = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outputs.split(5)])
    torch.testing.assert_close(model[1].running_var, variances.mean(0))
    assert model[1].momentum == 0.1 and model.training


def test_no_batches_or_no_batch_norm_leave_the_statistics():
    from googlenet.training.engine import estimate_batch_norm

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).eval()
    model[1].running_mean.fill_(7.0)
    assert estimate_batch_norm(model, iter(()), batch_norm_parts(), count=8) == 0
    assert torch.equal(model[1].running_mean, torch.full((4,), 7.0)) and not model.training
    empty = (torch.zeros(0, 3, 2, 2), torch.zeros(0), ["bad.jpg"])
    assert estimate_batch_norm(model, iter([empty]), batch_norm_parts(), count=8) == 0
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))
    assert estimate_batch_norm(plain, iter([empty]), batch_norm_parts(), count=8) == 0
