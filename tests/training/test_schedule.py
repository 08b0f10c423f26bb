"""Learning-rate schedules: the paper's 4% every 8 epochs, Goyal's warm-up."""

import pytest
import torch

from googlenet.training.config import OptimConfig, load_recipe, resolve_optim, with_overrides
from googlenet.training.schedule import build_scheduler, lr_factor

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012's training set


def factor(step, **overrides):
    settings = dict(steps_per_epoch=10, epochs=40, schedule="step", step_epochs=8, gamma=0.96,
                    warmup_epochs=0, min_lr_ratio=0.0)
    settings.update(overrides)
    return lr_factor(step, **settings)


def test_step_schedule_cuts_4_percent_every_8_epochs():
    assert factor(0) == 1.0
    assert factor(79) == 1.0  # still epoch 7.9
    assert factor(80) == pytest.approx(0.96)
    assert factor(160) == pytest.approx(0.96**2)


def test_cosine_and_onecycle_with_warmup():
    assert factor(0, schedule="cosine", warmup_epochs=2) == pytest.approx(1e-3)
    assert factor(10, schedule="cosine", warmup_epochs=2) == pytest.approx(0.5)
    assert factor(20, schedule="cosine", warmup_epochs=2) == pytest.approx(1.0)
    assert factor(400, schedule="cosine", min_lr_ratio=0.1) == pytest.approx(0.1)
    assert factor(20, schedule="onecycle", warmup_epochs=2) == pytest.approx(1.0)
    assert factor(210, schedule="onecycle", warmup_epochs=2) == pytest.approx(0.5)


def test_scheduler_sets_the_optimizer_rate_per_step():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.01, step_epochs=1), steps_per_epoch=2)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0096)


def learning_rates(recipe: str, world_size: int, steps: list[int], **overrides) -> tuple[list, int]:
    """The rates a run of `recipe` on ImageNet trains with at `steps`, and its steps per epoch
    (the training loader drops the last partial batch)."""
    config = with_overrides(load_recipe(recipe), overrides)
    resolved = resolve_optim(config.optim, world_size)
    steps_per_epoch = IMAGENET_TRAIN_IMAGES // resolved.global_batch_size
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=resolved.lr)
    scheduler = build_scheduler(optimizer, config.optim, steps_per_epoch, resolved)
    return [resolved.lr * scheduler.lr_lambdas[0](step) for step in steps], steps_per_epoch


def test_a_scaled_warm_up_starts_from_the_reference_rate():
    """Goyal et al. 2017, Sec. 2.2: from the reference batch's rate, linearly to the scaled one
    over 5 epochs; the step schedule then cuts as before. Unscaled, a warm-up starts from 0."""
    steps_per_epoch = IMAGENET_TRAIN_IMAGES // 256
    steps = [0, 5 * steps_per_epoch // 2, 5 * steps_per_epoch, 8 * steps_per_epoch]
    rates, _ = learning_rates("paper", 8, steps)
    assert rates == pytest.approx([0.01, 0.045, 0.08, 0.08 * 0.96], rel=1e-3)
    unscaled, _ = learning_rates("paper", 1, [0, 5000], warmup_epochs="1", lr_scaling="none")
    assert unscaled[0] == 0.0 and unscaled[1] == pytest.approx(0.01 * 5000 / 40036)
