"""Sizes, params and ops computed from the table, checked against the paper and the model."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from googlenet import build_model
from googlenet.arch.costs import (
    PAPER_REDUCTION_EXAMPLE,
    min_input_size,
    module_comparison,
    network_cost,
    pool_output,
)
from googlenet.arch.table import VARIANTS, with_width

PAPER = VARIANTS["paper"]


def test_output_size_of_every_row_at_224_is_table_1s():
    for row_cost in network_cost(PAPER).rows:
        assert row_cost.output_size == row_cost.planned.row.printed.output_size, row_cost.planned.row.name


def test_paper_variant_totals_exactly():
    network = network_cost(PAPER)
    assert network.total.params == 6_998_552
    assert network.total.ops == 1_582_671_872
    assert network.aux.params == 6_379_728


def test_depth_is_22_layers_with_parameters():
    assert sum(r.depth for r in network_cost(PAPER).rows) == 22


@pytest.mark.parametrize("variant,width", [("paper", 1), ("bn", 1), ("paper", 1.25), ("bn", 0.5)])
def test_each_rows_params_equal_the_built_modules(variant, width):
    model = build_model(variant, width=width)
    network = network_cost(with_width(VARIANTS[variant], width))
    for planned, row_cost in zip(model.plan, network.rows):
        built = sum(p.numel() for m in model.row_modules(planned) for p in m.parameters())
        assert row_cost.cost.params == built, planned.row.name
    assert network.total.params + network.aux.params == sum(p.numel() for p in model.parameters())


def measured_ops(model, input_size):
    """Multiply-adds per top-level module, as PyTorch's FLOP counter sees them (2 FLOPs each)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, input_size, input_size))
    per_module = counter.get_flop_counts()
    return {name.split(".")[-1]: sum(ops.values()) // 2
            for name, ops in per_module.items() if name.count(".") == 1}, counter.get_total_flops() // 2


@pytest.mark.parametrize("variant,input_size,width", [("paper", 224, 1), ("bn", 224, 1),
                                                      ("paper", 96, 1), ("paper", 96, 1.5)])
def test_ops_match_pytorchs_flop_counter(variant, input_size, width):
    model = build_model(variant, aux_logits=False, width=width).eval()
    network = network_cost(with_width(VARIANTS[variant], width), input_size)
    per_module, total = measured_ops(model, input_size)
    assert total == network.total.ops
    for planned, row_cost in zip(model.plan, network.rows):
        counted = sum(per_module.get(layer.name, 0) for layer in planned.layers)
        assert counted == row_cost.cost.ops, planned.row.name


def test_minimum_input_sizes():
    assert min_input_size(VARIANTS["bn"]) == 15  # torchvision's documented min_size
    assert min_input_size(PAPER) == 31  # its 3x3 pool before 5a needs more than bn's 2x2
    with pytest.raises(ValueError, match="below the minimum 31"):
        network_cost(PAPER, 30)


def test_pool_output_follows_pytorchs_ceil_mode():
    for size in range(1, 40):
        for kernel, stride in ((3, 2), (2, 2), (3, 1)):
            pool = torch.nn.MaxPool2d(kernel, stride, ceil_mode=True)
            expected = pool_output(size, kernel, stride)
            if expected < 1:
                with pytest.raises(RuntimeError):
                    pool(torch.zeros(1, 1, size, size))
            else:
                assert pool(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_papers_reduction_example():
    c = PAPER_REDUCTION_EXAMPLE
    assert round(c.naive / 1e6, 1) == 173.4
    assert (round(c.reduce_ops / 1e6, 1), round(c.conv_ops / 1e6, 1)) == (14.5, 86.7)
    assert round(c.reduced / 1e6, 1) == 101.2
    assert round(c.saving * 100) == 42


def test_naive_inception_3a_against_the_reduced_one():
    c = module_comparison("3a", PAPER)
    assert c.input_size == (28, 28, 192)
    assert c.naive_channels == 64 + 128 + 32 + 192
    assert c.reduced_channels == 256
    assert c.naive_ops == 28 * 28 * 192 * (64 + 9 * 128 + 25 * 32)
    assert c.reduced_ops == network_cost(PAPER).rows[4].cost.ops
    with pytest.raises(ValueError, match="no Inception module '6a'"):
        module_comparison("6a", PAPER)
