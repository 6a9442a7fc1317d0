"""mclab.llm.train: training, the checkpoint cache, config checks."""
from __future__ import annotations

import math

import pytest
import torch

from mclab import llm


def test_training_lowers_loss_and_the_checkpoint_is_cached(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MCLAB_CACHE", str(tmp_path))
    cfg = llm.LMTrainConfig(model=tiny, steps=30, batch_size=4, seq_len=64, warmup=5, lr=3e-3)
    r1 = llm.pretrained(cfg, progress=False)
    assert isinstance(r1, llm.LMTrainResult) and isinstance(r1.model, llm.TinyLlama) and not r1.model.training
    assert not r1.from_cache and r1.path.startswith(str(tmp_path))
    assert sum(r1.losses[-5:]) / 5 < r1.losses[0] - 1.0  # from ~ln 256 = 5.5 nats to well below
    assert r1.losses[0] == pytest.approx(math.log(256), abs=0.3)
    assert r1.val_perplexity < 100
    assert "model" not in r1.as_dict() and r1.as_dict()["n_params"] == r1.model.n_params()
    r2 = llm.pretrained(cfg, progress=False)
    assert r2.from_cache and r2.val_perplexity == r1.val_perplexity
    assert all(torch.equal(a, b) for a, b in zip(r1.model.state_dict().values(), r2.model.state_dict().values(),
                                                 strict=True))
    assert cfg.key("x") != llm.LMTrainConfig(model=tiny, steps=31, batch_size=4, seq_len=64, warmup=5).key("x")


def test_train_config_validation(tiny):
    with pytest.raises(ValueError, match="seq_len=1000 exceeds the model's max_seq_len=96"):
        llm.LMTrainConfig(model=tiny, seq_len=1000)
    with pytest.raises(TypeError, match="model must be a LlamaConfig"):
        llm.LMTrainConfig(model={"dim": 64})


def test_recipe_scales_the_warmup_with_the_steps():
    assert llm.LMTrainConfig.recipe(llm.FAST_LLAMA, 60) == llm.LMTrainConfig(model=llm.FAST_LLAMA, steps=60, warmup=12)
    assert llm.LMTrainConfig.recipe(llm.LlamaConfig(), 400).warmup == llm.LMTrainConfig().warmup  # capped: default
    with pytest.raises(ValueError, match="steps=0 must be a positive int"):
        llm.LMTrainConfig.recipe(llm.FAST_LLAMA, 0)
