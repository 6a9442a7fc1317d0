"""Every notebook follows the contract, runs in FAST mode, and records numbers that hold up.

The contract tests are cheap; the runs are marked ``notebooks`` (``make unit`` skips them).
Each notebook's recorded metrics are checked by one function registered with @checks(name); a notebook without
one fails, so no notebook can run without being asserted on.
"""
from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache
from typing import Callable

import nbformat
import pytest
from conftest import REPO

from mclab import hw
from mclab.lab import notebooks

NB_DIR = REPO / "notebooks"
OUT = REPO / "build" / "test-notebooks"
PATHS = sorted(NB_DIR.glob("*.ipynb"))


# ----------------------------------------------------------------------------- contract


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_numbering_follows_the_curriculum():
    found = notebooks.discover(NB_DIR)  # raises on bad names and duplicate numbers
    listed = {c.number for c in notebooks.CURRICULUM}
    assert set(found) <= listed, f"notebooks missing from mclab.lab.notebooks.CURRICULUM: {set(found) - listed}"
    assert listed <= set(found), f"chapters in mclab.lab.notebooks.CURRICULUM without a notebook: {listed - set(found)}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_contract(path):
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    assert not any(c.outputs or c.execution_count for c in code), "commit notebooks without outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"need exactly one cell tagged 'parameters', found {len(params)}"
    assert re.search(r"^FAST: bool = False\b", params[0].source, re.M), "parameters cell must set `FAST: bool = False`"
    for line in params[0].source.splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Z][A-Z0-9_]*: \w+.* = .+#", line), \
                f"parameter line needs UPPER_CASE: type = value  # why: {line!r}"
    from papermill.translators import PythonTranslator  # what `papermill --help-notebook` lists

    parsed = [p.name for p in PythonTranslator.inspect(params[0])]
    declared = re.findall(r"^([A-Z][A-Z0-9_]*):", params[0].source, re.M)
    assert parsed == declared, f"papermill cannot parse {sorted(set(declared) - set(parsed))} (an '=' in the comment?)"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "first cell must be the title"
    assert "learning objectives" in first.source.lower() and "time to run" in first.source.lower()
    assert "mclab.record(" in code[-1].source, "the last code cell must record metrics with mclab.record"
    assert any("exercise" in c.source.lower() for c in nb.cells if c.cell_type == "markdown")
    assert nb.metadata.kernelspec.name == "python3"


# chapters not yet labelled Explain / Run / Interpret (remove a number once its sections are)
_LABELS_PENDING: tuple[str, ...] = ()


def _sections(nb) -> dict[str, tuple[str, str]]:
    """{number: (markdown, code)} of every numbered '## N. title' section, up to the next '## ' heading."""
    out, cur = {}, None
    for c in nb.cells:
        if c.cell_type != "markdown":
            if cur:
                out[cur] = (out[cur][0], out[cur][1] + c.source)
            continue
        for part in re.split(r"(?m)^(?=## )", c.source):
            if part.startswith("## "):
                m = re.match(r"## (\d+)\. ", part)
                cur = m.group(1) if m else None
                if cur:
                    out[cur] = ("", "")
            if cur:
                out[cur] = (out[cur][0] + part, out[cur][1])
    return out


@pytest.mark.parametrize("path", [p for p in PATHS if not p.name.startswith(_LABELS_PENDING)], ids=lambda p: p.name)
def test_sections_are_labelled_explain_run_interpret(path):
    sections = _sections(nbformat.read(path, as_version=4))
    assert sections, "no numbered '## N. title' sections"
    for n, (md, code) in sections.items():
        assert "**Explain" in md and "**Run" in md, f"section {n}: needs **Explain.** and **Run.** paragraphs"
        assert "**Interpret" in md or "Interpret" in code, f"section {n}: needs an Interpret (markdown or printed)"


# ----------------------------------------------------------------------------- FAST runs


@lru_cache(maxsize=None)
def _run(name: str) -> notebooks.NotebookRun:
    return notebooks.run_notebook(NB_DIR / name, OUT, fast=True, timeout_s=300)


CHECKS: dict[str, Callable[[dict], None]] = {}  # notebook file name -> its metric checks


def checks(name: str):
    """Register the metric checks of notebook ``name`` (one function per notebook)."""
    def register(fn):
        assert name not in CHECKS, f"two checks registered for {name}"
        CHECKS[name] = fn
        return fn
    return register


@checks("00_start_here.ipynb")
def check_00(m):
    assert m["cores_usable"] == len(os.sched_getaffinity(0))
    assert {"torch", "onnxruntime", "openvino", "tflite"} <= set(m["runtimes_available"]), m["runtimes_available"]
    assert m["gpu_count"] == len(hw.gpus())
    assert m["verdicts"]["GPU"] == ("ok" if hw.gpus() else "missing")
    assert m["notebooks_on_disk"] == sorted(p.name.split("_", 1)[0] for p in PATHS)
    assert m["n_metric_families"] == 6 and m["n_scenarios"] == 5 and m["glossary_terms"] >= 30
    # parameter counts agree with torchvision's published metadata; FP32 size is 4 bytes/param plus buffers
    assert m["params"] == m["published_params"]
    for params, mb in zip(m["params"], m["size_mb"], strict=True):
        assert 4 * params / 1e6 <= mb <= 1.05 * 4 * params / 1e6
    assert all(0 < ms < 5000 for ms in m["latency_ms"])
    assert all(p99 >= p50 for p99, p50 in zip(m["latency_p99_ms"], m["latency_ms"], strict=True))
    assert m["latency_ms"][0] < m["latency_ms"][1] * 1.5, "MobileNetV3-Small should not be much slower than -Large"
    assert m["matmul_gflops_fp32"] > 1 and m["matmul_gflops_bf16"] > 0.1
    assert all(t > 0 for t in m["runtime_import_s"].values())


@checks("01_latency.ipynb")
def check_01(m):
    import torch

    assert m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"]
    for q in ("p50", "p90", "p99"):
        lo, hi = m["ci95_ms"][q]
        assert lo <= m[f"{q}_ms"] <= hi, f"{q} outside its own confidence interval"
    # the flags follow the sample count (MLPerf LoadGen minimums)
    assert ("p99_few_samples" in m["flags"]) == (m["n_samples"] < 662)
    assert ("p90_few_samples" in m["flags"]) == (m["n_samples"] < 64)
    assert m["cold_ms"] > 0 and m["cold_warm_p50_ms"] > 0
    assert 0 < m["clock_step_ns"]["perf_counter"] < 1e6
    assert m["gpu_section_ran"] == torch.cuda.is_available()
    assert m["sizes"] == sorted(m["sizes"])
    # 224 px has ~5x the pixels of 96 px: the larger input cannot be the faster one
    assert m["size_p50_ms"][-1] > m["size_p50_ms"][0]
    assert all(v > 0 for v in m["stage_p50_ms"].values()) and set(m["stage_p50_ms"]) == {
        "pre-processing", "inference", "post-processing"}
    assert m["threads_ratio_ci"][0] <= m["threads_ratio_2_over_1"] <= m["threads_ratio_ci"][1]


@checks("02_throughput.ipynb")
def check_02(m):
    thr, p90 = m["derived_throughput_per_s"], m["p90_ms"]
    assert m["batches"] == sorted(m["batches"]) and len(thr) == len(m["batches"])
    # derived throughput is batch / mean latency: recompute the knee and the budget answer from the table
    assert m["knee_batch"] == min(b for b, t in zip(m["batches"], thr, strict=True) if t >= 0.9 * max(thr))
    ok = [b for b, lat in zip(m["batches"], p90, strict=True) if lat <= m["budget_ms"]]
    assert m["best_batch_under_budget"] == (max(ok) if ok else None)
    assert m["offline_throughput_per_s"] == max(thr)
    # measured and derived throughput describe the same work: same order of magnitude (on a busy machine the
    # two are taken at different moments and drift apart; 2.8x was seen with two other jobs running)
    assert 0.2 < m["measured_throughput_at_knee"] / m["derived_throughput_at_knee"] < 5
    # the simulated batcher forms bigger batches as load grows (deterministic given the service times)
    by_wait = {}
    for rate, wait, mb in zip(m["sim_rates"], m["sim_waits_ms"], m["sim_mean_batch"], strict=True):
        by_wait.setdefault(wait, []).append((rate, mb))
    for rows in by_wait.values():
        mbs = [mb for _, mb in sorted(rows)]
        assert mbs == sorted(mbs) and mbs[0] >= 1
    assert m["one_worker_two_threads_per_s"] > 0 and m["two_workers_one_thread_per_s"] > 0
    # the exercises ask for values computed from the measurements; the reference passes, a slip of units fails
    from mclab.lab import exercise

    ans, wrong = m["exercise_answers"], m["exercise_wrong"]
    assert m["batches"][0] == 1 and m["service_1_ms"] == pytest.approx(m["p50_ms"][0])
    assert ans["1"] == pytest.approx(1e6 / m["offline_throughput_per_s"] / 60)
    assert ans["2"] == pytest.approx(max(m["sim_rates"]) * m["service_1_ms"] / 1000)
    for k, v in ans.items():
        assert exercise.check(f"Exercise {k}", v, v) and not exercise.check(f"Exercise {k}", wrong[k], v)


