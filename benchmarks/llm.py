"""Benchmark of mclab.llm on this CPU (reports, never fails on speed).

Measured in one run:
1. decoding 256 tokens with the KV cache vs without, interleaved round by round (target: >= 3x faster);
2. bytes of the INT4 group-32 packed linear weights, scales and zero-points included (target: <= 0.16x FP32);
3. held-out perplexity of FP32, FP16, BF16, INT8 and INT4 (RTN, AWQ-style, GPTQ-style) at group sizes 32/64/128
   (targets: INT8 within 1 % of FP32, INT4 RTN within 10 %), and each format's KL divergence from FP32's
   next-token distribution (targets: AWQ-style's and GPTQ-style's KL no larger than RTN's at the same group size;
   KL resolves what perplexity cannot on a model this small, whose perplexity ordering is reported, not targeted).

Run: `.venv/bin/python benchmarks/llm.py [out.json] [--threads N] [--seeds 1,2]` (default build/bench/llm.json).
``--seeds`` repeats the INT4 rows on models trained with other seeds: a ranking that flips between seeds is noise.
The criterion for the kit's model (issue 22, notebook 13) is KL divergence from FP32 on held-out text: AWQ-style's
and GPTQ-style's KL no larger than RTN's at every group size and seed (perplexity is printed beside it).
The model is the cached checkpoint of `mclab.llm.pretrained().model` (trained on first use, a few minutes).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _report import report  # benchmarks/_report.py, beside this script

from mclab import bench, llm

GROUPS = (32, 64, 128)


def _int4_formats() -> list:
    return [llm.LLMQuantConfig(bits=4, group_size=g, algorithm=a) for g in GROUPS for a in ("rtn", "awq", "gptq")]


def _scores(table) -> dict:
    """Each row's perplexity change and KL divergence against FP32, by name."""
    return {r.name: {"ppl_change_pct": r.ppl_change_pct, "kld": r.kld, "perplexity": r.perplexity} for r in table.rows}


def _other_seeds(seeds: list[int], data) -> dict:
    """The INT4 rows for models trained with other seeds: does each quantiser's ranking against RTN hold?"""
    out = {}
    for seed in seeds:
        model = llm.pretrained(llm.LMTrainConfig(seed=seed)).model
        inputs = llm.capture_inputs(model, data.train[-8192:], n_tokens=4096)
        out[seed] = _scores(llm.compare_formats(model, _int4_formats(), data.val, inputs=inputs, decode_tokens=8))
    return out


def _ranking(per_seed: dict) -> dict:
    """Per algorithm and group size: on how many seeds it is no worse than RTN, by perplexity and by KL divergence."""
    rank = {}
    for m in ("AWQ", "GPTQ"):
        for g in GROUPS:
            rows = [(s[f"INT4 {m} g{g}"], s[f"INT4 RTN g{g}"]) for s in per_seed.values()]
            rank[f"{m} g{g}"] = {"seeds": len(rows),
                                 "ppl_no_worse": sum(a["ppl_change_pct"] <= b["ppl_change_pct"] for a, b in rows),
                                 "kld_no_worse": sum(a["kld"] <= b["kld"] for a, b in rows)}
    return rank


def _kld_table(per_seed: dict) -> list[dict]:
    """One row per (seed, group size): INT4 KL divergence from FP32 (nats/token) and perplexity change (%) of RTN,
    AWQ-style and GPTQ-style, and whether each is no worse than RTN by KL."""
    rows = []
    for seed, s in per_seed.items():
        for g in GROUPS:
            r = {m: s[f"INT4 {m} g{g}"] for m in ("RTN", "AWQ", "GPTQ")}
            rows.append({"seed": seed, "group_size": g,
                         **{f"kld_{m.lower()}": v["kld"] for m, v in r.items()},
                         **{f"ppl_change_pct_{m.lower()}": v["ppl_change_pct"] for m, v in r.items()},
                         "awq_kld_no_worse": r["AWQ"]["kld"] <= r["RTN"]["kld"],
                         "gptq_kld_no_worse": r["GPTQ"]["kld"] <= r["RTN"]["kld"]})
    return rows


