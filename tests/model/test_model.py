"""The built network: variants, the one return type, the training method, bad arguments."""

import pytest
import torch
from torch import nn

from googlenet import build_model
from googlenet.arch.table import TABLE_1


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return build_model("paper")


def output_sizes_per_row(model, x):
    """Run the trunk module by module and record the (C, H, W) after each Table 1 row."""
    sizes = []
    for planned in model.plan:
        for module in model.row_modules(planned):
            if isinstance(module, nn.AdaptiveAvgPool2d):
                x = module(x)
            elif isinstance(module, nn.Linear):
                x = module(torch.flatten(x, 1))[:, :, None, None]
            else:
                x = module(x)
        sizes.append((x.shape[2], x.shape[3], x.shape[1]))
    return sizes


def test_built_model_output_sizes_after_every_row_at_224(paper):
    with torch.no_grad():
        sizes = output_sizes_per_row(paper.eval(), torch.randn(1, 3, 224, 224))
    assert sizes == [row.printed.output_size for row in TABLE_1]


def test_paper_variant_is_as_published(paper):
    modules = list(paper.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)
    lrns = [m for m in modules if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 2
    assert all((m.size, m.alpha, m.beta, m.k) == (5, 1e-4, 0.75, 1.0) for m in lrns)
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    assert all(m.bias is not None for m in convs)
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert paper.dropout.p == 0.4 and paper.aux1.dropout.p == 0.7
    assert all(p.ceil_mode for p in modules if isinstance(p, nn.MaxPool2d))


def test_paper_initialisation_follows_bvlc(paper):
    assert torch.all(paper.conv1.conv.bias == 0.2)
    assert torch.all(paper.aux1.fc1.bias == 0.2)
    assert torch.all(paper.fc.bias == 0) and torch.all(paper.aux2.fc2.bias == 0)
    bound = (3 / (3 * 7 * 7)) ** 0.5  # Caffe's xavier: U(+-sqrt(3 / fan_in))
    weight = paper.conv1.conv.weight
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


@pytest.mark.parametrize("variant", ["paper", "bn"])
def test_forward_returns_logits_in_train_and_eval_mode(variant):
    model = build_model(variant, num_classes=7)
    x = torch.randn(2, 3, 64, 64)
    for training in (True, False):
        model.train(training)
        out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 7)


def test_forward_train_gives_aux_logits_and_gradients_reach_both_heads(paper):
    paper.train()
    logits, aux = paper.forward_train(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 1000) and [a.shape for a in aux] == [(2, 1000), (2, 1000)]
    target = torch.tensor([1, 2])
    loss = nn.functional.cross_entropy(logits, target)
    loss = loss + 0.3 * sum(nn.functional.cross_entropy(a, target) for a in aux)
    paper.zero_grad()
    loss.backward()
    for head in (paper.aux1, paper.aux2):
        assert head.fc2.weight.grad is not None and head.fc2.weight.grad.abs().sum() > 0
        assert head.conv.conv.weight.grad.abs().sum() > 0


def test_without_aux_heads_forward_train_gives_none():
    model = build_model("paper", num_classes=3, aux_logits=False)
    assert not hasattr(model, "aux1")
    logits, aux = model.forward_train(torch.randn(1, 3, 32, 32))
    assert logits.shape == (1, 3) and aux == []


@pytest.mark.parametrize("variant,size", [("paper", 31), ("paper", 32), ("paper", 257),
                                          ("bn", 15), ("bn", 100)])
def test_other_input_sizes_work_in_training_and_eval(variant, size):
    model = build_model(variant, num_classes=5)
    logits, aux = model.train().forward_train(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 5) and all(a.shape == (2, 5) for a in aux)
    assert model.eval()(torch.randn(1, 3, size, size + 3)).shape == (1, 5)


