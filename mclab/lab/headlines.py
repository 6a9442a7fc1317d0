"""The report's data: each notebook's headline findings, the source material's claims and how to judge them.

:data:`HEADLINES` is a declarative table: per notebook number, three to five :class:`Headline` rows, each naming
the recorded metric it reads (a path into what the notebook passed to :func:`mclab.record`), how to print it
(units, precision) and the source material's claim with a judge (:func:`at_least`, :func:`at_most`,
:func:`between`, :func:`near`, :func:`is_true`) that marks it *met*, *not met* or *not measurable here*.
:data:`KEY_FIGURE` names the section whose figure is each notebook's thumbnail. :mod:`mclab.lab.report` applies
the table to a run and renders the index page. Adding a notebook is adding its rows here.
Introduced in notebook 00 (``make report``).

A metric path is a tuple of steps: a dict key, a list index, or a ``{field: value}`` selector that picks the
first dict in a list whose fields match (``("tflite", {"variant": "int8"}, "KB")``).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = [
    # the table
    "Headline", "HEADLINES", "KEY_FIGURE", "AGGREGATES",
    # judges
    "at_least", "at_most", "between", "near", "is_true",
    # types of a headline's fields
    "Step", "Path_", "Judge",
]

Step = str | int | Mapping[str, Any]
Path_ = tuple[Step, ...]
Judge = Callable[[Any, Mapping[str, Any]], bool]

# A few reductions over a list (or a dict's values); the index names the one used in data-agg.
AGGREGATES: dict[str, Callable[[Sequence[Any]], float]] = {
    "len": len, "mean": statistics.fmean, "min": min, "max": max,
}


# ----------------------------------------------------------------------------- judges


def at_least(lo: float) -> Judge:
    """Met when the value is ≥ ``lo`` (a speed-up "2–4× faster" is met from 2× up)."""
    return lambda v, m: v >= lo


def at_most(hi: float) -> Judge:
    """Met when the value is ≤ ``hi`` (a budget: "< 100 ms", "< 2 points lost")."""
    return lambda v, m: v <= hi


def between(lo: float, hi: float) -> Judge:
    """Met when ``lo ≤ value ≤ hi`` (a range the source expects, both ends)."""
    if lo > hi:
        raise ValueError(f"between(lo={lo}, hi={hi}): lo must be ≤ hi")
    return lambda v, m: lo <= v <= hi


def near(target: float, rel: float) -> Judge:
    """Met when the value is within ``rel`` (a fraction, 0.05 = 5 %) of ``target``."""
    if not 0 < rel < 1:
        raise ValueError(f"near(rel={rel}): rel is a fraction between 0 and 1 (0.05 = 5 %)")
    return lambda v, m: abs(v - target) <= rel * abs(target)


def is_true() -> Judge:
    """Met when the value is true (an exactness or agreement check)."""
    return lambda v, m: v is True


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Headline:
    """One headline finding of one notebook: which metric, how to print it, which claim it is set beside.

    ``text`` is a sentence with ``{value}`` where the number goes; ``unit`` follows the number. The printed
    number is ``agg(metric) * scale``, divided by the metric at ``divide_by`` when given, and formatted with
    ``fmt`` (a format spec such as ``".2f"``; empty: three significant figures). ``judge(value, metrics)``
    decides met / not met; ``judge=None`` means the claim cannot be measured on a machine like this one
    (``why`` says why). ``measured_if`` says whether this run could measure it at all — a metric path, or a
    function of the metrics: false, or a string (the reason), marks the row *not measurable here*.
    """

    path: Path_
    text: str
    claim: str
    judge: Judge | None = None
    unit: str = ""
    fmt: str = ""
    scale: float = 1.0
    agg: str | None = None
    divide_by: Path_ | None = None
    measured_if: Path_ | Callable[[Mapping[str, Any]], bool | str] | None = None
    why: str = ""

    def __post_init__(self) -> None:
        for name in ("path", "divide_by", "measured_if"):
            p = getattr(self, name)
            if name == "measured_if" and callable(p):
                continue
            if p is None and name != "path":
                continue
            if not isinstance(p, tuple) or not p:
                raise TypeError(f"Headline.{name}={p!r} must be a non-empty tuple of keys, indices or selectors")
        if "{value}" not in self.text:
            raise ValueError(f"Headline.text={self.text!r} must contain '{{value}}' where the number goes")
        if self.agg is not None and self.agg not in AGGREGATES:
            raise ValueError(f"Headline.agg={self.agg!r} unknown; allowed: {sorted(AGGREGATES)} or None")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"Headline.scale={self.scale!r} must be a finite, non-zero number")
        if not self.claim.strip():
            raise ValueError("Headline.claim is empty: every headline is set beside a claim")
        if self.judge is None and not self.why:
            raise ValueError(f"Headline {self.text!r}: judge=None needs why= (why it is not measurable here)")
        if self.fmt:
            try:
                format(1 if self.fmt.endswith("d") else 1.0, self.fmt)
            except ValueError as e:
                raise ValueError(f"Headline.fmt={self.fmt!r} is not a format spec for a number: {e}") from None


def _h(path: str | Path_, text: str, claim: str, judge: Judge | None = None, **kw: Any) -> Headline:
    return Headline(path=(path,) if isinstance(path, str) else path, text=text, claim=claim, judge=judge, **kw)


def _energy_measured(m: Mapping[str, Any]) -> bool | str:
    kind = m["energy_kind"]  # a KeyError reads "not recorded"
    return True if kind == "measured" else f"energy is {kind} here: no power counter was readable"


_INT8 = "INT8: 2–4× faster (files 000, 001)"
_INT8_SIZE = "INT8: 4× smaller (files 000, 001)"
_INT8_ACC = "INT8: −1 to −2 % accuracy (files 000, 001)"

# Per notebook number, its headline findings (a row whose metric is missing reads "not recorded"; a notebook
# without a run is not listed). Adding a notebook is adding its rows here and a KEY_FIGURE entry below.
HEADLINES: dict[str, tuple[Headline, ...]] = {
    "00": (
        _h(("latency_p99_ms", 0), "MobileNetV3-Small (FP32, batch 1) takes {value} at P99 on this CPU",
           "rule of thumb: latency < 50 ms (file 001)", at_most(50), unit="ms"),
        _h(("size_mb", 0), "MobileNetV3-Small weighs {value} in FP32",
           "phone app: model < 10 MB (file 001)", at_most(10), unit="MB"),
        _h(("latency_p99_ms", 1), "MobileNetV3-Large (FP32, batch 1) takes {value} at P99",
           "phone app with MobileNetV3 + INT8: 30–80 ms (file 001)", at_most(80), unit="ms"),
        _h("matmul_gflops_fp32", "A large FP32 matrix product reaches {value} here",
           "compute is quoted as peak TOPS of the chip (file 000); the kit measures what a kernel reaches",
           None, unit="GFLOP/s", fmt=".0f", why="peak TOPS is a data-sheet figure; a measured kernel reaches less"),
    ),
    "01": (
        _h("p50_ms", "Median (P50) latency of MobileNetV3-Small: {value}",
           "rule of thumb: latency < 50 ms (file 001)", at_most(50), unit="ms"),
        _h("p99_ms", "Tail (P99) latency: {value}",
           "interactive budget: < 100 ms (file 000)", at_most(100), unit="ms"),
        _h("pipeline_p99_ms", "The whole image pipeline (pre-processing + inference + post-processing): {value} at P99",
           "real-time budget: < 30 ms (file 000)", at_most(30), unit="ms"),
        _h("cold_ms", "The first, cold call takes {value}",
           "the source's benchmarks warm up before timing (file 003): a cold call is slower than P50",
           lambda v, m: v > m["p50_ms"], unit="ms"),
    ),
    "02": (
        _h("offline_throughput_per_s", "Best derived throughput (batch size ÷ P50): {value}",
           "typical target: > 100 QPS (file 001)", at_least(100), unit="inferences/s", fmt=".0f"),
        _h("measured_throughput_at_knee", "Throughput measured at the knee of the batch sweep: {value}",
           "cloud scenario: > 500 QPS (GPU, FP16, dynamic batching; file 001)", at_least(500),
           unit="inferences/s", fmt=".0f"),
        _h(("p90_ms", -1), "P90 latency at the largest batch swept: {value}",
           "interactive budget: < 100 ms (file 000)", at_most(100), unit="ms"),
    ),
    "03": (
        _h(("size_mb", "fp32"), "ResNet-50 in FP32: {value}",
           "ResNet-50: 102.4 MB in FP32 (file 000)", near(102.4, 0.02), unit="MB", fmt=".1f"),
        _h(("size_mb", "int8"), "ResNet-50 in INT8 (with its scales): {value}",
           "ResNet-50: 25.6 MB in INT8 (file 000)", near(25.6, 0.05), unit="MB", fmt=".1f"),
        _h(("zoo_gmacs", 2), "MobileNetV2 counted at 224 px: {value}",
           "MobileNetV2: ~0.3 'GFLOPs' (file 000; its FLOPs are multiply-accumulates)", near(0.3, 0.1),
           unit="GMACs", fmt=".3f"),
        _h("sep_time_ratio_56", "A depthwise-separable block runs {value} faster than the standard convolution",
           "file 003 counts the operations a separable convolution saves (1/(1/N + 1/K²)); met if the "
           "speed-up reaches 80 % of that count",
           lambda v, m: v >= 0.8 * m["sep_formula_ratio"], unit="×", fmt=".2f"),
    ),
    "04": (
        _h("torch_agreement_lib", "The kit's quantiser matches PyTorch's on {value} of the values",
           "affine INT8: q = round(x / scale) + zero point (file 004)", at_least(100), unit="%", fmt=".1f",
           scale=100),
        _h("sqnr_slope_db_per_bit", "Each extra bit adds {value} of signal-to-quantisation-noise ratio",
           "file 004's affine grid halves its step per bit: +6.02 dB per bit (the noise law, not the source's text)",
           near(6.02, 0.1), unit="dB", fmt=".2f"),
        _h("int_linear_top1_agreement", "An integer-only linear layer agrees with FP32 on the top-1 class for {value}",
           _INT8_ACC, at_least(98), unit="% of inputs", fmt=".1f", scale=100),
        _h("sqnr_outlier_per_tensor_db", "One outlier channel drops per-tensor INT8 to {value}",
           "file 003's recipe (qconfig 'fbgemm') uses per-channel weight scales: better than per-tensor",
           lambda v, m: v < m["sqnr_outlier_per_channel_db"], unit="dB", fmt=".1f"),
    ),
    "05": (
        _h("static_speedup", "Static INT8 over FP32 on ONNX Runtime (digits, 32×32, batch 1): {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f"),
        _h("openvino_int8_speedup", "The same INT8 model over FP32 on OpenVINO: {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f"),
        _h("size_ratio_fp32_over_int8", "INT8 weights are {value} smaller than FP32",
           _INT8_SIZE, near(4, 0.05), unit="×", fmt=".2f"),
        _h("static_loss_points", "Static INT8 loses {value} of top-1 accuracy",
           _INT8_ACC, at_most(2), unit="points", fmt=".1f"),
        _h("qat_loss_points", "QAT → static INT8 changes top-1 accuracy by {value}",
           "QAT: the smallest accuracy loss (file 003)", lambda v, m: -v <= m["static_loss_points"],
           unit="points", fmt="+.1f", scale=-1),
    ),
    "06": (
        _h("speedup_structured", "Removing 50 % of the inner channels: {value} speed-up",
           "pruning 50 %: 1.5–2× faster (files 000, 001)", at_least(1.5), unit="×", fmt=".2f"),
        _h("speedup_unstructured", "50 % zeros (unstructured) on a dense kernel: {value} speed-up",
           "pruning 50 %: 1.5–2× faster (files 000, 001)", at_least(1.5), unit="×", fmt=".2f"),
        _h(("file_bytes", "dense"), "The channel-pruned file is {value} smaller",
           "pruning 50 %: 2× smaller (files 000, 001)", near(2, 0.1), unit="×", fmt=".2f",
           divide_by=("file_bytes", "structured")),
        _h("structured_drop_points", "Channel pruning (BatchNorm recalibrated) loses {value} of top-1 accuracy",
           "pruning 50 %: −2 to −5 % accuracy (files 000, 001)", at_most(5), unit="points", fmt=".1f"),
    ),
    "07": (
        _h("param_ratio", "The student has {value} fewer parameters than the teacher",
           "distillation: 10×+ smaller (files 000, 001)", at_least(10), unit="×", fmt=".0f"),
        _h("speedup", "The student over the teacher: {value} speed-up",
           "distillation: 5–10× faster (files 000, 001)", at_least(5), unit="×", fmt=".1f"),
        _h("distilled_accuracy", "Distilled students reach {value} top-1 on average",
           "distillation: −3 to −5 % accuracy against the teacher (files 000, 001)",
           lambda v, m: 100 * m["teacher_accuracy"] - v <= 5, unit="%", fmt=".1f", scale=100, agg="mean"),
        _h("gain_mean", "Distillation adds {value} over the same student trained from scratch",
           "distillation transfers the teacher's knowledge: a gain over training from scratch (file 003)",
           lambda v, m: bool(m.get("gain_significant")) and v > 0, unit="points", fmt="+.1f", scale=100),
    ),
    "08": (
        _h("conv_param_ratio", "The factorised convolution stores {value} fewer parameters",
           "low-rank factorisation: 2–3× compression (file 004)", between(2, 3), unit="×", fmt=".2f"),
        _h("conv_speedup", "The factorised convolution over the dense one: {value} speed-up",
           "low-rank factorisation: 2–3× faster (file 004)", at_least(2), unit="×", fmt=".2f"),
        _h("break_even_rank", "The m × n layer swept saves parameters only below rank {value}",
           "file 004: W ≈ U·V stores r·(m + n) numbers instead of m·n, so it pays below r = m·n / (m + n)",
           lambda v, m: abs(v - m["m"] * m["n"] / (m["m"] + m["n"])) < 1, fmt=".0f"),
    ),
    "09": (
        _h("ort_speedup_vs_torch", "ONNX Runtime over PyTorch eager on ResNet-18: {value} speed-up",
           "ONNX Runtime vs PyTorch on CPU: 2–3× (file 003)", at_least(2), unit="×", fmt=".2f"),
        _h("fusion_speedup", "ONNX Runtime's graph optimisations (all vs disabled): {value} speed-up",
           "operator fusion: 1.2–1.5× (files 000, 001)", at_least(1.2), unit="×", fmt=".2f"),
        _h("int8_speedup", "Static INT8 (U8S8) over FP32: {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f"),
        _h("int8_size_ratio", "The INT8 file is {value} smaller", _INT8_SIZE, near(4, 0.05), unit="×", fmt=".2f"),
        _h("int8_drop_pp", "INT8 loses {value} of top-1 accuracy on the digits", _INT8_ACC, at_most(2),
           unit="points", fmt=".1f"),
    ),
    "10": (
        _h("ov_speedup_vs_torch", "OpenVINO (FP32 pinned) over PyTorch eager on ResNet-18: {value} speed-up",
           "OpenVINO vs PyTorch on CPU: 2–4× (file 003)", at_least(2), unit="×", fmt=".2f"),
        _h(("int8_speedup", "NNCF INT8"), "NNCF INT8 over FP32 on OpenVINO: {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f"),
        _h(("int8", "NNCF INT8", "accuracy"), "NNCF INT8 reaches {value} top-1 on the digits",
           _INT8_ACC, lambda v, m: 100 * m["int8"]["FP32"]["accuracy"] - v <= 2, unit="%", fmt=".1f", scale=100),
        _h(("ir_bin_bytes", "fp32"), "The FP16 IR is {value} smaller than the FP32 IR",
           "FP16: 2× smaller (file 001)", near(2, 0.05), unit="×", fmt=".2f", divide_by=("ir_bin_bytes", "fp16")),
    ),
    "11": (
        _h(("tflite", {"variant": "fp32"}, "KB"), "TFLite's INT8 conversion is {value} smaller than FP32",
           _INT8_SIZE, near(4, 0.05), unit="×", fmt=".2f", divide_by=("tflite", {"variant": "int8"}, "KB")),
        _h(("tflite", {"variant": "fp32"}, "P50 ms"), "TFLite INT8 over TFLite FP32: {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f", divide_by=("tflite", {"variant": "int8"}, "P50 ms")),
        _h(("ncnn", {"options": "fp32 pinned"}, ".bin KB"), "NCNN's default FP16 storage is {value} smaller",
           "FP16: 2× smaller (file 001)", near(2, 0.05), unit="×", fmt=".2f",
           divide_by=("ncnn", {"options": "defaults"}, ".bin KB")),
        _h("xnnpack_speedup", "TFLite with XNNPACK over without (1 thread): {value} speed-up",
           "TFLite targets ARM CPUs; its delegates speed it up (file 003)", at_least(1), unit="×", fmt=".2f"),
    ),
    "12": (
        _h(("fusion", {"version": "torch.compile"}, "speed-up"),
           "torch.compile's fused Conv+BN+ReLU over eager: {value} speed-up",
           "operator fusion: 1.2–1.5× (files 000, 001)", at_least(1.2), unit="×", fmt=".2f"),
        _h("int8_speedup", "PT2E INT8 through Inductor over FP32 compiled: {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f"),
        _h("break_even_calls", "Compilation pays for itself after {value}",
           "compile once, run many times (file 003): the compile cost must be amortised",
           lambda v, m: v > 0, unit="calls", fmt=".0f"),
        _h(("tensorrt", 0, "speed-up"), "TensorRT over PyTorch on the GPU: {value} speed-up",
           "TensorRT: 2–5× faster (files 000, 001; 3–10× vs PyTorch in file 003)", at_least(2), unit="×",
           fmt=".2f", measured_if=lambda m: bool(m["tensorrt_ran"]) or m.get("tensorrt_skip_reason", "did not run")),
    ),
    "13": (
        _h("kv_speedup", "Decoding with a KV cache over without: {value} speed-up",
           "LLMs decode with a KV cache (file 003)", at_least(1), unit="×", fmt=".2f"),
        _h(("format_linear_bytes", 0), "INT8 (RTN, group 32) weights are {value} smaller than FP32",
           "INT8: the model at 1/4 the size (file 003)", near(4, 0.1), unit="×", fmt=".2f",
           divide_by=("format_linear_bytes", 3)),
        _h(("format_decode_tokens_per_s", 3), "INT8 weights decode at {value} the FP32 speed on this CPU",
           "INT8: 4× faster (file 003)", at_least(4), unit="×", fmt=".2f",
           divide_by=("format_decode_tokens_per_s", 0)),
        _h("seven_b_q4_0_weights_gb", "A 7B model in Q4_0 needs {value} of weights",
           "edge LLM: model memory < 2 GB (file 003)", at_most(2), unit="GB", fmt=".2f"),
    ),
    "13b": (
        _h(("kv_measured_bytes", 0), "An INT8 KV cache (with FP16 scales) is {value} smaller than FP32, measured",
           "INT8: the model at 1/4 the size (file 003)", near(4, 0.1), unit="×", fmt=".2f",
           divide_by=("kv_measured_bytes", 2)),
        _h("awq_recovered", "AWQ-style scaling recovers at least {value} of round-to-nearest's INT4 loss",
           "GPTQ/AWQ: quantisation made for large models (file 003); met if it recovers at least half", at_least(50),
           unit="%", fmt=".0f", scale=100, agg="min"),
        _h("smoothquant_loss_pct", "SmoothQuant W8A8 on the outlier model loses {value} perplexity",
           _INT8_ACC, at_most(2), unit="%", fmt=".2f"),
        _h("spec_identical", "Speculative decoding returns exactly the target model's greedy tokens: {value}",
           "speculative decoding is exact (Leviathan et al., 2023; not in the source material)", is_true()),
        _h("spec_measured_speedup", "Speculative decoding's best measured speed-up: {value}",
           "speculative decoding: 2–3× (Leviathan et al., 2023; not in the source material)", at_least(2),
           unit="×", fmt=".2f", agg="max"),
    ),
    "14": (
        _h("mj_batch1", "One inference (batch 1) costs {value} on this machine",
           "energy per inference: < 100 mJ (IoT target, file 001)", at_most(100), unit="mJ", fmt=".1f",
           measured_if=_energy_measured),
        _h(("fp_batch1", "millijoules"), "From first principles (pJ per MAC and per byte moved) it costs {value}",
           "energy per inference: < 100 mJ (IoT target, file 001)", at_most(100), unit="mJ", fmt=".2f"),
        _h(("fp_batch1", "movement_share"), "Moving data is {value} of that first-principles energy",
           "data movement dominates: a DRAM read ≈ 640 pJ vs ≈ 3.7 pJ for an FP32 multiply (Horowitz, ISSCC 2014; "
           "the source material gives no per-operation figures)", at_least(50), unit="%", fmt=".0f", scale=100),
        _h(("battery_inferences", "phone (4000 mAh, 3.85 V)"), "A 4,000 mAh phone battery would last {value}",
           "battery life = capacity ÷ energy per inference (file 000)", None, unit="inferences", fmt=",.0f",
           why="needs a phone: an estimate from the assumed phone power"),
        _h(("usd_per_million", "g4dn.xlarge (T4)"), "At this CPU's throughput a million inferences would cost {value}",
           "cloud cost = instance price × time (file 000)", None, unit="USD at the T4 instance price", fmt=".3f",
           why="an instance priced like a T4 running only as fast as this CPU: arithmetic, not a bill"),
    ),
    "15": (
        _h("stability_std", "One input run again and again: the logits' standard deviation is {value}",
           "stability: output std < 0.01 (file 000)", at_most(0.01), fmt=".3g"),
        _h(("stress", "error_rate"), "Stress run: observed error rate {value}",
           "error rate < 0.01 % (files 000, 001)", at_most(0.01), unit="%", fmt=".3f", scale=100),
        _h(("stress", "error_rate_upper95"), "… with a 95 % upper bound of {value}",
           "error rate < 0.01 % (files 000, 001), proven", at_most(0.01), unit="%", fmt=".3f", scale=100),
        _h("ref_fp16_wild_nonfinite", "FP16 on out-of-range inputs returns {value}",
           "no NaN/Inf in the outputs (file 000)", at_most(0), unit="non-finite values", fmt="d"),
    ),
    "16": (
        _h(("matrix", "INT8 quantisation", "speedup"), "INT8 over FP32 on the reference model: {value} speed-up",
           _INT8, at_least(2), unit="×", fmt=".2f"),
        _h(("matrix", "FP16", "speedup"), "FP16 over FP32: {value} speed-up", "FP16: 1.5–2× faster (file 001)",
           at_least(1.5), unit="×", fmt=".2f"),
        _h(("matrix", "50% pruning", "speedup"), "50 % channel pruning over the dense model: {value} speed-up",
           "pruning 50 %: 1.5–2× faster (files 000, 001)", at_least(1.5), unit="×", fmt=".2f"),
        _h(("matrix", "knowledge distillation", "speedup"), "The distilled student over the teacher: {value} speed-up",
           "distillation: 5–10× faster (files 000, 001)", at_least(5), unit="×", fmt=".1f",
           measured_if=("matrix", "knowledge distillation")),
        _h(("matrix", "lightweight architecture", "accuracy_pts"),
           "A lightweight architecture changes accuracy by {value}",
           "lightweight architecture: −5 to −10 % accuracy (file 001)", lambda v, m: v >= -10, unit="points",
           fmt="+.1f"),
    ),
    "17": (
        _h("scaling_2_over_1", "Two worker processes over one, compute only: {value} speed-up",
           "data-parallel inference over torchrun speeds up a job (file 003)", at_least(1.5), unit="×", fmt=".2f"),
        _h(("workers", "2", "end_to_end_per_s"), "End to end, start-up included, two workers give {value}",
           "data-parallel inference over torchrun speeds up a job (file 003)", lambda v, m: v >= 1.5,
           unit="× one worker's throughput", fmt=".2f", divide_by=("workers", "1", "end_to_end_per_s")),
        _h(("exact", "2"), "Two workers return exactly one process's answers: {value}",
           "all_gather brings every worker's outputs back (file 003)", is_true()),
        _h(("plans", {"model": "Llama-2-70B", "precision": "fp16"}, "devices needed"),
           "Llama-2-70B in FP16 needs {value}", "a model larger than one device needs several (file 000)",
           at_least(2), unit="devices of 80 GB", fmt="d"),
    ),
    "18": (
        _h("ref_ms_per_doc", "RapidOCR's defaults take {value} per page (median)",
           "phone app: latency < 100 ms (file 001)", at_most(100), unit="ms", fmt=".0f"),
        _h("speedup_vs_rapidocr", "The best pipeline within the accuracy budget over RapidOCR's defaults: {value} "
           "speed-up", "step-by-step optimisation (file 001): INT8 alone 2–4× faster (files 000, 001)",
           at_least(2), unit="×", fmt=".2f"),
        _h("cer_delta_pts", "… at a change in character error rate of {value}",
           "accuracy drop < 2 points (file 001)", at_most(2), unit="points", fmt="+.2f"),
    ),
    "19": (
        _h("spearman", "The per-block latency table ranks sub-networks as measured: Spearman ρ = {value} "
           "(lowest over runtimes)", "hardware-aware NAS predicts latency from a lookup table (file 003 names "
           "NAS and Once-for-All); ρ ≥ 0.9", at_least(0.9), fmt=".2f", agg="min"),
        _h(("search_best", "evolution"), "Evolutionary search's best sub-network: {value} on validation (mean "
           "over seeds)", "evolutionary NAS (file 003): at least as good as random search at equal evaluations",
           lambda v, m: v >= 100 * statistics.fmean(m["search_best"]["random"]), unit="%", fmt=".1f",
           scale=100, agg="mean"),
        _h(("mp_mixed_acc", 0), "At the tightest size budget, mixed per-layer bits reach {value} top-1",
           "mixed precision beats uniform bits at equal size (HAQ, Wang et al., 2019; not in the source material)",
           lambda v, m: v >= 100 * m["mp_uniform_acc"][0], unit="%", fmt=".1f", scale=100),
        _h(("dc_ratios", "huffman"), "Deep Compression (prune → share weights → Huffman) makes the model {value} "
           "smaller", "Deep Compression: 35–49× (Han et al., 2016; not in the source material)", at_least(35),
           unit="×", fmt=".1f"),
        _h(("huffman_indices", "gap_bits"), "Huffman codes the cluster indices within {value} of their entropy",
           "a Huffman code is within 1 bit per symbol of the entropy (Shannon)", at_most(1), unit="bits/symbol",
           fmt=".3f"),
    ),
}


# The key figure of each notebook: the first figure under the section heading that contains this text (a
# notebook without an entry, or whose heading changed, shows its last figure).
KEY_FIGURE: dict[str, str] = {
    "00": "first measurement", "01": "the distribution", "02": "batch-size sweep", "03": "roofline",
    "04": "dB-per-bit", "05": "INT8 is sometimes not faster", "06": "unstructured vs structured",
    "07": "teacher vs student", "08": "rank slider", "09": "graph ORT actually runs", "10": "INT8 on OpenVINO",
    "11": "TensorFlow Lite", "12": "operator fusion", "13": "KV cache", "13b": "speculative", "14": "first principles",
    "15": "stress", "16": "Pareto", "17": "data parallel", "18": "optimisation ladder", "19": "Pareto",
}