def main(out: Path = Path("build/bench/llm.json"), threads: int | None = None, rounds: int = 3,
         seeds: tuple[int, ...] = ()) -> dict:
    start = time.perf_counter()
    with bench.set_threads(threads):
        trained = llm.pretrained()
        model = trained.model
        data = llm.corpus()
        prompt = data.val[:16].tolist()

        # 1. KV cache: 256 new tokens each way, interleaved (A = no cache, B = cache)
        def run(use_cache: bool):
            return lambda: llm.generate(model, prompt, llm.GenerateConfig(max_new_tokens=256, use_cache=use_cache))
        same = run(True)().new_tokens == run(False)().new_tokens
        ab = bench.compare(run(False), run(True), rounds=rounds, calls_per_round=1, warmup=0,
                           label_a="no cache", label_b="KV cache")

        # 2 + 3. weight formats
        formats = ["fp16", "bf16"] + [llm.LLMQuantConfig(bits=8, group_size=g) for g in GROUPS] + _int4_formats()
        inputs = llm.capture_inputs(model, data.train[-8192:], n_tokens=4096)  # calibration text is training text
        table = llm.compare_formats(model, formats, data.val, inputs=inputs)
        others = _other_seeds([s for s in seeds if s != llm.LMTrainConfig().seed], data)

    rows = {r.name: r for r in table.rows}
    fp32 = rows["fp32"].perplexity
    int8_worst = max(rows[f"INT8 RTN g{g}"].ppl_change_pct for g in GROUPS)
    rtn4 = {g: rows[f"INT4 RTN g{g}"].perplexity for g in GROUPS}
    targets = {
        "kv_cache_speedup_ge_3x": ab.speedup >= 3,
        "int4_g32_bytes_le_0.16x": rows["INT4 RTN g32"].bytes_vs_fp32 <= 0.16,
        "int8_ppl_within_1pct": int8_worst <= 1.0,
        "int4_rtn_ppl_within_10pct": all(p / fp32 - 1 <= 0.10 for p in rtn4.values()),
        # the criterion: AWQ-style and GPTQ-style against RTN by KL divergence from FP32 (llama.cpp's measure)
        "awq_kld_no_worse_than_rtn": all(rows[f"INT4 AWQ g{g}"].kld <= rows[f"INT4 RTN g{g}"].kld for g in GROUPS),
        "gptq_kld_no_worse_than_rtn": all(rows[f"INT4 GPTQ g{g}"].kld <= rows[f"INT4 RTN g{g}"].kld for g in GROUPS),
    }
    result = {
        "model": {"params": trained.n_params, "config": model.config.as_dict(),
                  "val_perplexity": trained.val_perplexity, "train_s": trained.train_s,
                  "from_cache": trained.from_cache},
        "threads": torch.get_num_threads() if threads is None else threads,
        "greedy_tokens_identical": same,
        "kv_cache": ab.as_dict(), "kv_cache_speedup": ab.speedup,
        "formats": table.as_dict()["rows"], "targets": targets,
        # reported, not a target: a first-order effect whose sign flips between training seeds (see --seeds)
        "ppl_no_worse_than_rtn": {m: all(rows[f"INT4 {m} g{g}"].perplexity <= rtn4[g] for g in GROUPS)
                                  for m in ("AWQ", "GPTQ")},
    }
    if others:
        per_seed = {llm.LMTrainConfig().seed: _scores(table), **others}
        result["seeds"] = {str(k): v for k, v in per_seed.items()}
        result["ranking_across_seeds"] = _ranking(per_seed)
        result["kld_by_seed"] = _kld_table(per_seed)
        targets["awq_kld_no_worse_than_rtn_every_seed"] = all(r["awq_kld_no_worse"] for r in result["kld_by_seed"])
        targets["gptq_kld_no_worse_than_rtn_every_seed"] = all(r["gptq_kld_no_worse"] for r in result["kld_by_seed"])
    result["wall_s"] = time.perf_counter() - start
    print(f"model: {trained.n_params / 1e6:.2f} M params, FP32 held-out perplexity {fp32:.3f} "
          f"({'cached' if trained.from_cache else f'trained in {trained.train_s:.0f} s'}), threads {result['threads']}")
    print(f"decode 256 tokens: no cache {ab.a.p50_ms / 1e3:.2f} s, KV cache {ab.b.p50_ms / 1e3:.2f} s -> "
          f"{ab.speedup:.1f}x (interleaved, {rounds} rounds); greedy tokens identical: {same}")
    print(f"\n{'format':16s} {'perplexity':>10s} {'vs FP32':>8s} {'KLD nats':>9s} {'bytes':>10s} {'x FP32':>7s} "
          f"{'tok/s':>7s} {'prep s':>7s}")
    for r in table.rows:
        print(f"{r.name:16s} {r.perplexity:10.4f} {r.ppl_change_pct:+7.2f}% {r.kld:9.2e} {r.linear_bytes:10d} "
              f"{r.bytes_vs_fp32:7.4f} {r.decode_tokens_per_s:7.1f} {r.prepare_s:7.2f}")
    print("INT4 perplexity no worse than RTN's at every group size (reported, not a target): "
          + ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in result["ppl_no_worse_than_rtn"].items()))
    if others:
        print(f"\nagainst INT4 RTN at the same group size, over {len(per_seed)} models "
              f"(training seeds {', '.join(map(str, per_seed))}):")
        for k, v in result["ranking_across_seeds"].items():
            print(f"  {k:9s} no worse by perplexity on {v['ppl_no_worse']} of {v['seeds']}, "
                  f"by KL divergence on {v['kld_no_worse']} of {v['seeds']}")
        print("\nINT4 KL divergence from FP32 (nats/token; perplexity change beside it), per seed and group size:")
        print(f"{'seed':>4s} {'group':>5s} {'KL RTN':>9s} {'KL AWQ':>9s} {'KL GPTQ':>9s} {'AWQ/RTN':>7s} "
              f"{'GPTQ/RTN':>8s} {'ppl RTN':>8s} {'ppl AWQ':>8s} {'ppl GPTQ':>8s}")
        for r in result["kld_by_seed"]:
            print(f"{r['seed']:>4} {r['group_size']:>5} {r['kld_rtn']:9.2e} {r['kld_awq']:9.2e} {r['kld_gptq']:9.2e} "
                  f"{r['kld_awq'] / r['kld_rtn']:7.3f} {r['kld_gptq'] / r['kld_rtn']:8.3f} "
                  f"{r['ppl_change_pct_rtn']:+7.3f}% {r['ppl_change_pct_awq']:+7.3f}% "
                  f"{r['ppl_change_pct_gptq']:+7.3f}%")
    print()
    report(out, result, targets)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, default=Path("build/bench/llm.json"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's setting)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the KV-cache comparison")
    p.add_argument("--seeds", type=lambda t: tuple(int(v) for v in t.split(",")), default=(),
                   help="also train models with these seeds (e.g. 1,2; about 1.5 min each, then cached) and count on "
                        "how many each quantiser is no worse than RTN, by perplexity and by KL divergence")
    a = p.parse_args()
    main(a.out, a.threads, a.rounds, a.seeds)
