"""Learning-rate schedules, including the paper's 4% every 8 epochs."""

import pytest
import torch

from googlenet.training.config import OptimConfig
from googlenet.training.schedule import build_scheduler, lr_factor


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
