"""The README's promise for `make demo`: the paper variant learns the digits (slow: minutes)."""

import pytest

from googlenet.training.config import load_recipe, with_overrides
from googlenet.training.loop import train


@pytest.mark.slow
def test_demo_reaches_95_percent_on_digits(tmp_path):
    config = with_overrides(load_recipe("digits"), {"output": str(tmp_path / "run"), "quiet": True})
    assert config.model.variant == "paper"
    result = train(config)
    assert result.best_top1 >= 0.95
