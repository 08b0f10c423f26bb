"""Learning-rate schedules: the paper's 4% every 8 epochs, BVLC's poly, Goyal's warm-up."""

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


def test_bvlc_quick_is_caffes_poly_formula_at_batch_32():
    """quick_solver.prototxt: lr = base_lr (1 - iter / max_iter) ^ power, base_lr 0.01, power 0.5."""
    max_iter = 60 * (IMAGENET_TRAIN_IMAGES // 32)  # 2,402,160 iterations of 32: 60 epochs
    steps = [0, 1, max_iter // 2, 1_999_999, max_iter - 1]
    rates, _ = learning_rates("bvlc-quick", 1, steps)
    assert rates == pytest.approx([0.01 * (1 - it / max_iter) ** 0.5 for it in steps], rel=1e-12)
    assert rates[0] == 0.01 and rates[2] == pytest.approx(0.01 * 0.5 ** 0.5)
    assert 0 < rates[-1] < 1e-5  # Caffe's last iteration, max_iter - 1, is not quite 0


def test_bvlc_quick_scaled_to_a_global_batch_of_256():
    """8 processes x 32: lr 0.08 over 60 epochs of 5,004 steps of 256, after Goyal's warm-up
    (5 epochs, from the reference batch's 0.01)."""
    max_iter = 60 * (IMAGENET_TRAIN_IMAGES // 256)
    warm, middle = 5 * (IMAGENET_TRAIN_IMAGES // 256), max_iter // 2
    steps = [0, warm // 2, warm, middle, max_iter - 1]
    rates, steps_per_epoch = learning_rates("bvlc-quick", 8, steps)
    assert steps_per_epoch == 5004

    def poly(it: int) -> float:
        return 0.08 * (1 - it / max_iter) ** 0.5
    assert rates[0] == pytest.approx(0.01)
    assert rates[1] == pytest.approx((0.01 + 0.07 * (warm // 2) / warm) * (1 - (warm // 2) / max_iter) ** 0.5)
    assert rates[2:] == pytest.approx([poly(it) for it in steps[2:]], rel=1e-12)
    one_process, _ = learning_rates("bvlc-quick", 1, [0, 7], batch_size="256")
    assert one_process == pytest.approx(rates[:1] + [(0.01 + 0.07 * 7 / warm) * (1 - 7 / max_iter) ** 0.5])


def test_a_scaled_warm_up_starts_from_the_reference_rate():
    """Goyal et al. 2017, Sec. 2.2: from the reference batch's rate, linearly to the scaled one
    over 5 epochs; the step schedule then cuts as before. Unscaled, a warm-up starts from 0."""
    steps_per_epoch = IMAGENET_TRAIN_IMAGES // 256
    steps = [0, 5 * steps_per_epoch // 2, 5 * steps_per_epoch, 8 * steps_per_epoch]
    rates, _ = learning_rates("paper", 8, steps)
    assert rates == pytest.approx([0.01, 0.045, 0.08, 0.08 * 0.96], rel=1e-3)
    unscaled, _ = learning_rates("paper", 1, [0, 5000], warmup_epochs="1", lr_scaling="none")
    assert unscaled[0] == 0.0 and unscaled[1] == pytest.approx(0.01 * 5000 / 40036)


def test_poly_power_one_is_a_linear_decay_to_zero():
    assert factor(0, schedule="poly") == 1.0
    assert factor(100, schedule="poly") == pytest.approx(0.75)  # 100 of 400 steps
    assert factor(100, schedule="poly", power=0.5) == pytest.approx(0.75 ** 0.5)
    assert factor(400, schedule="poly") == 0.0 and factor(500, schedule="poly") == 0.0
