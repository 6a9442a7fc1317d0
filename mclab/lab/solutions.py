"""The instructor's key: for every exercise of every notebook, the solution, a plausible wrong answer, hidden tests.

:mod:`mclab.lab.grading` writes ``answer`` into the exercise's nbgrader answer cell between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (the instructor's source notebook; ``make assignments`` strips it again) and ``hidden`` into its
test cell between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (nbgrader restores them when it grades).
``wrong`` is a slip a learner plausibly makes — a unit, a neighbouring value copied, the wrong side of a ratio; the
tests grade it as a synthetic submission and expect zero. Each string is code run in the notebook's namespace at the
exercise. Not imported by any notebook: a learner's copy holds no solution.
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
