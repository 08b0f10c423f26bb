"""Polyak averaging as an exponential moving average."""

import torch

from googlenet.training.averaging import ModelEma


def test_ema_tracks_the_weights_and_batch_norm_statistics_with_warmup():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.9)
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


def test_ema_state_round_trip():
    model = torch.nn.Linear(3, 1)
    ema = ModelEma(model, decay=0.99)
    for _ in range(3):
        ema.update(model)
    other = ModelEma(torch.nn.Linear(3, 1), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 3
    torch.testing.assert_close(other.module.weight, ema.module.weight)