@checks("03_compute_resources.ipynb")
def check_03(m):
    for name, ours, pub, thop_, torch_ in zip(m["count_models"], m["mclab_gmacs"], m["published_gmacs"],
                                               m["thop_gmacs"], m["torch_counter_gflops"], strict=True):
        assert ours == pytest.approx(pub, rel=0.02), name  # torchvision's published MACs
        if name.startswith("vit"):  # hook-based and as-shipped counters miss attention's matmuls
            assert thop_ < 0.7 * ours and torch_ / 2 < 0.7 * ours
    # the source's ResNet-50: 25.6 M parameters, ~102 / 51 / 26 MB at FP32 / FP16 / INT8
    assert m["size_params"] == 25_557_032
    assert [round(m["size_mb"][p]) for p in ("fp32", "fp16", "int8")] == [102, 51, 26]
    assert m["size_mb"]["int4"] > m["size_mb"]["fp32"] / 8  # scales cost something
    assert m["sep_mac_ratio_224"] == pytest.approx(m["sep_formula_ratio"], rel=1e-6)
    assert m["sep_mac_ratio_56"] == pytest.approx(m["sep_mac_ratio_224"], rel=1e-6)
    lo, hi = m["sep_time_ratio_ci"]
    assert lo <= m["sep_time_ratio_56"] <= hi and m["sep_time_ratio_56"] < m["sep_mac_ratio_56"]
    assert len(m["zoo"]) == len(m["zoo_gmacs"]) == len(m["zoo_p50_ms"]) >= 4 and all(t > 0 for t in m["zoo_p50_ms"])
    assert -1 <= m["zoo_spearman"] <= 1
    peaks = m["mem_peak_activation_bytes"]
    assert m["mem_batches"] == sorted(m["mem_batches"]) and peaks == sorted(peaks)
    # activations scale with the batch; the sum of all activations exceeds the peak alive at once
    b0, b1 = m["mem_batches"][0], m["mem_batches"][-1]
    assert peaks[-1] / peaks[0] == pytest.approx(b1 / b0, rel=0.25)
    assert all(a > p for a, p in zip(m["mem_activation_bytes"], peaks, strict=True))
    assert m["mem_weights_bytes"] == 4 * 11_689_512 + 4 * 9_600 + 8 * 20  # resnet18 params + BN buffers
    assert m["peak_gflops"] > 1 and m["bandwidth_gbs"] > 0.1
    assert len(m["intensity"]) == len(m["zoo"]) and all(i > 0 for i in m["intensity"])
    assert all(p > 0 for p in m["predicted_ms"])
    roof = [min(m["peak_gflops"], m["bandwidth_gbs"] * i) for i in m["intensity"]]
    assert m["n_above_roof"] == sum(a > r for a, r in zip(m["achieved_gflops"], roof, strict=True))


@checks("04_quantisation_math.ipynb")
def check_04(m):
    assert m["torch_agreement_hand"] == 1.0 and m["torch_agreement_lib"] == 1.0  # integer for integer
    assert 0 <= m["division_mismatch_share"] < 0.01
    assert 0.05 < m["int8_wrap_share"] < 0.95  # the source's int8 cast wraps codes above 127
    assert m["sqnr_act_asym_db"] > m["sqnr_act_sym_db"] + 3  # ReLU outputs waste half a symmetric grid
    assert m["sqnr_outlier_per_channel_db"] > m["sqnr_outlier_per_tensor_db"] + 15
    c = m["sqnr_calib_db"]
    assert c["percentile_4"] > c["minmax_4"] + 1 and c["mse_4"] > c["minmax_4"] + 1
    assert c["mse_8"] >= c["minmax_8"] - 0.1
    assert 5.5 < m["sqnr_slope_db_per_bit"] < 6.5
    assert m["sqnr_8bit_per_channel_db"] >= 35 and m["slider_sqnr_db"] == m["sqnr_8bit_per_channel_db"]
    assert m["kmeans_gain_db"] > 1
    assert m["int_linear_sqnr_db"] > 30 and m["int_linear_top1_agreement"] >= 0.98


@checks("05_ptq_qat.ipynb")
def check_05(m):
    acc, n = m["accuracy"], m["n_test"]
    fp32 = acc["FP32 (PyTorch)"]
    assert fp32 > 0.9 and abs(acc["FP32 (ONNX Runtime)"] - fp32) <= 1 / n  # the export is faithful
    for k in ("FP16 weights (PyTorch)", "BF16 weights (PyTorch)", "dynamic INT8 (ONNX Runtime)"):
        assert abs(acc[k] - fp32) <= 0.01, k
    assert m["static_loss_points"] == pytest.approx(100 * (fp32 - acc["static INT8 minmax (ONNX Runtime)"]))
    assert m["static_loss_points"] <= 2.5  # source: "< 1-2 %"; the full reference measures it on 1,440 images
    assert abs(acc["static INT8 minmax (OpenVINO)"] - acc["static INT8 minmax (ONNX Runtime)"]) <= 0.015
    for method in ("minmax", "percentile", "mse"):
        assert fp32 - acc[f"static INT8 {method} (ONNX Runtime)"] <= 0.025, method
    assert all(fp32 - a <= 0.03 for a in m["calib_size_accuracy"].values())
    # QAT -> INT8 runs end to end without breaking the model
    assert m["qat_loss_points"] <= m["static_loss_points"] + 1.5
    assert m["simulated_loss_points"] <= 2.5
    lo, hi = m["ci95"]["FP32 (PyTorch)"]
    assert lo < fp32 < hi and hi - lo < 0.1
    # really INT8: every convolution, read back from each runtime
    assert m["ort_int8_ops"]["QLinearConv"] == 20 and m["ov_int8_ops"].get("Convolution u8", 0) == 20
    assert m["dynamic_ops"]["ConvInteger"] == 20 and m["dynamic_ops"]["DynamicQuantizeLinear"] >= 1
    assert 3.8 < m["size_ratio_fp32_over_int8"] < 4.05 and 0.24 < m["int8_weight_bytes"] / m["fp32_weight_bytes"] < 0.26
    slo, shi = m["static_speedup_ci"]
    assert 0 < slo <= m["static_speedup"] <= shi and m["dynamic_speedup"] > 0 and m["openvino_int8_speedup"] > 0
    # section 7: each ISA cap really changed the kernels (speed itself is benchmarks/quant.py's to judge)
    rows, caps = m["isa_rows"], m["isa_caps"]
    assert caps[-1] == "no cap" and len(rows) == 2 * len(caps) and {r["input"] for r in rows} == {"32x32", "224x224"}
    for r in rows:
        assert r["INT8 speed-up"] > 0 and "_I8" in r["INT8 kernels"] and "_f32" in r["FP32 kernels"], r
        if r["kernels capped at"].startswith("AVX2"):
            assert "avx512" not in r["INT8 kernels"] + r["FP32 kernels"], r


@checks("06_pruning.ipynb")
def check_06(m):
    dense, amount = m["dense_accuracy"], m["amount"]
    # same masks, same channels as torch
    assert dense > 0.9 and m["torch_masks_identical"] and m["torch_channels_agree"]
    assert m["global_sparsity"] == pytest.approx(amount, abs=1e-4)
    assert m["layer_sparsity_min"] < amount - 0.2 and m["layer_sparsity_max"] > amount  # one threshold, unequal layers
    # unstructured: zeros are still multiplied; a sparse kernel would skip about half the MACs
    assert m["unstructured_macs"] == m["dense_macs"] and 0.3 < m["unstructured_nonzero_macs"] / m["dense_macs"] < 0.8
    assert m["unstructured_nonzero_params"] == pytest.approx((1 - amount) * m["dense_params"], rel=0.01)
    # a state_dict stores zeros
    assert m["file_bytes"]["unstructured"] == pytest.approx(m["file_bytes"]["dense"], rel=0.001)
    # the source's "-2 to -5 %" at most; global 50 % costs little
    assert dense - m["unstructured_accuracy"]["global"] <= 0.04
    assert m["unstructured_accuracy"]["global"] >= m["unstructured_accuracy"]["layer-wise"] - 1 / m["n_test"]
    st = m["storage_bytes"]  # 50 % zeros: CSR (4-byte values + 4-byte indices) is larger than dense, a bitmask ~53 %
    assert st["csr"] > st["dense"] and 0.5 < st["bitmask"] / st["dense"] < 0.56
    # structured: 8 inner convolutions lose half their channels; a smaller dense model, counted the same in ONNX
    assert m["pruned_convolutions"] == 8 and m["channels_removed"] == (64 + 128 + 256 + 512)
    assert 0.45 < m["structured_macs"] / m["dense_macs"] < 0.56 and m["structured_onnx_macs"] == m["structured_macs"]
    assert 0.45 < m["structured_params"] / m["dense_params"] < 0.56 and m["onnx_max_abs_err"] < 1e-4
    assert m["file_bytes"]["structured"] < 0.56 * m["file_bytes"]["dense"]
    acc = m["structured_accuracy"]  # removed -> BatchNorm recalibrated [-> fine-tuned] (recorded keys come back sorted)
    recal = acc["+ BatchNorm recalibrated"]
    assert recal > acc["channels removed"] + 0.2, \
        "recalibrating BatchNorm must repair the collapse after removing channels"
    final = acc.get(f"+ fine-tuned {m['finetune_epochs']} epoch(s)", recal)
    assert m["structured_drop_points"] == pytest.approx(100 * (dense - final))
    assert m["structured_drop_points"] <= (3 if m["finetune_epochs"] else 7)  # FAST: recalibration only, no fine-tuning
    for k in ("unstructured", "structured"):  # timings are reported, not asserted: the estimate sits in its own CI
        lo, hi = m[f"speedup_{k}_ci"]
        assert 0 < lo <= m[f"speedup_{k}"] <= hi
    assert all(v > 0 for v in m["sparse_kernel_speedup"].values())
    s = m["slider"]  # the slider's default view is section 1's global model, measured again
    assert s["amount"] == amount and s["accuracy"] == m["unstructured_accuracy"]["global"]
    assert s["macs"] == m["dense_macs"]
    assert s["nonzero_macs"] == m["unstructured_nonzero_macs"] and s["params"] == m["unstructured_nonzero_params"]
    sens = m["sensitivity_drop_points"]
    lo_a, hi_a = min(sens, key=float), max(sens, key=float)
    assert sum(sens[hi_a].values()) >= sum(sens[lo_a].values()) - 1  # more sparsity, more damage
    assert m["most_sensitive_layer"] == max(sens[hi_a], key=sens[hi_a].get)
    assert sens[hi_a][m["most_sensitive_layer"]] > 5
    steps = m["iterative_steps"]
    assert m["iterative_final_sparsity"] == pytest.approx(m["iter_final"], abs=1e-3)
    assert [s["sparsity"] for s in steps] == sorted(s["sparsity"] for s in steps)
    assert steps[-1]["accuracy_finetuned"] >= steps[-1]["accuracy_pruned"] - 0.02  # fine-tuning does not hurt
    # iterative + fine-tuning vs one-shot
    assert m["iterative_test_accuracy"] >= m["oneshot_final_test_accuracy"] - 0.02
    # exercise 3: removing a share a of conv1's outputs removes a of conv1's and of conv2's MACs, nothing else;
    # the closed form passes, and the plausible slips (a² per layer, "75 % of the MACs" at 50 %) fail
    from mclab.lab import exercise

    a, share, ex3 = m["exercise_3_amount"], m["inner_conv_mac_share"], m["exercise_3_macs_fraction"]
    assert 0.9 < share < 1 and ex3 == pytest.approx(1 - share * a, rel=1e-6)
    assert m["structured_macs"] / m["dense_macs"] == pytest.approx(1 - share * m["amount"], rel=1e-6)
    assert exercise.check("Exercise 3", 1 - share * a, ex3, rel_tol=0.02)
    for wrong in (1 - share * (1 - (1 - a) ** 2), 1 - share * m["amount"], 1 - a):
        assert not exercise.check("Exercise 3", wrong, ex3, rel_tol=0.02)


