from __future__ import annotations

import pytest
import torch

from mclab import models


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "resnet18"])
def test_zoo_matches_published_metadata(name):
    zm = models.zoo(name)
    assert sum(p.numel() for p in zm.module.parameters()) == zm.published_params
    assert zm.input_shape == (1, 3, 224, 224) and zm.published_top1 > 50
    with torch.inference_mode():
        assert zm.module(zm.example_inputs(batch=2)).shape == (2, 1000)


def test_zoo_uses_evaluation_resolution_and_rejects_unknown():
    assert models.zoo("inception_v3").input_shape[-1] == 299
    with pytest.raises(ValueError, match="not a torchvision classifier"):
        models.zoo("resnet19")
    with pytest.raises(ValueError, match="batch"):
        models.zoo("resnet18").example_inputs(batch=0)
