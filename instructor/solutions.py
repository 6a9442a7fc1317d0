"""The instructor's key: for every exercise of every notebook, the solution, a plausible wrong answer, hidden tests.

:mod:`mclab.lab.grading` writes ``answer`` into the exercise's nbgrader answer cell between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (the instructor's source notebook; ``make assignments`` strips it again) and ``hidden`` into its
test cell between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (nbgrader restores them when it grades).
``wrong`` is a slip a learner plausibly makes — a unit, a neighbouring value copied, the wrong side of a ratio; the
tests grade it as a synthetic submission and expect zero. Each string is code run in the notebook's namespace at the
exercise. Not imported by any notebook, and not part of the installed package (a wheel of ``mclab`` ships no key):
:func:`mclab.lab.grading.solutions` loads this file from the repository's ``instructor/`` folder.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Solution", "SOLUTIONS"]


@dataclass(frozen=True)
class Solution:
    """One exercise's key: ``answer`` and ``wrong`` are answer-cell code, ``hidden`` is test-cell code."""

    answer: str
    wrong: str
    hidden: str = ""


SOLUTIONS: dict[str, dict[str, Solution]] = {
    "01_latency": {
        "ex1": Solution("MY_SAMPLES = bench.MIN_SAMPLES[99]", "MY_SAMPLES = 100"),
        "ex2": Solution(
            'MY_PER_PIXEL = float((sizes.p50_ms.iloc[-1] / sizes["size"].iloc[-1] ** 2)\n'
            '                     / (sizes.p50_ms.iloc[0] / sizes["size"].iloc[0] ** 2))',
            "MY_PER_PIXEL = float(sizes.p50_ms.iloc[-1] / sizes.p50_ms.iloc[0])  # the latency ratio, not per pixel",
            'exercise.reject("Exercise 2", MY_PER_PIXEL, [float(sizes.latency_vs_smallest.iloc[-1])], rel_tol=0.05)'),
        "ex3": Solution(
            "MY_PIPELINE_SPEEDUP = sum(stage_ms.values()) / (sum(stage_ms.values()) - 0.75 * stage_ms['inference'])",
            "MY_PIPELINE_SPEEDUP = 4.0  # the model's speed-up taken for the pipeline's"),
    },
    "02_throughput": {
        "ex1": Solution("MY_MINUTES = 1e6 / offline / 60", "MY_MINUTES = 1e6 / offline  # seconds, not minutes",
                        'exercise.reject("Exercise 1", MY_MINUTES, [1e6 / offline, 1e6 / offline / 3600])'),
        "ex2": Solution("MY_RHO = max(RATES) * service(1) / 1000",
                        "MY_RHO = max(RATES) * service(1)  # milliseconds not converted to seconds"),
    },
    "03_compute_resources": {
        "ex1": Solution("MY_MACS = (128 * 32 * 32) * (64 * 3 * 3)",
                        "MY_MACS = 2 * (128 * 32 * 32) * (64 * 3 * 3)  # FLOPs, not MACs",
                        'exercise.reject("Exercise 1", MY_MACS, [2 * truth, truth // 128], rel_tol=0)'),
        "ex2": Solution(
            'top = zdf["intensity"].idxmax()\n'
            'MY_ROOF_PCT = 100 * zdf.loc[top, "achieved GFLOP/s"] / min(peak, zdf.loc[top, "intensity"] * bw)',
            'top = zdf["intensity"].idxmax()  # the memory roof taken beyond the ridge, the peak ignored\n'
            'MY_ROOF_PCT = 100 * zdf.loc[top, "achieved GFLOP/s"] / (zdf.loc[top, "intensity"] * bw)'),
    },
    "04_quantisation_math": {
        "ex1": Solution("ANSWER_1 = (4.0 / 255, round(1.0 / (4.0 / 255)))",
                        "ANSWER_1 = (4.0 / 256, 64)  # 256 levels taken for 255 steps"),
        "ex2": Solution("ANSWER_2 = SQNR_8BIT_CHANNEL + 4 * 6.02",
                        "ANSWER_2 = SQNR_8BIT_CHANNEL * 12 / 8  # dB scaled like the bits"),
    },
    "08_lowrank": {
        "ex1": Solution("ANSWER_1 = 3072 * 768 / (3072 + 768)", "ANSWER_1 = 768 / 2  # half the full rank"),
        "ex2": Solution("ANSWER_2 = float((lowrank.singular_values(net[1])[64:] ** 2).sum() ** 0.5)",
                        "ANSWER_2 = float(lowrank.singular_values(net[1])[64:].sum())  # not the root of the squares",
                        'exercise.reject("Exercise 2", ANSWER_2, [float(lowrank.singular_values(net[1])[64:].sum()),\n'
                        '                float((lowrank.singular_values(net[1])[64:] ** 2).sum())], rel_tol=1e-3)'),
        "ex3": Solution(
            "ANSWER_3 = lowrank.factorize_(copy.deepcopy(net), lowrank.LowRankConfig(('1', '3', '5'), energy=0.9))"
            ".params_after",
            "ANSWER_3 = sum(p.numel() for p in net.parameters())  # the dense count"),
    },
}
SOLUTIONS.update({
    "09_onnx_runtime": {
        "ex1": Solution('MY_UNFUSED = bn.ops["Conv"] - levels[2].added["com.microsoft:FusedConv"]',
                        'MY_UNFUSED = levels[2].added["com.microsoft:FusedConv"]  # the fused ones copied'),
        "ex2": Solution("MY_SAVED = tuple(100 * (1 - 1 / s) for s in (fusion.speedup, flo, fhi))",
                        "MY_SAVED = tuple(100 * (s - 1) for s in (fusion.speedup, flo, fhi))  # the gain"),
    },
    "12_tensorrt_torch_compile": {
        "ex1": Solution(
            "MY_BREAK_EVEN = (unfrozen.report.compile_s * 1e3 / (ab_unfrozen.a.p50_ms - ab_unfrozen.b.p50_ms)\n"
            "                 if ab_unfrozen.a.p50_ms > ab_unfrozen.b.p50_ms else 0)",
            "MY_BREAK_EVEN = report.compile_s * 1e3 / abs(ab_unfrozen.a.p50_ms - ab_unfrozen.b.p50_ms)  # frozen's"),
        "ex2": Solution('MY_GRAPHS = int(when.loc["MLP block + .item() branch", "graphs"]) + 1  # one more break',
                        'MY_GRAPHS = int(when.loc["MLP block + .item() branch", "graphs"])  # the one-branch value'),
    },
    "13b_llm_outliers_kv_speculative": {
        "ex1": Solution("MY_KV_INT8_BYTES = 2 * 32 * 32 * (128 * 1 + 2)",
                        "MY_KV_INT8_BYTES = 2 * 32 * 32 * 128 * 2  # FP16's bytes",
                        'exercise.reject("Exercise 1", MY_KV_INT8_BYTES, [2 * 32 * 32 * 128, 2 * 32 * 32 * 128 * 2],\n'
                        '                rel_tol=0.001)'),
        "ex2": Solution("MY_SPEEDUP = (1 - 0.7 ** 4) / ((1 - 0.7) * (3 * 0.1 + 1))",
                        "MY_SPEEDUP = (1 - 0.7 ** 4) / (1 - 0.7)  # tokens per round, the draft's cost left out"),
        "ex3": Solution("MY_SMOOTH = 64 ** 0.5 / 0.25 ** 0.5",
                        "MY_SMOOTH = 0.25 ** 0.5 / 64 ** 0.5  # the wrong side of the ratio"),
        "ex4": Solution('MY_LOSS_RATIO = rtn_loss_pct(4) / outliers.loc[S_STAR, "RTN g128 loss %"]',
                        'MY_LOSS_RATIO = outliers.loc[S_STAR, "RTN g128 loss %"] / rtn_loss_pct(4)  # upside down'),
    },
    "14_energy_cost": {
        "ex1": Solution('MY_YEARS = 2.5 * 3.0 * 3600 / energy.first_principles_of(cost1, "int8", batch=1).total_j'
                        " / (365 * 24 * 3600)",
                        'MY_YEARS = 2500 * 3.0 * 3600 / energy.first_principles_of(cost1, "int8", batch=1).total_j'
                        " / (365 * 24 * 3600)  # mAh taken for Ah"),
        "ex2": Solution('MY_USD = energy.INSTANCE_PRICES_USD_H["g4dn.xlarge (T4)"] / 3600 * (lat1.p50_ms / 1e3) * 1e6',
                        'MY_USD = cloud["g4dn.xlarge (T4)"].usd_per_million  # the batched figure copied',
                        'exercise.reject("Exercise 2", MY_USD, [cloud["g4dn.xlarge (T4)"].usd_per_million])'),
        "ex3": Solution('MY_DRAM_PCT = tuple(100 * f.dram_pj / f.total_pj for f in\n'
                        '                    (energy.first_principles_of(cost1, "int8", batch=b) for b in (1, BATCH)))',
                        'MY_DRAM_PCT = tuple(100 * f.dram_pj / f.total_pj for f in  # FP32 instead of INT8\n'
                        '                    (energy.first_principles_of(cost1, "fp32", batch=b) for b in (1, BATCH)))',
                        ),
    },
})
SOLUTIONS.update({
    "00_start_here": {
        "ex1": Solution("MY_MS = 2 * MATMUL_N ** 3 / (gflops_fp32 * 1e9) * 1e3",
                        "MY_MS = MATMUL_N ** 3 / (gflops_fp32 * 1e9) * 1e3  # multiply-adds taken for FLOPs"),
        "ex2": Solution("MY_OTHER_PCT = 100 * (1 - 4 * results.params[0] / (results.size_mb[0] * 1e6))",
                        "MY_OTHER_PCT = 1 - 4 * results.params[0] / (results.size_mb[0] * 1e6)  # a fraction, not %",
                        'exercise.reject("Exercise 2", MY_OTHER_PCT, [100 * (1 - 4 * results.params[1] / '
                        "(results.size_mb[1] * 1e6)),\n"
                        "                100 * (1 - 4 * results.params[0] / (results.size_mb[0] * 2 ** 20)),\n"
                        "                100 * 4 * results.params[0] / (results.size_mb[0] * 1e6)])"),
        "ex3": Solution('MY_SCENARIOS = [k for k, s in scenarios.SCENARIOS.items()\n'
                        '                if not s.check({"latency_p99_ms": 40, "model_size_mb": 12}).failed]',
                        "MY_SCENARIOS = list(scenarios.SCENARIOS)  # the size limits forgotten"),
    },
    "05_ptq_qat": {
        "ex1": Solution("ANSWER_1 = SIZE_RATIO", "ANSWER_1 = 1 / SIZE_RATIO  # the wrong side of the ratio"),
        "ex2": Solution('best = max(quant.METHODS, key=lambda m: acc[f"static INT8 {m} (ONNX Runtime)"].accuracy)\n'
                        'ANSWER_2 = 100 * (acc[f"static INT8 {best} (ONNX Runtime)"].ci95[1]\n'
                        '                  - acc[f"static INT8 {best} (ONNX Runtime)"].ci95[0]) / 2',
                        'best = max(quant.METHODS, key=lambda m: acc[f"static INT8 {m} (ONNX Runtime)"].accuracy)\n'
                        'ANSWER_2 = (acc[f"static INT8 {best} (ONNX Runtime)"].ci95[1]  # a fraction, the whole width\n'
                        '            - acc[f"static INT8 {best} (ONNX Runtime)"].ci95[0])'),
    },
    "06_pruning": {
        "ex1": Solution("ANSWER_1 = 1 / (1 + 2)", "ANSWER_1 = 2 / (1 + 2)  # the sparsity, not the density"),
        "ex2": Solution("layer = dict(model.named_modules())[MOST_SENSITIVE]\n"
                        "ANSWER_2 = 100 * max(SCAN_AMOUNTS) * layer.weight.numel() / dense_cost.params",
                        "ANSWER_2 = 100 * max(SCAN_AMOUNTS)  # the layer's own share, not the model's"),
        "ex3": Solution('t = dense_cost.table()\n'
                        'inner = t["name"].str.fullmatch(r"layer\\d\\.\\d\\.conv[12]")\n'
                        'share = float(t[inner]["macs"].sum() / dense_cost.macs)\n'
                        "ANSWER_3 = 1 - share * 0.75",
                        'ANSWER_3 = 1 - 0.75  # as if every layer lost 75 % of its MACs'),
    },
    "07_distillation": {
        "ex1": Solution("ANSWER_1 = float(np.exp(0 / 2) / (np.exp(2 / 2) + np.exp(1 / 2) + np.exp(0 / 2)))",
                        "ANSWER_1 = float(np.exp(0) / (np.exp(2) + np.exp(1) + np.exp(0)))  # T = 1"),
        "ex2": Solution(
            "def my_loss(s, t, y, T, alpha):\n"
            "    kl = torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), torch.softmax(t / T, -1),\n"
            "                                    reduction='batchmean')\n"
            "    return alpha * T * T * kl + (1 - alpha) * torch.nn.functional.cross_entropy(s, y)\n\n\n"
            "ANSWER_2 = my_loss",
            "def my_loss(s, t, y, T, alpha):  # without T squared\n"
            "    kl = torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), torch.softmax(t / T, -1),\n"
            "                                    reduction='batchmean')\n"
            "    return alpha * kl + (1 - alpha) * torch.nn.functional.cross_entropy(s, y)\n\n\n"
            "ANSWER_2 = my_loss"),
        "ex3": Solution("from scipy import stats\n\n"
                        "g = 100 * (np.array(cmp.distilled) - np.array(cmp.scratch))\n"
                        "ANSWER_3 = stats.t.ppf(0.975, len(g) - 1) * g.std(ddof=1) / np.sqrt(len(g))",
                        "g = 100 * (np.array(cmp.distilled) - np.array(cmp.scratch))\n"
                        "ANSWER_3 = 1.96 * g.std(ddof=1) / np.sqrt(len(g))  # the normal quantile"),
    },
    "10_openvino": {
        "ex1": Solution('bits = {"fp32": 24, "bf16": 8, "fp16": 11}[prec_table.loc["default", "computes in"]]\n'
                        'MY_ROUNDINGS = float(prec_table.loc["default", "max |err| vs PyTorch"] / np.abs(y_ref).max()'
                        ' * 2.0 ** bits)',
                        'MY_ROUNDINGS = float(prec_table.loc["default", "max |err| vs PyTorch"] / np.abs(y_ref).max()'
                        ' * 2.0 ** 11)  # fp16, the GPU plugin\'s default',
                        'exercise.reject("Exercise 1", MY_ROUNDINGS, [float(prec_table.loc["default", '
                        '"max |err| vs PyTorch"]\n'
                        '                / np.abs(y_ref).max() * 2.0 ** b) for p, b in {"fp32": 24, "bf16": 8, '
                        '"fp16": 11}.items()\n'
                        '                if p != default_precision])'),
        "ex2": Solution('MY_MS_PER_REQUEST = 1e3 * hints.loc["THROUGHPUT", "requests"]'
                        ' / hints.loc["THROUGHPUT", "async items/s"]',
                        'MY_MS_PER_REQUEST = 1e3 / hints.loc["THROUGHPUT", "async items/s"]  # one request in flight'),
    },
    "11_mobile_runtimes": {
        "ex1": Solution('MY_INT8_RATIO = float(tfl.loc["fp32", "KB"] / tfl.loc["int8", "KB"])',
                        'MY_INT8_RATIO = float(tfl.loc["int8", "KB"] / tfl.loc["fp32", "KB"])  # upside down'),
        "ex2": Solution('MY_ROUNDINGS = float(ncnn_table.loc["defaults", "max |err|"] / np.abs(ref).max() / 2 ** -11)',
                        'MY_ROUNDINGS = float(ncnn_table.loc["defaults", "max |err|"] / 2 ** -11)  # absolute, not '
                        "relative",
                        'exercise.reject("Exercise 2", MY_ROUNDINGS, [float(e / np.abs(ref).max() / 2 ** -k)\n'
                        '                for e in ncnn_table["max |err|"] for k in (10, 11, 24)\n'
                        '                if (e, k) != (ncnn_table.loc["defaults", "max |err|"], 11)])'),
    },
    "13_edge_llms": {
        "ex1": Solution("MY_KV_BYTES = 2 * 32 * 32 * 128 * 4096 * 2",
                        "MY_KV_BYTES = 32 * 32 * 128 * 4096 * 2  # keys only"),
        "ex2": Solution("MY_Q4_0_BITS = (32 * 4 / 8 + 2) * 8 / 32", "MY_Q4_0_BITS = 4.0  # the scale forgotten"),
        "ex3": Solution("MY_TOKENS_PER_S = llm.memory_budget(llm.LLAMA2_7B, 2048, weight_bits=8.5,\n"
                        "                                    kv_bytes_per_value=2).decode_ceiling(100.0)",
                        "MY_TOKENS_PER_S = 8 * llm.memory_budget(llm.LLAMA2_7B, 2048, weight_bits=8.5,\n"
                        "                                        kv_bytes_per_value=2).decode_ceiling(100.0)"),
        "ex4": Solution('per_group = (table["INT4 RTN g32"].linear_bytes - table["INT4 RTN g128"].linear_bytes) '
                        "/ (1 / 32 - 1 / 128)\n"
                        'MY_G16_BYTES = table["INT4 RTN g32"].linear_bytes + per_group * (1 / 16 - 1 / 32)',
                        'MY_G16_BYTES = table["INT4 RTN g32"].linear_bytes  # the neighbouring group size copied',
                        'g32, g128 = table["INT4 RTN g32"].linear_bytes, table["INT4 RTN g128"].linear_bytes\n'
                        'exercise.reject("Exercise 4", MY_G16_BYTES, [g32, 2 * g32 - g128, g128 + 4 * (g32 - g128)],'
                        " rel_tol=0.01)"),
    },
    "15_reliability": {
        "ex1": Solution("MY_BOUND = 1 - 0.05 ** (1 / 5000)", "MY_BOUND = 1 / 5000  # one error's worth"),
        "ex2": Solution("MY_SCALE = 8", "MY_SCALE = 4  # 3e5 / 4 is still above 65,504"),
    },
    "16_tradeoffs_deployment": {
        "ex1": Solution("checks = [c for c in trails[SCENARIOS[0]].final.validation.checks\n"
                        "          if c.hard and c.measurable and c.limit]\n"
                        "MY_HEADROOM_PCT = min(100 * c.margin / abs(c.limit) for c in checks)",
                        "checks = [c for c in trails[SCENARIOS[0]].final.validation.checks\n"
                        "          if c.hard and c.measurable and c.limit]\n"
                        "tightest = min(checks, key=lambda c: c.margin)  # the smallest margin in its own units\n"
                        "MY_HEADROOM_PCT = 100 * tightest.margin / abs(tightest.limit)"),
        "ex2": Solution("front = [variants[names[i]] for i in front2]\n"
                        "fast = min(front, key=lambda r: r.latency_p99_ms)\n"
                        "best = max(front, key=lambda r: r.accuracy)\n"
                        "MY_TRADE = (100 * (best.accuracy - fast.accuracy), best.latency_p99_ms / fast.latency_p99_ms)",
                        "front = [variants[names[i]] for i in front2]\n"
                        "fast = min(front, key=lambda r: r.latency_p99_ms)\n"
                        "best = max(front, key=lambda r: r.accuracy)\n"
                        "MY_TRADE = (best.accuracy - fast.accuracy, fast.latency_p99_ms / best.latency_p99_ms)"),
    },
    "17_distributed_inference": {
        "ex1": Solution("MY_SECONDS = two.startup_s + two.gather_s + 100_000 / two.throughput_per_s",
                        "MY_SECONDS = 100_000 / two.throughput_per_s  # start-up and gather left out"),
        "ex2": Solution("MY_GPUS = -(-180e9 * 2 // (0.9 * 80e9))",
                        "MY_GPUS = -(-180e9 * 4 // (0.9 * 80e9))  # FP32 bytes"),
    },
    "18_ocr_case_study": {
        "ex1": Solution("ANSWER_1 = (round(124 * 3 / 32) * 32, round(500 * 3 / 32) * 32)",
                        "ANSWER_1 = (736, round(500 * 736 / 124 / 32) * 32)  # RapidOCR's sizing, no limit",
                        'exercise.reject("Exercise 1", ANSWER_1, [(round(500 * 3 / 32) * 32, round(124 * 3 / 32) '
                        '* 32), (round(60 * 3 / 32) * 32, round(500 * 3 / 32) * 32)])  # (width, height); unpadded'),
        "ex2": Solution("ANSWER_2 = 1 / 16", "ANSWER_2 = 1 / 15  # over the characters read, not the true ones",
                        'exercise.reject("Exercise 2", ANSWER_2, [1 / 15, 100 / 16], rel_tol=0.01)'),
        "ex3": Solution("t = best.stages_ms\n"
                        "ANSWER_3 = sum(t.values()) / (sum(t.values()) - t['recognise'] - t['decode'])",
                        "t = best.stages_ms\n"
                        "ANSWER_3 = sum(t.values()) / (t['recognise'] + t['decode'])  # old time / the part removed",
                        "t = best.stages_ms\n"
                        "rec = (t['recognise'] + t['decode']) / sum(t.values())\n"
                        'exercise.reject("Exercise 3", ANSWER_3, [rec, 1 / rec, 1 + rec], rel_tol=0.01)'
                        "  # the share, its inverse, 1 + share"),
    },
    "19_search": {
        "ex1": Solution("ANSWER_1 = sum((len(space.kernels) * len(space.expands)) ** d for d in space.depths) "
                        "** space.n_stages",
                        "ANSWER_1 = (len(space.depths) * len(space.kernels) * len(space.expands)) ** space.n_stages"),
        "ex2": Solution("ANSWER_2 = (5 * 1 + 2 * 2 + 1 * 3 + 1 * 3) / 9",
                        "ANSWER_2 = -sum(c / 9 * np.log2(c / 9) for c in (5, 2, 1, 1))  # the entropy"),
        "ex3": Solution("w = dict(base.named_modules())[dw_name].weight\n"
                        "ANSWER_3 = -(-w.numel() * 3 // 8) + 4 * w.shape[0]",
                        "w = dict(base.named_modules())[dw_name].weight\n"
                        "ANSWER_3 = -(-w.numel() * 3 // 8)  # the scales left out"),
    },
})
