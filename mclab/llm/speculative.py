"""Greedy speculative decoding: a small draft model guesses k tokens, the target checks them in one pass.

Decoding a large model is memory-bound: one forward pass reads every weight to produce one token, and a pass over
k + 1 tokens costs about the same. So a cheap *draft* model proposes k tokens one by one, the *target* runs once
over them, and keeps the longest prefix it agrees with plus one token of its own (its correction, or the next token
when all k matched). Every kept token is the target's own greedy choice, so the output is identical to plain greedy
decoding of the target; only the number of target passes changes (Leviathan et al., 2023; Chen et al., 2023).

If each draft token is accepted with probability ``alpha`` (independently) and one draft step costs ``c`` target
steps, one round yields (1 - alpha^(k+1)) / (1 - alpha) tokens for a cost of k c + 1 target steps:
:func:`expected_speedup`. Introduced in notebook 13b.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .generate import as_prompt
from .model import KVCache, TinyLlama

__all__ = ["SpeculativeConfig", "SpeculativeResult", "speculative_generate", "expected_speedup",
           "expected_tokens_per_round"]


@dataclass(frozen=True)
class SpeculativeConfig:
    """How to decode speculatively (greedy only: temperature 0)."""

    k: int = 4  # draft tokens proposed per round, verified in one target pass
    max_new_tokens: int = 64  # tokens to produce after the prompt

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k={self.k!r} must be an int >= 1 (draft tokens per round)")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens!r} must be a positive int")


@dataclass
class SpeculativeResult:
    """Tokens and counts of one :func:`speculative_generate` call; ``total_ms`` is wall time in ms."""

    prompt_tokens: list[int]
    new_tokens: list[int]
    k: int
    rounds: int  # target verification passes after the prefill
    proposed: int  # draft tokens proposed
    accepted: int  # draft tokens the target agreed with
    rejections: int  # rounds that stopped at a disagreement (the others accepted all k)
    accepted_per_round: list[int] = field(default_factory=list)
    total_ms: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        """Accepted / proposed draft tokens."""
        return self.accepted / self.proposed if self.proposed else float("nan")

    @property
    def alpha(self) -> float:
        """Estimated probability that one draft token is accepted (Leviathan et al.'s alpha): each proposed token up
        to the first disagreement is one trial, so alpha = accepted / (accepted + rejections)."""
        trials = self.accepted + self.rejections
        return self.accepted / trials if trials else float("nan")

    @property
    def tokens_per_round(self) -> float:
        """New tokens per target verification pass (accepted + the target's own)."""
        return (self.accepted + self.rounds) / self.rounds if self.rounds else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "acceptance_rate": self.acceptance_rate, "alpha": self.alpha,
                "tokens_per_round": self.tokens_per_round}


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """Expected tokens one round yields: (1 - alpha^(k+1)) / (1 - alpha), k + 1 when alpha = 1."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha} must be a probability in [0, 1]")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be an int >= 1")
    return float(k + 1) if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def expected_speedup(alpha: float, k: int, cost_ratio: float) -> float:
    """Leviathan et al. (2023), eq. 1 with Theorem 3.8: expected wall-time improvement of speculative over plain
    decoding, (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1)), with c = ``cost_ratio`` = time of one draft step / time
    of one target step (and a target pass over k + 1 tokens assumed to cost one step)."""
    if not cost_ratio >= 0:
        raise ValueError(f"cost_ratio={cost_ratio} must be >= 0 (draft step time / target step time)")
    return expected_tokens_per_round(alpha, k) / (k * cost_ratio + 1)


def _check_pair(target: TinyLlama, draft: TinyLlama) -> None:
    for name, m in (("target", target), ("draft", draft)):
        if not isinstance(m, TinyLlama):
            raise TypeError(f"{name} must be a mclab.llm.TinyLlama, got {type(m).__name__}")
    if draft.config.vocab_size != target.config.vocab_size:
        raise ValueError(f"the draft's vocabulary (vocab_size={draft.config.vocab_size}) differs from the target's "
                         f"(vocab_size={target.config.vocab_size}); a draft must share the target's tokenizer")


@torch.inference_mode()
def speculative_generate(target: TinyLlama, draft: TinyLlama, prompt,
                         config: SpeculativeConfig = SpeculativeConfig()) -> SpeculativeResult:
    """Continue ``prompt`` (token ids) by ``config.max_new_tokens`` tokens of ``target``'s greedy decoding, drafting
    ``config.k`` tokens per round with ``draft``; returns a :class:`SpeculativeResult` (tokens identical to
    ``generate(target, prompt)``'s greedy output, and the acceptance counts)."""
    if not isinstance(config, SpeculativeConfig):
        raise TypeError(f"config must be a SpeculativeConfig, got {type(config).__name__}")
    _check_pair(target, draft)
    limit = min(target.config.max_seq_len, draft.config.max_seq_len)
    x = as_prompt(prompt, limit, config.max_new_tokens)
    if x.shape[1] + config.max_new_tokens + config.k > limit:  # the last round may draft k tokens past the end
        raise ValueError(f"prompt of {x.shape[1]} tokens + max_new_tokens={config.max_new_tokens} + k={config.k} "
                         f"exceeds max_seq_len={limit} (the smaller of the target's and the draft's); shorten the "
                         f"prompt, generate fewer tokens or lower k")
    start = time.perf_counter()
    dtype_t, dtype_d = next(target.parameters()).dtype, next(draft.parameters()).dtype
    tcache, dcache = KVCache(target.config, 1, dtype=dtype_t), KVCache(draft.config, 1, dtype=dtype_d)
    seq = x[0].tolist()
    n_prompt = len(seq)
    seq.append(int(target(x, tcache)[0, -1].argmax()))  # prefill: the target's first token
    rounds = proposed = accepted = rejections = 0
    per_round: list[int] = []
    while len(seq) - n_prompt < config.max_new_tokens:
        # draft k tokens: first catch the draft's cache up with everything it has not seen, then one at a time
        drafts: list[int] = []
        feed = seq[dcache.pos:]
        for _ in range(config.k):
            nxt = int(draft(torch.tensor([feed]), dcache)[0, -1].argmax())
            drafts.append(nxt)
            feed = [nxt]
        # verify: one target pass over the tokens it has not seen and the k drafts
        tpos = tcache.pos
        block = seq[tpos:] + drafts
        greedy = target(torch.tensor([block]), tcache)[0].argmax(-1).tolist()  # target's choice after each token
        offset = len(block) - config.k - 1  # greedy[offset + i] is the target's token after seq[-1], drafts[:i]
        n = 0
        while n < config.k and drafts[n] == greedy[offset + n]:
            n += 1
        seq.extend(drafts[:n] + [greedy[offset + n]])
        rounds, proposed, accepted = rounds + 1, proposed + config.k, accepted + n
        rejections += n < config.k
        per_round.append(n)
        # roll the caches back to the kept tokens (the last kept token is not yet in either cache)
        tcache.pos = len(seq) - 1
        dcache.pos = min(dcache.pos, len(seq) - 1)
    new = seq[n_prompt:n_prompt + config.max_new_tokens]
    return SpeculativeResult(prompt_tokens=x[0].tolist(), new_tokens=new, k=config.k, rounds=rounds, proposed=proposed,
                             accepted=accepted, rejections=rejections, accepted_per_round=per_round,
                             total_ms=(time.perf_counter() - start) * 1e3)
