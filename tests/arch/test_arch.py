"""The table itself: it mirrors the paper's Table 1 and resolves into layers per variant."""

import pytest

from googlenet.arch.table import (
    TABLE_1,
    VARIANTS,
    ConvLayer,
    InceptionRow,
    LRNLayer,
    MaxPoolLayer,
    get_variant,
    layer_plan,
    module_names,
)


def test_table_has_the_papers_rows_in_order():
    names = [row.name for row in TABLE_1]
    assert names[:2] == ["convolution", "max pool"]
    assert [n for n in names if n.startswith("inception")] == [
        f"inception ({k})" for k in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
    assert names[-4:] == ["avg pool", "dropout (40%)", "linear", "softmax"]


def test_inception_output_depth_is_the_sum_of_its_branches():
    for row in TABLE_1:
        if isinstance(row, InceptionRow):
            assert row.out_channels == row.printed.output_size[2], row.name


def test_module_names_follow_torchvision():
    flat = [name for names in module_names() for name in names]
    assert flat[:6] == ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a"]
    assert "maxpool4" in flat and flat[-3:] == ["avgpool", "dropout", "fc"]


def test_paper_plan_has_lrn_after_first_pool_and_after_the_3x3_conv():
    flat = [layer for planned in layer_plan(VARIANTS["paper"]) for layer in planned.layers]
    names = [layer.name for layer in flat]
    assert names[:7] == ["conv1", "maxpool1", "lrn1", "conv2", "conv3", "lrn2", "maxpool2"]
    assert sum(isinstance(layer, LRNLayer) for layer in flat) == 2


def test_bn_plan_has_torchvisions_departures():
    flat = {layer.name: layer for planned in layer_plan(VARIANTS["bn"]) for layer in planned.layers}
    assert not any(isinstance(layer, LRNLayer) for layer in flat.values())
    assert isinstance(flat["maxpool4"], MaxPoolLayer) and flat["maxpool4"].kernel == 2
    assert flat["inception3a"].branch3_kernel == 3
    assert isinstance(flat["conv3"], ConvLayer) and flat["conv3"].in_channels == 64


def test_unknown_variant_is_a_value_error():
    with pytest.raises(ValueError, match="unknown variant 'resnet'"):
        get_variant("resnet")