@checks("07_distillation.ipynb")
def check_07(m):
    import numpy as np

    n = m["n_seeds"]
    assert n >= 3 and len(m["scratch_accuracy"]) == len(m["distilled_accuracy"]) == n
    gain = np.subtract(m["distilled_accuracy"], m["scratch_accuracy"])
    # the distilled student beats the student from scratch, averaged over >= 3 seeds
    assert gain.mean() > 0, (m["scratch_accuracy"], m["distilled_accuracy"])
    assert m["gain_mean"] == pytest.approx(gain.mean())
    lo, hi = m["gain_ci95"]
    assert lo <= m["gain_mean"] <= hi and m["gain_significant"] == (lo > 0 or hi < 0)
    assert m["verdict"].startswith("significant" if m["gain_significant"] else "not significant")
    assert 0 <= m["gain_p_value"] <= 1 and (m["gain_p_value"] < 0.05) == m["gain_significant"]
    assert m["teacher_accuracy"] > max(m["distilled_accuracy"]) and min(m["scratch_accuracy"]) > 0.3
    assert m["loss_vs_kldivloss_err"] < 1e-5  # the loss is KLDivLoss(batchmean) x T^2 plus cross-entropy
    # T^2 keeps the soft gradient's size; without it the gradient falls ~T^2-fold (16x from T=2 to T=8)
    assert 0.5 < m["grad_ratio_t8_over_t2_with_t2"] < 2 and m["grad_ratio_t8_over_t2_without"] < 0.1
    ent = [m["entropy_nats_by_t"][t] for t in ("1.0", "2.0", "4.0", "8.0")]
    assert ent == sorted(ent) and ent[-1] < np.log(10)
    assert 0.8 < m["teacher_top_prob_t1"] < 1
    assert m["teacher_params"] == 11_175_370 and m["student_params"] == 61_706  # ResNet-18 (1-channel stem), LeNet-5
    assert m["param_ratio"] == pytest.approx(m["teacher_params"] / m["student_params"]) and m["mac_ratio"] > 10
    lo, hi = m["speedup_time_ratio_ci"]
    # 85x fewer MACs: the student is faster even on a busy machine
    assert lo <= m["time_ratio"] <= hi and m["speedup"] > 1
    # exercise 3: the half-width a learner computes by hand (t x s / sqrt(n)) passes; the normal 1.96 one fails
    from scipy import stats

    from mclab.lab import exercise

    g = 100 * gain
    t_half = stats.t.ppf(0.975, n - 1) * g.std(ddof=1) / np.sqrt(n)
    assert m["exercise_3_half_width_points"] == pytest.approx(t_half, rel=1e-6)
    assert exercise.check("Exercise 3", float(t_half), m["exercise_3_half_width_points"], rel_tol=0.02)
    assert not exercise.check("Exercise 3", float(1.96 * g.std(ddof=1) / np.sqrt(n)),
                              m["exercise_3_half_width_points"], rel_tol=0.02)


@checks("08_lowrank.ipynb")
def check_08(m):
    assert m["eckart_young_max_err"] < 1e-5  # ||W - AB||_F == sqrt(sum of discarded sigma^2)
    be = m["break_even_rank"]
    assert be == pytest.approx(m["m"] * m["n"] / (m["m"] + m["n"]))
    ranks, dense = m["ranks"], m["dense"]
    assert ranks == sorted(ranks) and ranks[-1] == min(m["m"], m["n"])
    # smaller and cheaper exactly below the break-even rank
    for r, p, macs in zip(ranks, m["params"], m["macs"], strict=True):
        assert (p < dense["params"]) == (r < be) and (macs < dense["macs"]) == (r < be), r
    err = m["rel_error"]
    assert all(a > b for a, b in zip(err[:-1], err[1:], strict=True)) and err[-1] < 1e-5
    acc, ft, n = m["accuracy"], m["accuracy_finetuned"], m["n_test"]
    assert abs(acc[-1] - m["dense_accuracy"]) <= 2 / n  # full rank is the same layer up to float rounding
    # the smallest rank hurts; fine-tuning wins part back
    assert acc[0] < m["dense_accuracy"] - 0.05 and ft[0] > acc[0] + 0.05
    assert m["compression"] is not None and m["compression"] > 1.5  # some rank below break-even keeps accuracy
    assert m["slider_rel_error"] == err[ranks.index(m["slider_rank"])]
    assert m["energy_rank_99"]["ResNet-18 trained layer4.1.conv2"] > 0.8 * 512  # 3x3 convs: flat spectra
    assert m["conv_param_ratio"] > 2 and min(m["conv_accuracy"]) > 0.5
    lo, hi = m["conv_time_ratio_ci"]
    assert lo <= m["conv_time_ratio"] <= hi and all(t > 0 for t in m["p50_ms"])