@pytest.mark.parametrize("variant", ["paper", "bn"])
def test_channels_last_gives_the_same_logits(variant):
    torch.manual_seed(1)
    model = build_model(variant, num_classes=10).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_forward_features_and_head_follow_timms_contract(paper):
    """timm: forward_features -> the unpooled last map, forward_head pools (pre_logits: stop
    there) and classifies; forward = head(features)."""
    paper.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        maps = paper.forward_features(x)
        assert maps.shape == (2, 1024, 7, 7)
        torch.testing.assert_close(paper.forward_head(maps), paper(x))
        pooled = paper.forward_head(maps, pre_logits=True)
        assert pooled.shape == (2, paper.num_features)
        torch.testing.assert_close(pooled, maps.mean((2, 3)))
        torch.testing.assert_close(paper.fc(pooled), paper(x))
        torch.testing.assert_close(paper.feature_maps(x, ["5b"])["5b"], maps)


def test_reset_classifier_replaces_main_and_aux_classifiers():
    model = build_model("bn")
    model.reset_classifier(12)
    assert model.fc.out_features == 12 and model.aux1.fc2.out_features == 12
    assert model.aux2.fc2.out_features == 12
    logits, aux = model.train().forward_train(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 12) and aux[1].shape == (2, 12)


@pytest.mark.parametrize("kwargs,message", [
    ({"variant": "inception-v3"}, "unknown variant"),
    ({"num_classes": 0}, "num_classes must be a positive integer"),
    ({"num_classes": -3}, "num_classes must be a positive integer"),
    ({"num_classes": 2.5}, "num_classes must be a positive integer"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)


@pytest.mark.parametrize("variant,shape,message", [
    ("paper", (1, 3, 30, 30), "below the minimum size 31x31"),
    ("bn", (1, 3, 14, 64), "below the minimum size 15x15"),
    ("paper", (1, 1, 224, 224), r"\(N, 3, H, W\)"),
    ("paper", (1, 4, 224, 224), r"\(N, 3, H, W\)"),
    ("paper", (3, 224, 224), r"\(N, 3, H, W\)"),
])
def test_bad_inputs_raise_value_error(variant, shape, message):
    model = build_model(variant).eval()
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))
    with pytest.raises(ValueError, match=message):
        model.forward_train(torch.randn(*shape))


@pytest.mark.parametrize("size", [5, 4])  # the paper's, and an even window (asymmetric)
def test_local_response_norm_computes_what_pytorchs_does_with_its_gradient(size):
    from googlenet.model.layers import LocalResponseNorm

    theirs, ours = nn.LocalResponseNorm(size, 1e-2, 0.75, 1.0), LocalResponseNorm(size, 1e-2, 0.75, 1.0)
    x = (torch.randn(2, 9, 4, 5, dtype=torch.float64) * 3).requires_grad_()
    torch.testing.assert_close(ours(x), theirs(x))
    grad = torch.randn(2, 9, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours(x), x, grad)[0],
                               torch.autograd.grad(theirs(x), x, grad)[0])
    assert torch.autograd.gradcheck(lambda t: ours(t), (x[:1, :, :2, :2].detach().clone().requires_grad_(),))
    channels_last = x.detach().float().to(memory_format=torch.channels_last).requires_grad_()
    y = ours(channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, theirs(channels_last))
    with torch.no_grad():  # inference: the plain ops, as an export traces them
        torch.testing.assert_close(ours(x), theirs(x))


def test_local_response_norm_runs_in_float32_under_bf16():
    """In bf16, 1 + alpha * mean(x^2) rounds to 1 (resolution 1/128): LRN would do nothing."""
    from googlenet.model.layers import LocalResponseNorm

    lrn = LocalResponseNorm(5, 1e-4, 0.75, 1.0)
    x = (torch.rand(2, 8, 3, 3) * 20).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lrn(x.bfloat16())
    assert y.dtype == torch.bfloat16
    exact = nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)(x.bfloat16().float())
    torch.testing.assert_close(y.float(), exact, rtol=1 / 128, atol=0)  # one bf16 rounding
    assert not torch.equal(y, x.bfloat16())  # it normalizes: x^2 up to 400 gives d up to 1.04
    y.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
