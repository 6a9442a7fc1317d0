"""mclab.llm.train: perplexity and KL divergence by closed form, training, the checkpoint cache, config checks."""
from __future__ import annotations

import math

import pytest
import torch

from mclab import llm


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tiny_model):
    m = tiny_model()
    torch.nn.init.zeros_(m.output.weight)  # all logits 0: every byte equally likely
    tokens = llm.corpus().val[:2000]
    assert llm.perplexity(m, tokens, seq_len=64) == pytest.approx(256, rel=1e-5)
    with pytest.raises(ValueError, match="need more than seq_len=64"):
        llm.perplexity(m, tokens[:10], seq_len=64)


def test_kl_divergence_is_zero_for_the_same_model_and_matches_uniform(tiny_model):
    m, uniform = tiny_model(), tiny_model()
    torch.nn.init.zeros_(uniform.output.weight)
    tokens = llm.corpus().val[:1000]
    assert llm.kl_divergence(m, m, tokens, seq_len=64) == pytest.approx(0, abs=1e-6)
    # KL(reference || model): with the trained-shape model as reference and a uniform model, log 256 - H(reference)
    x = torch.as_tensor(tokens[: 15 * 64], dtype=torch.int64).view(15, 64)
    with torch.no_grad():
        logp = torch.log_softmax(m(x).float(), -1)
    entropy = float(-(logp.exp() * logp).sum(-1).mean())
    assert llm.kl_divergence(m, uniform, tokens, seq_len=64) > 0
    assert llm.kl_divergence(uniform, m, tokens, seq_len=64) == pytest.approx(math.log(256) - entropy, rel=1e-4)


def test_training_lowers_loss_and_the_checkpoint_is_cached(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MCLAB_CACHE", str(tmp_path))
    cfg = llm.TrainConfig(model=tiny, steps=30, batch_size=4, seq_len=64, warmup=5, lr=3e-3)
    r1 = llm.pretrained(cfg, progress=False)
    assert isinstance(r1, llm.TrainResult) and isinstance(r1.model, llm.TinyLlama) and not r1.model.training
    assert not r1.from_cache and r1.path.startswith(str(tmp_path))
    assert sum(r1.losses[-5:]) / 5 < r1.losses[0] - 1.0  # from ~ln 256 = 5.5 nats to well below
    assert r1.losses[0] == pytest.approx(math.log(256), abs=0.3)
    assert r1.val_perplexity < 100
    assert "model" not in r1.as_dict() and r1.as_dict()["n_params"] == r1.model.n_params()
    r2 = llm.pretrained(cfg, progress=False)
    assert r2.from_cache and r2.val_perplexity == r1.val_perplexity
    assert all(torch.equal(a, b) for a, b in zip(r1.model.state_dict().values(), r2.model.state_dict().values(),
                                                 strict=True))
    assert cfg.key("x") != llm.TrainConfig(model=tiny, steps=31, batch_size=4, seq_len=64, warmup=5).key("x")


def test_train_config_validation(tiny):
    with pytest.raises(ValueError, match="seq_len=1000 exceeds the model's max_seq_len=96"):
        llm.TrainConfig(model=tiny, seq_len=1000)
    with pytest.raises(TypeError, match="model must be a LlamaConfig"):
        llm.TrainConfig(model={"dim": 64})


def test_recipe_scales_the_warmup_with_the_steps():
    assert llm.TrainConfig.recipe(llm.FAST_LLAMA, 60) == llm.TrainConfig(model=llm.FAST_LLAMA, steps=60, warmup=12)
    assert llm.TrainConfig.recipe(llm.LlamaConfig(), 400).warmup == llm.TrainConfig().warmup  # capped at the default
    with pytest.raises(ValueError, match="steps=0 must be a positive int"):
        llm.TrainConfig.recipe(llm.FAST_LLAMA, 0)