@checks("09_onnx_runtime.ipynb")
def check_09(m):
    assert m["export_max_abs_err"] < 1e-4 and m["export_verified_batches"] == [1, 2]
    assert not m["export_has_batchnorm"], "the exporter folds eval-mode BatchNorm by default"
    assert "fixed at 1" in m["fixed_batch_error"] and "TransformerEncoderLayer" in m["untraceable_error"]
    assert min(m["gate_err"].values()) == 0 and max(m["gate_err"].values()) > 1  # one branch baked in
    assert m["opset_layernorm"] == {"13": 0, "17": 1} and m["opset_nodes"]["13"] > m["opset_nodes"]["17"]
    # the graph ORT runs shrinks level by level: BN folded, Conv+ReLU fused, NCHWc layout
    n = m["level_nodes"]
    assert m["level_names"] == ["disable", "basic", "extended", "all"] and n[0] > n[1] > n[2] > n[3]
    assert m["level_removed"][1]["BatchNormalization"] == 20  # one per convolution in ResNet-18
    assert m["level_added"][2].get("com.microsoft:FusedConv", 0) > 0
    assert any(k.startswith("com.microsoft.nchwc:") for k in m["level_added"][3])
    assert m["mlp13_level_added"][2].get("LayerNormalization") == 1  # spelled-out LayerNorm fused back
    assert any("Gelu" in k for k in m["mlp_level_added"][2])
    lo, hi = m["fusion_speedup_ci"]
    assert lo <= m["fusion_speedup"] <= hi
    assert len(m["thread_modes"]) == 4 and all(r["p50 ms"] > 0 for r in m["thread_modes"])
    rows = m["compare"]["rows"]
    assert rows[0]["runtime"] == "torch" and m["ort_max_abs_err"] < 1e-4 and m["ort_speedup_vs_torch"] > 0
    acc = m["digits_accuracy"]
    assert abs(acc["ORT FP32"] - acc["PyTorch FP32"]) <= 1 / m["digits_n_test"] and acc["PyTorch FP32"] > 0.8
    assert m["int8_drop_pp"] < 3 and 3.5 < m["int8_size_ratio"] < 4.1 and m["int8_speedup"] > 0
    # S8S8 vs U8S8 from one calibration: every convolution accounted for, U8S8 all in INT8 on U8 activations
    for a in m["activation_types"]:
        u, s = a["U8S8 ran"], a["S8S8 ran"]
        assert u["QLinearConv"] > 0 and u["QLinearConv inputs"] == ["uint8"] and u["FP32 Conv"] == 0
        assert s["QLinearConv"] + s["FP32 Conv"] == u["QLinearConv"]
        assert 0 <= s["weight dequantise share"] <= s["DequantizeLinear share"] <= 1
        for k in ("u8s8", "s8s8"):
            lo, hi = a[f"{k} ci"]
            assert lo <= a[f"{k} speedup"] <= hi and a[f"{k} ms"] > 0
        if hw.cpu_info().arch in ("x86_64", "AMD64"):  # x86 ORT: INT8 kernels only on U8 activations
            assert set(s["QLinearConv inputs"]) <= {"uint8"}
    # where the time goes: one profile per runner, shares summing to one, ORT INT8 dominated by QLinearConv
    prof = {(p["runtime"], p["precision"]): p for p in m["profiles"]}
    assert {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")} <= set(prof)
    assert all(p["total_ms"] > 0 and 0.5 < sum(o["share"] for o in p["ops"]) <= 1 + 1e-6 for p in prof.values())
    assert prof["onnxruntime", "int8"]["ops"][0]["op"] == "QLinearConv"


@checks("10_openvino.ipynb")
def check_10(m):
    # the plugin's default follows the CPU: BF16 only with native BF16 (AVX512-BF16 / AMX); read back, never assumed
    kernels = m["conv_kernels"]
    assert all(k.endswith("f32") for k in kernels["fp32"]), kernels
    if m["native_bf16"]:
        assert m["default_precision"] == "bf16" and m["precision_err"]["default"] > 1e-3
        assert any("default" in w for w in m["compare"]["warnings"])
    else:
        assert m["default_precision"] == "fp32" and m["bf16_request_precision"] in ("fp32", "bf16")
    if m["bf16_request_precision"] == "bf16":  # OpenVINO 2026 compiles BF16 kernels on AVX-512 without BF16 too
        assert all("bf16" in k for k in kernels["bf16"]) and m["precision_err"]["bf16"] > 1e-3, kernels
    measured = not m["native_bf16"] and m["bf16_request_precision"] == "bf16"  # timed only then
    assert (m["bf16_request_vs_fp32_ci"] is not None) == measured
    if measured:
        lo, hi = m["bf16_request_vs_fp32_ci"]
        assert lo <= m["bf16_request_vs_fp32_speedup"] <= hi
    assert m["precision_err"]["fp32"] < 1e-4 and m["ov_max_abs_err"] < 1e-4
    # FP16-compressed IR: half the bytes, weights rounded
    assert 0.45 < m["ir_bin_bytes"]["fp16"] / m["ir_bin_bytes"]["fp32"] < 0.55
    assert m["ir_err"]["fp32"] < 1e-4 < m["ir_err"]["fp16"]
    acc = m["digits_accuracy"]
    assert abs(acc["OpenVINO fp32"] - acc["PyTorch FP32"]) <= 1 / m["digits_n_test"] and m["digits_err"]["fp32"] < 1e-4
    lo, hi = m["default_vs_fp32_ci"]
    assert lo <= m["default_vs_fp32_speedup"] <= hi
    hints = {h["hint"]: h for h in m["hints"]}
    assert hints["LATENCY"]["streams"] == 1 and hints["THROUGHPUT"]["requests"] >= hints["THROUGHPUT"]["streams"] >= 1
    assert all(h["async items/s"] > 0 and h["sync items/s"] > 0 for h in m["hints"])
    assert m["ov_speedup_vs_torch"] > 0
    # INT8: NNCF and a QDQ file, both run by OpenVINO, calibrated on the same training images
    q, n = m["int8"], m["int8_n_test"]
    assert q["FP32"]["computes_in"] == "fp32" and q["FP32"]["int8_layers"] == 0 and m["nncf_preset"] == "performance"
    assert m["int8_calibration"]["data"].endswith("given batches") and m["int8_calibration"]["images"] >= 64
    for name in ("NNCF INT8", "QDQ INT8 (U8S8)"):
        assert q[name]["computes_in"] == "int8" and q[name]["int8_layers"] >= 15  # ResNet-18: 20 convolutions, 1 FC
        assert q[name]["accuracy"] >= q["FP32"]["accuracy"] - 0.03 and q[name]["answers_changed"] <= 0.05 * n
        assert q[name]["file_bytes"] < 0.35 * q["FP32"]["file_bytes"]
        lo, hi = m["int8_speedup_ci"][name]
        assert 0 < lo <= m["int8_speedup"][name] <= hi and m["int8_speed_layers"][name]["int8"] >= 15


@checks("11_mobile_runtimes.ipynb")
def check_11(m):
    n, acc0 = m["n_test"], m["reference_accuracy"]
    tfl = {r["variant"]: r for r in m["tflite"]}
    assert tfl["fp32"]["computes in"] == "fp32" and tfl["fp32"]["max |err|"] < 1e-4
    assert abs(tfl["fp32"]["accuracy"] - acc0) <= 1 / n
    assert tfl["int8"]["computes in"] == "int8" and tfl["int8"]["size vs fp32"] < 0.3
    assert tfl["int8"]["max |err|"] > 1e-3
    assert tfl["int8"]["accuracy"] >= acc0 - 0.05
    if "fp16" in tfl:
        assert tfl["fp16"]["computes in"] == "fp32 (fp16 weights)" and 0.45 < tfl["fp16"]["size vs fp32"] < 0.55
    if "int8-io" in tfl:
        assert tfl["int8-io"]["input dtype"] == "int8" and tfl["int8-io"]["accuracy"] >= acc0 - 0.05
    assert len(m["xnnpack"]) in (2, 4) and m["xnnpack_speedup"] > 0
    nc = {r["options"]: r for r in m["ncnn"]}
    assert nc["fp32 pinned"]["computes in"] == "fp32" and nc["fp32 pinned"]["max |err|"] < 1e-4
    assert nc["defaults"]["fp16 storage"] and nc["defaults"]["max |err|"] > 1e-4  # NCNN's defaults change outputs
    assert nc["defaults"][".bin KB"] < 0.6 * nc["fp32 pinned"][".bin KB"]
    rows = {(r["runtime"], r["requested"]): r for r in m["compare"]["rows"]}
    for key in (("onnxruntime", "fp32"), ("tflite", "fp32"), ("ncnn", "fp32")):
        assert rows[key]["status"] == "ok" and rows[key]["max_abs_err"] < 1e-4, key
    et = m["executorch"]
    et_rows = {r["model"]: r for r in et["rows"]}
    e32, e8 = et_rows["ExecuTorch FP32"], et_rows["ExecuTorch INT8"]
    assert e32["computes in"] == "fp32" and e32["max |err|"] < 1e-4
    assert e8["computes in"] == "int8" and e8["max |err|"] > 1e-3 and e8[".pte KB"] < 0.5 * e32[".pte KB"]
    ev = et["eval"]
    assert ev["ExecuTorch FP32"]["n"] == ev["PyTorch eager FP32"]["n"] >= 360
    eager = ev["PyTorch eager FP32"]
    assert abs(ev["ExecuTorch FP32"]["accuracy"] - eager["accuracy"]) <= 1 / eager["n"]
    assert ev["ExecuTorch INT8"]["accuracy"] >= ev["ExecuTorch FP32"]["accuracy"] - (0.03 if m["fast"] else 0.02)
    for p in ("fp32", "int8"):  # XNNPACK takes the whole graph but the getitem that unpacks its output
        assert et["delegation"][p]["subgraphs"] >= 1 and set(et["delegation"][p]["non_delegated_ops"]) <= {"getitem"}
    assert et["calibration"]["data"] == "given batches" and et["threads"]["size"] >= 1
    speed = {r["comparison"]: r for r in et["speed"]}
    assert {"ExecuTorch FP32 vs PyTorch eager", "ExecuTorch INT8 vs ExecuTorch FP32"} <= set(speed)
    assert all(r["CI low"] <= r["speed-up (B vs A)"] <= r["CI high"] for r in speed.values())
    if not m["fast"]:
        for key in (("executorch", "fp32"), ("executorch", "int8")):
            assert rows[key]["status"] == "ok", key
        assert rows[("executorch", "fp32")]["max_abs_err"] < 1e-4
    # INT8 is not "out of reach": the sentence lists the INT8 variants that ran, with their latencies
    ran = m["int8_ran"]
    assert {"TFLite int8", "ExecuTorch INT8"} <= set(ran) and all(v > 0 for v in ran.values())
    assert all(name in m["int8_sentence"] for name in ran) and "out of reach" not in m["int8_sentence"]
    audit = {(r["runtime"], r["precision"]): r for r in m["defaults_audit"]}
    assert {("tflite", "fp32"), ("ncnn", "fp32")} <= set(audit)
    if not m["fast"]:
        assert {("executorch", "fp32"), ("executorch", "int8"), ("tflite", "int8"), ("ncnn", "fp16")} <= set(audit)
    for key, r in audit.items():  # the verdicts are this machine's: check their shape, never the speed
        if r["status"] == "ok":
            assert 0 < r["ratio"] <= 1 and isinstance(r["met"], bool) and (r["met"] or r["ratio"] < 0.9), key
            if r["speedup_ci"] is not None:  # the sentence's speed-up and its interval are of one statistic
                assert r["speedup_ci"][0] <= 1 / r["ratio"] <= r["speedup_ci"][1], key
        else:
            assert r["status"].startswith(("skipped", "failed")) and r["met"] is None, key


@checks("12_tensorrt_torch_compile.ipynb")
def check_12(m):
    from mclab import runtimes

    assert m["compile_s"] > 0 and m["graphs"] == 1 and m["graph_breaks"] == 0 and m["compile_max_abs_err"] < 1e-4
    lo, hi = m["compile_speedup_ci"]
    assert lo <= m["compile_speedup"] <= hi
    # section 1 compiles for inference (freezing, the runtime's default) and, beside it, without freezing
    assert m["compile_freezing"] is True and m["unfrozen_compile_s"] > 0 and m["unfrozen_max_abs_err"] < 1e-4
    f_lo, f_hi = m["freezing_speedup_ci"]  # frozen vs unfrozen, paired round by round
    assert 0 < f_lo <= m["freezing_speedup"] <= f_hi
    u_lo, u_hi = m["unfrozen_speedup_ci"]
    assert u_lo <= m["unfrozen_speedup"] <= u_hi and m["unfrozen_p50_ms"] > 0
    saved = m["eager_p50_ms"] - m["compiled_p50_ms"]
    if saved > 0:
        assert m["break_even_calls"] == pytest.approx(m["compile_s"] * 1e3 / saved)
    else:
        assert m["break_even_calls"] is None
    when = {r["model"]: r for r in m["when"]}
    assert len(when) == 3 and when["MLP block + .item() branch"]["graph breaks"] >= 1
    assert when["MLP block"]["graph breaks"] == 0 and all(r["max |err|"] < 1e-4 for r in m["when"])
    # what torch.export captured: ATen ops, a symbolic batch in its range; Dynamo's guards on the input tensor
    assert m["export_ops"].get("aten.conv2d.default", 0) >= 1 and m["export_core_ops"]["aten.convolution.default"] >= 1
    sym = m["export_dynamic_shape"][0]
    assert isinstance(sym, str) and m["export_dynamic_range"] == {sym: "VR[1, 64]"}
    assert m["guard_kinds"].get("TENSOR_MATCH", 0) >= 1
    # fusion: three versions against eager, each interval around its ratio, the verdict follows the interval
    fusion = {r["version"]: r for r in m["fusion"]}
    assert set(fusion) == {"BN folded (eager)", "torch.compile", "torch.compile + freezing"}
    for r in fusion.values():
        assert r["CI low"] <= r["speed-up"] <= r["CI high"] and r["max |err|"] < 1e-3
    best = fusion[m["fusion_best"]]
    assert best["speed-up"] == max(r["speed-up"] for r in fusion.values())
    word = "more than" if best["CI low"] > 1.5 else "less than" if best["CI high"] < 1.2 else "consistent with"
    assert m["fusion_verdict"].startswith(word)
    # the generated code: without freezing BN is computed in Inductor's loops, with freezing it is folded away
    assert m["bn_loops"]["torch.compile"] >= 1 and m["bn_loops"]["torch.compile + freezing"] == 0
    assert any(not k["generated"] and "convolution" in k["kernel"] for k in m["kernels"])
    # recompiles over T = 64, 32, 16, 64, 48: automatic dynamic compiles twice, static once per distinct shape
    assert m["recompile_counts"] == {"None": 2, "False": 4}
    assert [r["compiled"] for r in m["recompiles"]["False"]] == [True, True, True, False, True]
    if m["fast"]:
        assert m["autotune"] is None
    else:
        a = m["autotune"]
        assert a["autotune_compile_s"] > 0 and a["speedup_ci"][0] <= a["speedup"] <= a["speedup_ci"][1]
    # PT2E INT8: strict export, 8 random calibration batches, oneDNN INT8 kernels, close to FP32, accuracy kept
    info = m["int8_info"]
    assert info["export"] == "strict" and info["freezing"] and info["calibration"]["batches"] == 8
    assert sum(info["int8_kernels"].values()) >= 1 and info["int8_kernels"].get("qconv_pointwise", 0) >= 1
    lo8, hi8 = m["int8_speedup_ci"]
    assert lo8 <= m["int8_speedup"] <= hi8 and 0 < m["int8_rel_err"] < 0.2
    assert m["int8_acc"] >= m["int8_acc_fp32"] - 0.02 and m["int8_acc_fp32"] > 0.8
    # torchao INT8 on the MLP block: FP32 compiled at FP32 rounding, INT8 variants at 8-bit error
    ao = {r["variant"]: r for r in m["torchao"]}
    assert set(ao) == {"FP32 compiled", "INT8 weight-only eager", "INT8 weight-only compiled", "INT8 dynamic eager",
                       "INT8 dynamic compiled"}
    assert ao["FP32 compiled"]["max |err|"] < 1e-4
    assert all(1e-5 < r["max |err|"] < 0.1 for k, r in ao.items() if k.startswith("INT8"))
    assert all(r["CI low"] <= r["speed-up"] <= r["CI high"] for r in ao.values())
    ok, why = runtimes.available("tensorrt")
    assert m["tensorrt_ran"] == ok
    if ok:  # pragma: no cover - GPU only
        rows = {r["runner"]: r for r in m["tensorrt"]}
        assert {"TensorRT fp32", "TensorRT fp16", "TensorRT int8", "PyTorch eager", "torch.compile"} <= set(rows)
        assert rows["TensorRT fp32"]["accuracy"] > 0.8 and rows["TensorRT int8"]["accuracy"] > 0.75
    else:
        assert m["tensorrt"] == [] and m["tensorrt_skip_reason"] == why


@checks("13_edge_llms.ipynb")
def check_13(m):
    assert m["greedy_identical"] and m["gguf_blocks_identical"]
    lo, _ = m["kv_speedup_ci"]
    assert lo > 1 and lo <= m["kv_speedup"]  # the cache helps even at FAST's short generations
    assert m["kv_measured_bytes"] == m["kv_formula_bytes"]  # 2 x layers x kv-heads x head-dim x seq x bytes
    assert m["prefill_intensity"] > 10 * m["decode_intensity"]  # prefill compute-bound, decode memory-bound
    assert m["prefill_tokens_per_s"] > m["decode_tokens_per_s"] > 0
    names, ppl, ratio = m["format_names"], m["format_perplexity"], m["format_bytes_vs_fp32"]
    fp32 = ppl[names.index("fp32")]
    assert ratio[names.index("fp16")] == 0.5 and ratio[names.index("INT4 RTN g32")] <= 0.16
    for name, p in zip(names, ppl, strict=True):
        if name.startswith("INT8") or name in ("fp16", "bf16"):
            assert p == pytest.approx(fp32, rel=0.01), name
        elif name.startswith("INT4"):
            assert p == pytest.approx(fp32, rel=0.10), name
    kld = dict(zip(names, m["format_kld"], strict=True))
    assert kld["fp32"] == 0 and all(v >= 0 for v in kld.values())
    for g in m["group_sizes"]:  # KL divergence from FP32 resolves what perplexity cannot on a model this small
        assert kld[f"INT8 RTN g{g}"] < kld[f"INT4 RTN g{g}"]
        assert kld[f"INT4 GPTQ g{g}"] < kld[f"INT4 RTN g{g}"]  # error compensation helps
        if not m["fast"]:  # the trained model (400 steps): GPTQ's gain shows in perplexity too
            assert ppl[names.index(f"INT4 GPTQ g{g}")] <= ppl[names.index(f"INT4 RTN g{g}")], g
    gguf = m["gguf_file_bytes"]
    assert gguf["F32"] > gguf["F16"] > gguf["Q8_0"] > gguf["Q4_0"]
    assert m["gguf_perplexity"]["F32"] == pytest.approx(fp32, rel=1e-4)
    assert m["gguf_perplexity"]["Q8_0"] == pytest.approx(fp32, rel=0.01)
    # the criterion for the kit's model: KL divergence from FP32 (AWQ-style's gain is below perplexity's noise)
    crit = m["kld_criterion"]
    assert set(crit) == {str(g) for g in m["group_sizes"]}
    for g, row in crit.items():
        assert row["KL AWQ"] == kld[f"INT4 AWQ g{g}"] and row["KL RTN"] == kld[f"INT4 RTN g{g}"]
        assert m["awq_kld_no_worse"][g] == (row["KL AWQ"] <= row["KL RTN"])
        assert m["gptq_kld_no_worse"][g] and row["GPTQ / RTN (KL)"] < 1
    if not m["fast"]:  # the trained model: AWQ-style's KL no larger than RTN's at every group size
        assert all(m["awq_kld_no_worse"].values()), crit
    # llama.cpp runs the exported files from token ids (no SKIPPED branch: it is part of the standard install)
    assert m["llama_cpp_errors"] == {}, "llama.cpp refused a file:\n" + "\n".join(m["llama_cpp_errors"].values())
    ev = m["llama_cpp_eval"]
    assert set(ev) == {"F16", "Q8_0", "Q4_0"} and m["llama_cpp_version"]
    assert ev["F16"]["agreement"] >= 0.99 and ev["Q8_0"]["agreement"] >= 0.97, ev
    assert 0.5 < ev["Q4_0"]["agreement"] <= ev["Q8_0"]["agreement"]
    for f, e in ev.items():  # the same windows as llm.perplexity, read from llama.cpp's own logits
        assert e["reference_perplexity"] == pytest.approx(m["llama_cpp_pytorch_perplexity"], rel=1e-6), f
        assert e["positions"] >= 0.9 * min(m["llama_cpp_eval_tokens"] or 40000, 40000)
    assert ev["F16"]["perplexity"] == pytest.approx(m["llama_cpp_pytorch_perplexity"], rel=0.005)
    assert ev["Q8_0"]["perplexity"] == pytest.approx(m["llama_cpp_pytorch_perplexity"], rel=0.01)
    assert ev["Q4_0"]["perplexity"] == pytest.approx(m["llama_cpp_pytorch_perplexity"], rel=0.15)
    assert 0 < ev["F16"]["kld"] < ev["Q8_0"]["kld"] < ev["Q4_0"]["kld"]
    lt, cfg = m["llama_cpp_table"], m["model_config"]
    assert set(lt) == {"PyTorch eager FP32", "F16", "Q8_0", "Q4_0"}
    kv_values = 2 * cfg["n_layers"] * cfg["n_kv_heads"] * (cfg["dim"] // cfg["n_heads"]) * m["llama_cpp_context"]
    for name, r in lt.items():  # speeds measured; ceiling = bandwidth / (file or weights + KV cache) per token
        assert r["prefill tok/s"] > r["decode tok/s"] > 0, name
        weights = m["llama_cpp_gguf_bytes"].get(name, 4 * m["n_params"])
        kv = kv_values * (4 if name.startswith("PyTorch") else 2)  # FP32 cache in PyTorch, F16 in llama.cpp
        assert r["ceiling tok/s"] == pytest.approx(m["bandwidth_gbs"] * 1e9 / (weights + kv), rel=1e-9), name
    # a 7B model in q4_0: 4.5 bits per weight; its KV cache at 4096 tokens in FP16 is 2 GiB
    assert m["seven_b_q4_0_weights_gb"] == pytest.approx(6.74e9 * 4.5 / 8 / 1e9, rel=0.02)
    assert m["seven_b_kv_4096_gb"] == pytest.approx(2 * 32 * 32 * 128 * 4096 * 2 / 1e9)
    kv_512 = m["seven_b_kv_4096_gb"] / 8  # decode at a 512-token context reads every weight and the cache
    ceiling = m["phone_gbs"] / (m["seven_b_q4_0_weights_gb"] + kv_512)
    assert m["seven_b_q4_0_phone_tokens_per_s"] == pytest.approx(ceiling, rel=1e-3)



@checks("13b_llm_outliers_kv_speculative.ipynb")
def check_13b(m):
    # outliers made without changing the function: logits within 1e-3 at every s, salience grows with s
    assert max(m["max_logit_change"]) <= 1e-3
    sal = m["salience_largest"]
    assert sal[-1] > 5 * sal[0] and all(b >= a for a, b in zip(sal, sal[1:], strict=False))
    loss = dict(zip(m["s_grid"], m["rtn_g128_loss_pct"], strict=True))
    assert loss[max(m["s_grid"])] > loss[min(m["s_grid"])] + 0.5  # INT4 RTN's loss grows with s
    # s* is the smallest s at which INT4 g128 RTN loses >= 5 % (FAST's barely trained model never does: the largest s)
    assert m["s_star"] == next((s for s in sorted(loss) if loss[s] >= 5), max(loss))
    if not m["fast"]:
        assert loss[m["s_star"]] >= 5
    # AWQ-style recovers at least half of RTN's loss at every group size
    assert len(m["awq_recovered"]) == len(m["group_sizes"])
    for g, rtn, awq, rec in zip(m["group_sizes"], m["awq_rtn_loss_pct"], m["awq_awq_loss_pct"], m["awq_recovered"],
                                strict=True):
        assert rec == pytest.approx(1 - awq / rtn) and rec >= 0.5, g
    # naive W8A8 breaks on the outliers, SmoothQuant recovers at least half of it
    w8 = dict(zip(m["w8a8_variants"], m["w8a8_loss_pct"], strict=True))
    naive = m["w8a8_naive_loss_pct"]
    assert naive == w8[f"s={m['s_star']}, naive"] > w8["no outliers, naive"]
    assert m["smoothquant_loss_pct"] <= naive / 2
    by_s = m["w8a8_naive_loss_by_s"]  # one activation scale per tensor breaks as s grows
    assert by_s[-1] > 10 and by_s[-1] > 5 * abs(by_s[0])
    # KV INT8: bytes <= 0.55x FP16 with scales (formula and measured), perplexity within 1 % of the FP32 cache
    kv = {b: (f, meas, p) for b, f, meas, p in zip(m["kv_bits"], m["kv_formula_bytes"], m["kv_measured_bytes"],
                                                   m["kv_perplexity"], strict=True)}
    assert kv[32][1] == kv[32][0] and kv[16][1] == kv[16][0] and kv[8][1] == kv[8][0]
    assert kv[8][1] / kv[16][1] == pytest.approx(m["kv_int8_ratio_formula"]) and m["kv_int8_ratio_formula"] <= 0.55
    assert m["kv_int8_ratio_formula"] == pytest.approx((1 + 2 / m["head_dim"]) / 2)
    assert kv[8][2] == pytest.approx(kv[32][2], rel=0.01) and kv[16][2] == pytest.approx(kv[32][2], rel=1e-3)
    # a phone's context: the INT8 cache nearly doubles it wherever the weights fit
    ctx = {tuple(i): n for i, n in zip(m["phone_index"], m["phone_context"], strict=True)}
    from mclab import llm

    for w, bits in (("Q8_0", 8.5), ("Q4_0", 4.5)):
        assert ctx[(w, "FP16")] == llm.longest_context(llm.LLAMA2_7B, m["phone_gb"] * 1e9, bits, 16).max_context
        if ctx[(w, "FP16")] > 0:
            assert 1.9 < ctx[(w, "INT8")] / ctx[(w, "FP16")] < 2
    # speculative decoding: identical tokens; acceptance and the expected speed-up from it (Leviathan et al.)
    assert m["spec_identical"] and m["n_prompts"] >= 2 and m["draft_params"] < m["target_params"] / 2
    for k, acc, a, tpp, exp in zip(m["k_values"], m["spec_acceptance"], m["spec_alpha"], m["spec_tokens_per_pass"],
                                   m["spec_expected_speedup"], strict=True):
        assert 0 < acc <= a <= 1 and 1 <= tpp <= k + 1, k
        assert exp == pytest.approx(llm.expected_speedup(a, k, m["spec_cost_ratio"]))
    assert 0 < m["spec_cost_ratio"] and all(r > 0 for r in m["spec_measured_speedup"] + m["spec_verify_ratio"])


@checks("14_energy_cost.ipynb")
def check_14(m):
    live = [k for k, status in m["sources"].items() if status.startswith("ok") and k != "estimate"]
    assert m["energy_kind"] == ("measured" if live else "estimated") and m["result_kinds"] == [m["energy_kind"]]
    if m["energy_kind"] == "estimated":  # an estimate says so, and why
        assert any("ESTIMATED" in w for w in m["warnings"])
    assert m["active_w"] > m["idle_w"] > 0
    assert m["mj_per_image_batched"] < m["mj_batch1"]  # batching shares fixed costs
    mj = dict(zip(m["variants"], m["variant_mj"], strict=True))
    assert set(mj) == {"fp32", "int8", "pruned 50% fp32", "small CNN fp32"} and all(v > 0 for v in mj.values())
    assert mj["small CNN fp32"] < mj["fp32"] / 3  # a model ~100x smaller costs far less per image
    assert m["pruned_zero_fraction"] == pytest.approx(0.5, abs=0.01)
    assert 0.5 < mj["pruned 50% fp32"] / mj["fp32"] < 2  # zeros cost the same in a dense kernel
    # battery: capacity (mAh) x 3.6 x V joules / joules per inference; cloud: 1e6 / throughput / 3600 x price
    for name, n in m["battery_inferences"].items():
        cap, volt = (4000, 3.85) if name.startswith("phone") else (2500, 3.0)
        assert n == pytest.approx(cap * 3.6 * volt / (m["phone_mj"] / 1e3), rel=1e-9)
    from mclab.energy import INSTANCE_PRICES_USD_H

    for name, usd in m["usd_per_million"].items():
        assert usd == pytest.approx(1e6 / m["throughput_per_s"] / 3600 * INSTANCE_PRICES_USD_H[name], rel=1e-9)
    # first principles (Horowitz 2014) beside every figure: recomputed here from the recorded counts
    fp1, fpb, fpv = m["fp_batch1"], m["fp_batched"], m["fp_variant_mj"]
    assert fp1["compute_pj"] == pytest.approx(m["macs"] * 4.6, rel=1e-9)
    assert fp1["dram_pj"] == pytest.approx(m["params"] * 4 * 160, rel=1e-9)
    assert fp1["sram_pj"] == pytest.approx(2 * m["activation_bytes"] * 1.25, rel=1e-9)
    assert fpb["dram_pj"] == pytest.approx(fp1["dram_pj"] / m["batch"], rel=1e-9)
    assert fp1["movement_share"] > 0.9 > fpb["movement_share"] > 0  # batch 1: fetching the weights dominates
    assert set(fpv) == set(mj) and fpv["pruned 50% fp32"] == pytest.approx(fpv["fp32"])  # zeros are still read
    assert fpv["int8"] < fpv["fp32"] / 3 and fpv["small CNN fp32"] < fpv["fp32"] / 10
    assert fp1["millijoules"] < m["mj_batch1"]  # a floor: a CPU spends far more around the arithmetic
    for name, n in m["fp_battery_inferences"].items():
        assert n > m["battery_inferences"][name]
    assert isinstance(m["cpu_int8_isa"], list)
    spill = m["fp_activation_spill_uj"]  # activations in DRAM: 2 x bytes x 160 pJ, a quarter of them in INT8
    assert spill["fp32"] == pytest.approx(2 * m["activation_bytes"] * 160 / 1e6, rel=1e-9)
    assert spill["int8"] == pytest.approx(spill["fp32"] / 4, rel=1e-9)


@checks("15_reliability.ipynb")
def check_15(m):
    from mclab.reliability import error_rate_upper

    assert m["stability_std"] < m["stability_target"] == 0.01 and m["dropout_std"] > m["stability_target"]
    same_seed = [r for r in m["determinism_train"] if r["seed"] == 0]
    assert all(r["identical"] for r in same_seed)  # dropout on: the same seed reproduces the answer ...
    assert not m["determinism_train"][-1]["identical"]  # ... and another seed changes it
    assert all(r["seed"] == 0 or r["identical"] for r in m["determinism"])  # in eval(), seeds change nothing
    # FP16 overflow: found at the layer with huge weights; BF16 and rescaling fix it with a small error
    assert m["fp32_nonfinite"] == 0 and m["fp32_max_activation"] > 65504
    assert m["fp16_inf"] > 0 and m["fp16_first_bad"] == "2"
    assert m["bf16_nonfinite"] == 0 and m["rescaled_nonfinite"] == 0
    assert m["bf16_rel_err"] < 0.02 and m["rescaled_rel_err"] < 0.01
    assert m["ref_fp16_nonfinite"] == 0 and m["ref_fp16_wild_nonfinite"] > 0
    sat = m["saturation"]
    assert sat["min-max / calibration"] == 0 < sat["99.9th percentile / calibration"]
    assert sat["min-max / inputs x 3"] > sat["min-max / test"]
    s = m["stress"]
    assert s["inferences"] >= 10_000 and set(s["by_kind"]) == {"digits", "zeros", "extremes", "noise"}
    assert sum(k["items"] for k in s["by_kind"].values()) == s["inferences"]
    failures = s["errors"] + s["nonfinite"]
    assert s["error_rate"] == failures / s["inferences"]
    assert s["error_rate_upper95"] == pytest.approx(error_rate_upper(failures, s["inferences"]))
    assert s["proven_ok"] == (s["error_rate_upper95"] < 1e-4)
    rows = zip(m["drift_max_abs_err"], m["drift_top1"], m["drift_precision"], strict=True)
    drift = dict(zip(m["drift_variants"], rows, strict=True))
    assert drift["torch fp32"][:2] == (0.0, 1.0) and len(drift) >= 4
    for name, (err, top1, precision) in drift.items():
        if precision == "fp32":
            assert err < 1e-4 and top1 == 1.0, name
        else:
            assert err > 1e-4 and top1 >= 0.9, name  # reduced precision shows its own error


@checks("16_tradeoffs_deployment.ipynb")
def check_16(m):
    from mclab import techniques

    trails = m["trails"]
    assert set(trails) == set(m["scenarios"]) and len(trails) >= 2
    assert sum(t["passed"] for t in trails.values()) >= 1
    for name, t in trails.items():
        assert t["steps"][0] == "baseline" and t["final"] in t["steps"]
        hard = [c for c in t["checks"] if c["hard"] and c["measurable"]]
        assert t["passed"] == all(c["ok"] for c in hard)
        for c in t["checks"]:  # margins are signed distances to the limit, positive inside
            if c["ok"] is None:  # only a metric the kit cannot measure (mAP) goes unchecked
                assert not c["measurable"] and c["margin"] is None, (name, c)
                continue
            assert c["ok"] == (c["margin"] > 0 or (c["margin"] == 0 and c["op"] in ("<=", ">="))), (name, c)
        if not t["passed"]:  # it says exactly which limit failed and by how much
            assert t["failed"] and all(f in t["summary"] for f in t["failed"]) and "the limit" in t["summary"]
        else:
            assert t["steps"][-1] == t["final"]  # the loop stops at the first passing variant
    v = m["variants"]
    base, int8 = v["FP32 baseline"], v["INT8"]
    assert 3.5 < base["model_size_mb"] / int8["model_size_mb"] < 4.1 and base["params"] == int8["params"]
    for r in v.values():
        lo, hi = r["ci95"]
        assert lo <= r["accuracy"] <= hi and 0 < r["latency_p50_ms"] <= r["latency_p99_ms"] and r["throughput_qps"] > 0
        assert r["peak_memory_mb"] is not None and r["energy_mj"] > 0
        assert r["kinds"]["energy"] in ("measured", "estimated")
    assert set(m["pareto_2d"]) <= set(m["pareto_3d"]) <= set(v) and m["pareto_2d"]
    assert m["matrix_rows"] == list(techniques.CLAIMS)
    mx = m["matrix"]
    assert 3.5 < mx["INT8 quantisation"]["compression"] < 4.1 and abs(mx["INT8 quantisation"]["accuracy_pts"]) < 3
    assert 1.9 < mx["FP16"]["compression"] < 2.05 and abs(mx["FP16"]["accuracy_pts"]) <= 1
    assert 1.5 < mx["50% pruning"]["compression"] < 2.6
    assert mx["operator fusion"]["compression"] == 1 and mx["operator fusion"]["speedup"] > 0
    assert mx["lightweight architecture"]["compression"] > 100
    for k, row in mx.items():
        if isinstance(row, dict) and row.get("speedup") is not None:
            lo, hi = row["speedup_ci"]
            assert 0 < lo <= row["speedup"] <= hi, k
    if not hw.gpus():
        assert "TensorRT" in m["not_measurable"] and "GPU" in mx["TensorRT"]
    if not m["fast"]:
        assert not isinstance(mx["knowledge distillation"], str)  # full mode reaches the distil step
    # structured pruning's claim is computed from the counted MACs: half the channels -> about half the MACs
    pm = m["pruning_macs"]
    assert pm and pm["touched_convs"] >= 8 and 0.4 < pm["touched_min"] <= pm["touched_max"] < 0.6
    assert 0.4 < pm["macs_ratio"] < 0.8
    assert f"{100 * (1 - pm['macs_ratio']):.0f} % removed" in m["reading"] and "75 %" not in m["reading"]


@checks("17_distributed_inference.ipynb")
def check_17(m):
    assert set(m["exact"]) >= {"1", "2"} and all(m["exact"].values())  # bit-identical to one process, in order
    for w, r in m["workers"].items():
        assert r["workers"] == int(w) and r["items"] == m["n_items"] and r["output_shape"] == [m["n_items"], 10]
        shards = r["shards"]
        assert shards[0][0] == 0 and shards[-1][1] == m["n_items"] and all(a % m["batch"] == 0 for a, _ in shards)
        assert 0 < r["compute_s"] < r["wall_s"] and r["startup_s"] > 0 and r["gather_s"] >= 0
        assert r["throughput_per_s"] == pytest.approx(m["n_items"] / r["compute_s"])
        assert r["end_to_end_per_s"] < r["throughput_per_s"]  # start-up is never free
    one, two = m["workers"]["1"], m["workers"]["2"]
    assert m["scaling_2_over_1"] == pytest.approx(two["throughput_per_s"] / one["throughput_per_s"])
    # one worker with 1 thread runs the same kernels as one process with 1 thread (a busy machine moves both)
    assert 0.2 < one["throughput_per_s"] / m["local_items_per_s"]["1 thread"] < 5
    gain = 1 / one["throughput_per_s"] - 1 / two["throughput_per_s"]
    if m["break_even_items"] is not None:
        assert gain > 0
        extra = two["startup_s"] + two["gather_s"] - one["startup_s"] - one["gather_s"]
        assert m["break_even_items"] == pytest.approx(extra / gain)
    plans = {(p["model"], p["precision"]): p for p in m["plans"]}
    assert plans[("reference ResNet-18", "fp32")]["fits one"]
    assert plans[("Llama-2-70B", "fp16")]["devices needed"] >= 2
    assert plans[("Llama-2-70B", "int4")]["devices needed"] == 1
    assert plans[("Llama-2-70B", "fp16")]["weights GB"] == pytest.approx(137.96)


@checks("18_ocr_case_study.ipynb")
def check_18(m):
    # the models are the rapidocr 3.x wheel's: PP-OCRv6 small detector and recogniser, PP-OCR v2.0 direction classifier
    src = m["model_source"]
    assert src["package"] == "rapidocr" and src["version"].startswith("3.")
    assert [src["models"][k]["generation"] for k in ("det", "rec", "cls")] == [
        "PP-OCRv6 small", "PP-OCRv6 small", "PP-OCR v2.0 mobile"]
    # the kit's pipeline is RapidOCR's: same text on >= 95 % of its lines, boxes within 4 px, the same reading order
    assert m["agreement_lines"] >= 3 * m["n_docs"] and m["agreement"] >= 0.95 and m["box_max_px"] <= 4
    assert m["same_order"] == m["agreement_images"] == m["n_docs"]
    # the model works as shipped: clean lines, and English lines in faces and sizes the kit's pages never use
    assert m["clean_cer"] <= 0.01 and m["clean_lines"] >= 3
    assert m["unseen_cer"] <= 0.02 and m["unseen_lines"] >= 6
    # ... read with the kit's defaults, which enlarge an image at most 3x (sides rounded to multiples of 32)
    assert len(m["unseen_scale"]) == m["unseen_lines"] and max(m["unseen_scale"]) <= 3.2
    assert 0 <= m["unseen_cer_rapidocr_sizing"] < 0.5 and 1 <= m["sizing_lines"] <= m["unseen_lines"]
    assert 0 <= m["unseen_cer_kit_sizing_lines"] <= 0.05 and 0 <= m["unseen_cer_sized"] < 0.5
    assert m["cjk_cer"] is None if m["cjk_font"] is None else 0 <= m["cjk_cer"] < 0.5
    assert m["n_chars"] > 10 * m["n_lines"] and 0 <= m["cer"] < 0.05 and m["cer_ci"][0] <= m["cer"] <= m["cer_ci"][1]
    # (a Wilson interval's upper end at 100 % lands a rounding error under 1)
    assert m["line_acc_ci"][0] <= m["line_acc"] <= m["line_acc_ci"][1] + 1e-9 and m["det_recall"] >= 0.9
    # PP-OCRv4 (recorded before the switch) against PP-OCRv6 (measured): bigger files, a bigger dictionary
    vv = m["v4_v6"]
    assert vv["v6"]["mb"] > vv["v4"]["mb"] > 10 and vv["dictionary"] == {"v4": 6623, "v6": 18708}
    lo, hi = vv["v6_speedup_ci"]
    assert vv["v6"]["cer"] == m["cer"] and 0 < lo <= vv["v6_speedup_over_v4"] <= hi
    # RapidOCR scales the page's shorter side up to 736 px; the sized detector input never grows it
    assert min(m["det_input_default"]) >= 736 and max(m["det_input_fast"]) <= 960
    assert m["det_input_fast"][0] * m["det_input_fast"][1] < m["det_input_default"][0] * m["det_input_default"][1] / 2
    assert m["split_default"]["inference"] > m["split_fast"]["inference"]  # the detector's pixels are the time
    names = [r["name"] for r in m["ladder"]]
    assert names[0] == "RapidOCR defaults" and names[-1] == "no direction classifier"
    assert any(n.startswith("INT8") for n in names) == m["int8"]
    rungs = {r["name"]: r for r in m["ladder"]}
    assert rungs["OpenVINO FP32"]["precision"]["det"] == "fp32"
    assert rungs["RapidOCR defaults"]["runtime"] == "onnxruntime"
    assert rungs["detector input sized to the image"]["speedup"] > 1.2  # far fewer pixels: no busy machine hides it
    assert all(r["speedup"] > 0 and r["speedup_ci"][0] <= r["speedup"] <= r["speedup_ci"][1] for r in m["ladder"][1:])
    assert m["pareto"] and set(m["pareto"]) <= set(range(len(names)))  # indices of rungs on the CER/latency front
    # a rung is kept only when its whole speed-up interval is above 1 and its CER within the budget; the best
    # variant is the last one kept, and a rung whose interval straddles 1 is "no measurable gain"
    first_cer = m["ladder"][0]["cer"]
    for r in m["ladder"][1:]:
        within = (r["cer"] - first_cer) * 100 <= m["cer_budget_pts"]
        assert r["kept"] == (r["speedup_ci"][0] > 1 and within), r
        lo, hi = r["speedup_ci"]
        assert r["verdict"] == ("over the CER budget" if not within else "kept" if lo > 1 else "slower" if hi < 1
                                else "no measurable gain"), r
    assert m["best"] == [r["name"] for r in m["ladder"] if r["kept"]][-1]
    assert m["best"] in names and m["cer_delta_ci"][0] <= m["cer_delta_pts"] <= m["cer_delta_ci"][1]
    assert m["best_cer"] == rungs[m["best"]]["cer"]  # the climb's own reading of its held-out pages
    assert 1 <= m["ladder_docs"] <= m["n_docs"]
    assert m["speedup_ci"][0] <= m["speedup_vs_rapidocr"] <= m["speedup_ci"][1] and m["speedup_vs_rapidocr"] > 2
    if not m["fast"]:  # the case study's goal, full size: >= 5x faster than RapidOCR() 3.x, CER within 0.5 points
        assert m["speedup_vs_rapidocr"] >= m["goal_speedup"] == 5 and m["cer_delta_pts"] <= m["cer_budget_pts"] == 0.5
    # the phone budget is the source's mobile scenario (file 001) with the notebook's CER budget
    checks = {c["metric"]: c for c in m["budget"]["checks"]}
    assert set(checks) == {"latency_p99_ms", "accuracy_drop_pts", "model_size_mb", "power_w"}
    assert checks["latency_p99_ms"]["limit"] == m["budget_ms"] == 100 and checks["model_size_mb"]["limit"] == 10
    assert checks["model_size_mb"]["measured"] == pytest.approx(m["model_mb"]) and checks["power_w"]["ok"] is None
    assert checks["accuracy_drop_pts"]["limit"] == m["cer_budget_pts"]
    # the budget's P99 comes from every held-out page read PAGE_REPS times, first sight included
    assert m["page_reads"] % m["n_docs"] == 0 and 0 < m["page_ms_p50"] <= m["page_ms_p99"]
    assert checks["latency_p99_ms"]["measured"] == m["page_ms_p99"] and 1 <= m["head_docs"] <= m["n_docs"]
    if m["int8"]:  # two recipes, read back from the IRs: convolutions-only leaves element-wise ops and depthwise float
        fq = m["fake_quantize"]
        for key in ("rec", "det"):
            assert fq[f"{key} convs-only"]["Convolution"] >= 20
            assert not {"GroupConvolution", "Multiply", "Add", "Divide", "ReduceMean"} & set(fq[f"{key} convs-only"])
            assert sum(fq[f"{key} nncf-cnn"].values()) > sum(fq[f"{key} convs-only"].values())
        assert fq["rec convs-only"]["MatMul"] >= 10  # the recogniser's attention is quantised too
        assert rungs["INT8 recogniser, convolutions only"]["precision"]["rec"] == "int8"
        assert rungs["INT8 detector, convolutions only"]["precision"]["det"] == "int8"
        assert all(v < 25 for v in m["int8_mb"].values())  # INT8 weights: about a quarter of the FP32 bytes


@checks("19_search.ipynb")
def check_19(m):
    # the space: per stage sum over depths of (2 kernels x 3 expansions)^d, three independent stages
    assert m["n_archs"] == (6 + 6**2 + 6**3) ** 3
    assert m["acc_largest"] > max(m["acc_largest_stale_bn"], 0.3)  # trained, and unusable without recalibration
    assert 0.1 < m["acc_smallest"] <= 1
    # latency tables: one per runtime, predictions ranked like measurements
    assert set(m["spearman"]) == set(m["runtimes"]) and "torch" in m["runtimes"]
    assert all(rho > 0.5 for rho in m["spearman"].values()), m["spearman"]
    # equal evaluations for both methods and every seed; every visited network within the budget
    for method in ("evolution", "random"):
        assert m["search_evaluations"][method] == [m["evaluations"]] * m["seeds"]
        assert all(ms <= m["budget_ms"] + 1e-9 for ms in m["search_latency"][method])
        assert all(0 < a <= 1 for a in m["search_best"][method])
        for key in ("search_heldout", "search_clean_best", "search_clean_heldout"):
            assert len(m[key][method]) == m["seeds"] and all(0 < a <= 1 for a in m[key][method]), key
    # the search set: distorted copies of the validation digits (359 each), never the test images
    assert m["search_set"] == "val_aug" and m["search_set_n"] % 359 == 0 and m["search_set_n"] >= 2 * 359
    land = m["search_landscape"]
    assert set(land) == {"val", "val_aug"} and all(v["sd"] > 0 and 0 <= v["signal_share"] < 1 for v in land.values())
    for name, n in (("val", 359), ("val_aug", m["search_set_n"])):  # binomial sampling error of one evaluation
        assert land[name]["noise"] == pytest.approx((land[name]["mean"] * (1 - land[name]["mean"]) / n) ** 0.5)
    evo, rnd = (sum(m["search_best"][k]) / m["seeds"] for k in ("evolution", "random"))
    if m["fast"]:  # 12 evaluations on a 2-epoch supernet: either may win, by less than one seed's spread
        assert evo >= rnd - 0.05, (evo, rnd)
    else:  # the bar: at equal evaluations evolution's best at least random search's, averaged over seeds
        assert evo >= rnd, (evo, rnd)
        assert land["val_aug"]["signal_share"] > land["val"]["signal_share"]  # the search set separates networks
    assert (m["other_runtime_arch"] is None) == (len(m["runtimes"]) == 1)
    # Pareto: ResNet-18 is far bigger and slower than any searched net
    par = m["pareto"]
    ref = par["reference ResNet-18"]
    assert all(ref["params"] > 100 * v["params"] and ref["latency_ms"] > v["latency_ms"]
               for k, v in par.items() if k != "reference ResNet-18")
    # mixed precision: same-size budgets from uniform 3, 4, 6 bits; the allocation fits each
    assert m["mp_bits"] == [3, 4, 6] and m["mp_budget_bytes"] == sorted(m["mp_budget_bytes"])
    assert all(mb <= b for mb, b in zip(m["mp_mixed_bytes"], m["mp_budget_bytes"], strict=True))
    assert m["mp_uniform_acc"][0] <= m["mp_uniform_acc"][-1] + 0.02  # 3 bits never clearly beats 6 bits
    # Deep Compression: every stage smaller, Huffman lossless and within one bit of the entropy
    b = m["dc_stage_bytes"]
    assert b["original"] > b["pruned"] > b["quantised"] > b["huffman"] and m["dc_lossless"]
    assert m["dc_ratios"]["huffman"] == pytest.approx(b["original"] / b["huffman"])
    assert m["dc_sparsity"] == pytest.approx(m["dc_amount"], abs=0.02)
    # the model run on the weights decoded from the Huffman streams scores what the quantised model scored
    assert m["dc_lossless"] and m["dc_accuracy"]["huffman"] == m["dc_accuracy"]["quantised"]
    for rep in (m["huffman_indices"], m["huffman_gaps"]):
        assert rep["entropy_bits"] <= rep["average_bits"] < rep["entropy_bits"] + 1
        assert rep["average_bits"] <= rep["fixed_bits"]


@pytest.mark.notebooks
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_runs_fast_and_records(path):
    assert path.name in CHECKS, f"{path.name} has no metric checks in tests/test_notebooks.py CHECKS"
    run = _run(path.name)
    assert run.ok, str(run)  # run_notebook's timeout caps the wall time; the note reports measured times
    CHECKS[path.name](run.metrics)
    # the kernel ran with a temporary folder of its own: every file the notebook made there is gone when it stops
    assert run.left_in_tmp == [], f"{path.name} left {run.left_in_tmp} in its temporary folder"


def teardown_module():
    shutil.rmtree(OUT / "__pycache__", ignore_errors=True)
