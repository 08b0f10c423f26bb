"""Variant `bn` is torchvision's googlenet: same state_dict, same logits (the minGPT-style parity test)."""

import pytest
import torch
import torchvision

from googlenet import build_model
from googlenet.data.preprocessing import preset
from googlenet.data.transforms import Normalize


def torchvision_googlenet(**kwargs):
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, init_weights=True, **kwargs)
    with torch.no_grad():  # non-trivial BN statistics, so that a mix-up would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model


def shapes(state_dict):
    return {name: tuple(t.shape) for name, t in state_dict.items()}


@pytest.mark.parametrize("aux_logits", [True, False])
def test_state_dict_names_and_shapes_are_torchvisions(aux_logits):
    ours = build_model("bn", aux_logits=aux_logits).state_dict()
    theirs = torchvision_googlenet(aux_logits=aux_logits).state_dict()
    assert shapes(ours) == shapes(theirs)


@pytest.mark.parametrize("aux_logits", [True, False])
def test_same_weights_same_logits_in_eval_mode(aux_logits):
    reference = torchvision_googlenet(aux_logits=aux_logits).eval()
    ours = build_model("bn", aux_logits=aux_logits)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        difference = (ours(x) - reference(x)).abs().max().item()
    assert difference <= 1e-5


def test_training_outputs_match_including_aux_heads():
    reference = torchvision_googlenet().train()
    ours = build_model("bn")
    ours.load_state_dict(reference.state_dict())
    ours.train()
    x = torch.randn(2, 3, 224, 224)
    torch.manual_seed(5)  # dropout draws happen in the same order: aux1, aux2, main head
    expected = reference(x)
    torch.manual_seed(5)
    logits, (aux_4a, aux_4d) = ours.forward_train(x)
    torch.testing.assert_close(logits, expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(aux_4a, expected.aux_logits1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(aux_4d, expected.aux_logits2, rtol=1e-4, atol=1e-5)


def test_transform_input_equals_our_normalisation():
    """torchvision's ImageNet weights use transform_input=True; we normalise with 0.5/0.5."""
    reference = torchvision_googlenet(transform_input=True).eval()
    ours = build_model("bn")
    ours.load_state_dict(reference.state_dict())
    ours.eval()
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(Normalize(preset("imagenet"))(images))
        got = ours(Normalize(preset("inception"))(images))
    assert (got - expected).abs().max().item() <= 1e-4
