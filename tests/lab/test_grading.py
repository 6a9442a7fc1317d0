"""The instructor workflow: every exercise's right answer passes its nbgrader test cell and its plausible wrong answer
fails it (the cells are taken from the notebooks and run on small stand-ins, no notebook is executed); the student
release carries no solution; and nbgrader grades three synthetic submissions of five notebooks (marked
``notebooks``: it executes them)."""
from __future__ import annotations

import copy
import functools
import re
import types

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from conftest import REPO

from mclab import bench, coding, distill, distributed, energy, flops, llm, lowrank, models, nas, prune, quant, scenarios
from mclab.lab import exercise, grading, notebooks
from mclab.runtimes import torch_compile

NB_DIR = REPO / "notebooks"
SOLUTIONS = grading.solutions()  # the answer key, from the repository's instructor/solutions.py
NS = types.SimpleNamespace


def _nb01():
    sizes = pd.DataFrame({"size": [96, 224], "pixels_vs_smallest": [1.0, (224 / 96) ** 2], "p50_ms": [2.82, 4.96]})
    sizes["latency_vs_smallest"] = sizes.p50_ms / sizes.p50_ms.iloc[0]
    stage_ms = {"pre-processing": 1.06, "inference": 4.90, "post-processing": 0.0047}
    return {"sizes": sizes, "stage_ms": stage_ms, "total_ms": sum(stage_ms.values())}


def _nb02():
    return {"offline": 850.0, "RATES": [25, 100, 200], "service": lambda b: 4.2 * b ** 0.8}


def _nb03():
    zdf = pd.DataFrame({"intensity": [3.2, 5.2, 39.5], "achieved GFLOP/s": [22.1, 30.6, 197.5]},
                       index=["mobilenet_v3_small", "shufflenet_v2_x1_0", "resnet18"])
    return {"zdf": zdf, "peak": 415.3, "bw": 26.2, "nn": nn}


def _nb04():
    torch.manual_seed(0)
    w = 0.05 * torch.randn(64, 64, 3, 3)
    return {"W": w, "SQNR_8BIT_CHANNEL": quant.sqnr_by_bits(w, [8], symmetric=True, axis=0)[8]}


def _nb08():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    return {"net": net.eval(), "copy": copy}


def _nb09():
    levels = [NS(added={}), NS(added={}), NS(added={"com.microsoft:FusedConv": 9}), NS(added={})]
    return {"bn": NS(ops={"Conv": 20, "BatchNormalization": 20}), "levels": levels, "fusion": NS(speedup=2.36),
            "flo": 1.82, "fhi": 3.35}


def _nb12():
    torch.manual_seed(0)
    when = pd.DataFrame({"graphs": [1, 1, 2], "graph breaks": [0, 0, 1]},
                        index=["small_cnn(16)", "MLP block", "MLP block + .item() branch"])
    return {"unfrozen": NS(report=NS(compile_s=0.364)), "report": NS(compile_s=2.26),
            "ab_unfrozen": NS(a=NS(p50_ms=0.2237), b=NS(p50_ms=0.1652)), "when": when, "models": models,
            "torch_compile": torch_compile, "MLP_WIDTH": 32, "xm": torch.randn(1, 8, 32)}


def _nb13():
    linear = {g: 98_304 + 1_536 * 16 * 32 / g for g in (32, 128)}  # packed values + 3 bytes per group
    return {"table": {f"INT4 RTN g{g}": NS(linear_bytes=b) for g, b in linear.items()}}


def _nb13b():
    return {"llm": llm, "S_STAR": 16.0, "outliers": pd.DataFrame({"RTN g128 loss %": [2.4]}, index=[16.0]),
            "rtn_loss_pct": lambda n: 0.9}


def _nb14():
    cost1 = NS(macs=37_000_000, params=11_200_000, activation_bytes=1_400_000, input_shape=(1, 1, 32, 32))
    return {"cost1": cost1, "lat1": NS(p50_ms=1.8), "BATCH": 32,
            "cloud": {"g4dn.xlarge (T4)": energy.cloud_cost(900.0, energy.INSTANCE_PRICES_USD_H["g4dn.xlarge (T4)"])}}


def _nb00():
    results = pd.DataFrame({"model": ["mobilenet_v3_small", "mobilenet_v3_large"], "params": [2_542_856, 5_483_032],
                            "size_mb": [10.31, 22.14]})  # state_dict sizes: parameters plus BatchNorm buffers
    return {"MATMUL_N": 512, "gflops_fp32": 120.0, "notebooks": notebooks, "scenarios": scenarios, "results": results}


def _nb05():
    accs = {"minmax": (0.962, 0.947, 0.973), "percentile": (0.968, 0.954, 0.978), "mse": (0.965, 0.950, 0.976)}
    acc = {f"static INT8 {m} (ONNX Runtime)": NS(accuracy=a, ci95=(lo, hi)) for m, (a, lo, hi) in accs.items()}
    return {"SIZE_RATIO": 3.91, "acc": acc}


def _nb06():
    from torchvision.models import resnet18

    model, x = resnet18(num_classes=10).eval(), torch.randn(1, 3, 32, 32)
    table = pd.DataFrame({0.5: [1.0, 3.0, 0.2], 0.9: [8.0, 30.0, 1.5]}, index=["conv1", "layer4.1.conv2", "fc"])
    return {"prune": prune, "copy": copy, "model": model, "x": x, "dense_cost": flops.count(model, x),
            "table": table, "MOST_SENSITIVE": "layer4.1.conv2", "SCAN_AMOUNTS": [0.5, 0.95]}


def _nb07():
    from scipy import stats

    torch.manual_seed(0)
    scratch, distilled = [0.80, 0.82, 0.79, 0.81], [0.83, 0.84, 0.80, 0.84]
    g = np.subtract(distilled, scratch)
    half = stats.t.ppf(0.975, len(g) - 1) * g.std(ddof=1) / np.sqrt(len(g))
    return {"distill": distill, "s_logits": torch.randn(256, 10), "t_logits": torch.randn(300, 10),
            "y8": torch.randint(0, 10, (256,)),
            "cmp": NS(scratch=scratch, distilled=distilled, gain=NS(low=g.mean() - half, high=g.mean() + half))}


def _nb10():
    prec_table = pd.DataFrame({"computes in": ["bf16", "bf16", "fp32"], "max |err| vs PyTorch": [0.041, 0.041, 2e-6]},
                              index=["default", "bf16", "fp32"])
    return {"default_precision": "bf16", "prec_table": prec_table, "y_ref": np.linspace(-3.1, 4.4, 20).reshape(2, 10),
            "hints": pd.DataFrame({"streams": [1, 2], "requests": [1, 2], "async items/s": [377.3, 399.9]},
                                  index=["LATENCY", "THROUGHPUT"])}


def _nb11():
    from mclab.runtimes import ncnn as rncnn

    ncnn_table = pd.DataFrame({"max |err|": [2.1e-6, 0.031]}, index=["fp32 pinned", "defaults"])
    ref = np.linspace(-9.0, 14.2, 40).reshape(4, 10)  # logits: the largest |logit| is 14.2
    return {"tfl": pd.DataFrame({"KB": [245.0, 66.0]}, index=["fp32", "int8"]), "rncnn": rncnn,
            "ncnn_table": ncnn_table, "ref": ref}


def _nb16():
    checks = [NS(metric="power_w", hard=True, measurable=True, limit=10, margin=9.74),
              NS(metric="peak_memory_mb", hard=True, measurable=True, limit=2048, margin=1829.7),
              NS(metric="latency_p99_ms", hard=True, measurable=True, limit=100, margin=99.3),
              NS(metric="energy_mj", hard=False, measurable=True, limit=1, margin=0.01)]
    variants = {"FP32 baseline": NS(accuracy=0.975, latency_p99_ms=1.9), "INT8": NS(accuracy=0.972, latency_p99_ms=0.9),
                "pruned 50% ch + INT8": NS(accuracy=0.951, latency_p99_ms=0.6)}
    return {"SCENARIOS": ["edge"], "trails": {"edge": NS(final=NS(validation=NS(checks=checks)))},
            "variants": variants, "names": list(variants), "front2": [0, 1, 2]}


def _nb17():
    return {"two": NS(startup_s=3.2, gather_s=0.12, throughput_per_s=850.0), "distributed": distributed}


def _nb18():
    from mclab import ocr

    best = NS(name="OpenVINO default precision", stages_ms={  # a full run's medians, ms
        "preprocess": 2.1, "detect": 21.0, "db_post": 1.9, "crop": 0.6, "classify": 4.2, "recognise": 38.5,
        "decode": 1.4})
    return {"default_pipe": _ocr_defaults(), "ocr": ocr, "best": best}


@functools.cache
def _ocr_defaults():
    from mclab import ocr

    return ocr.load(ocr.OCRConfig(threads=1))  # the notebook's default_pipe: the real sizing, not a copy of it


def _nb19():
    base = nn.Sequential(nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 3, groups=16))
    space = nas.SupernetConfig()
    n_archs = (sum((len(space.kernels) * len(space.expands)) ** d for d in space.depths)) ** space.n_stages
    return {"space": space, "n_archs": n_archs, "coding": coding, "base": base, "dw_name": "1",
            "sens": NS(weight_bytes={"1": {3: -(-144 * 3 // 8) + 4 * 16}})}


# stand-ins for what each notebook has computed when its exercises run (values like a FAST run's)
STANDINS = {"00_start_here": _nb00, "01_latency": _nb01, "02_throughput": _nb02, "03_compute_resources": _nb03,
            "04_quantisation_math": _nb04, "05_ptq_qat": _nb05, "06_pruning": _nb06, "07_distillation": _nb07,
            "08_lowrank": _nb08, "09_onnx_runtime": _nb09, "10_openvino": _nb10, "11_mobile_runtimes": _nb11,
            "12_tensorrt_torch_compile": _nb12, "13_edge_llms": _nb13, "13b_llm_outliers_kv_speculative": _nb13b,
            "14_energy_cost": _nb14, "15_reliability": dict, "16_tradeoffs_deployment": _nb16,
            "17_distributed_inference": _nb17, "18_ocr_case_study": _nb18,
            "19_search": _nb19}
CASES = [(stem, gid) for stem in STANDINS for gid in SOLUTIONS[stem]]


def _cells(stem: str, gid: str) -> tuple[str, str]:
    nb = nbformat.read(NB_DIR / f"{stem}.ipynb", as_version=4)
    a, t = grading.exercise_cells(nb)[gid]
    return nb.cells[a].source, nb.cells[t].source


def _run(stem: str, answer: str, test: str) -> None:
    ns = {"exercise": exercise, "bench": bench, "energy": energy, "flops": flops, "llm": llm, "lowrank": lowrank,
          "quant": quant, "np": np, "pd": pd, "torch": torch, **STANDINS[stem]()}
    exec(answer, ns)  # noqa: S102 - the notebook's own cells, run as the notebook runs them
    exec(test, ns)  # noqa: S102


@pytest.mark.parametrize(("stem", "gid"), CASES, ids=[f"{s[:3]}{g}" for s, g in CASES])
def test_right_passes_wrong_and_blank_fail_under_the_grader(stem, gid, monkeypatch, capsys):
    answer_cell, test_cell = _cells(stem, gid)
    sol = SOLUTIONS[stem][gid]
    hidden = f"{test_cell}\n{sol.hidden}"
    monkeypatch.setenv(exercise.GRADE_ENV, "1")
    _run(stem, sol.answer, hidden)  # the solution passes the visible and the hidden tests
    assert "PASS" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        _run(stem, sol.wrong, test_cell)  # the plausible slip fails the visible test alone
    with pytest.raises(AssertionError, match="not attempted"):
        _run(stem, answer_cell, hidden)
    monkeypatch.delenv(exercise.GRADE_ENV)
    _run(stem, answer_cell, test_cell)  # a learner's unanswered copy runs on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(NB_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_every_exercise_has_a_key_and_no_solution_in_the_learners_copy(path):
    nb = nbformat.read(path, as_version=4)
    cells = grading.exercise_cells(nb)
    assert set(SOLUTIONS.get(path.stem, {})) == set(cells)
    assert cells, "every notebook's exercises are nbgrader cells"
    for a, t in cells.values():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]* = None(  # .*)?", nb.cells[a].source.strip()), nb.cells[a].source
        assert "exercise.check(" in nb.cells[t].source and nb.cells[t].metadata.nbgrader["points"] > 0
        assert nb.cells[t].metadata.nbgrader["locked"] and not nb.cells[a].metadata.nbgrader["locked"]


def test_release_strips_solutions_and_hidden_tests(tmp_path):
    stems = ["02_throughput", "08_lowrank"]
    dest = grading.assignments([NB_DIR / f"{s}.ipynb" for s in stems], tmp_path)
    for s in stems:
        source = (tmp_path / "nbgrader" / "source" / s / f"{s}.ipynb").read_text()
        assert "### BEGIN SOLUTION" in source
        released = nbformat.read(dest / s / f"{s}.ipynb", as_version=4)
        text = "\n".join(c.source for c in released.cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        committed = nbformat.read(NB_DIR / f"{s}.ipynb", as_version=4)
        for a, _ in grading.exercise_cells(committed).values():  # the answer cell as the learner sees it
            assert released.cells[a].source.strip() == committed.cells[a].source.strip()
    assert "### BEGIN HIDDEN TESTS" in (tmp_path / "nbgrader" / "source" / "02_throughput" / "02_throughput.ipynb"
                                        ).read_text()


def test_the_answer_key_is_in_the_repository_not_in_the_package(tmp_path):
    assert grading.KEY == REPO / "instructor" / "solutions.py" and SOLUTIONS
    assert not list((REPO / "mclab").rglob("solutions.py")), "the installed package must not carry the answer key"
    with pytest.raises(FileNotFoundError, match="absent: it ships with the mclab repository"):
        grading.solutions(tmp_path / "instructor" / "solutions.py")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="kind"):
        grading.submission(NB_DIR / "02_throughput.ipynb", "half")
    with pytest.raises(ValueError, match="parameters"):
        grading.inject_parameters(nbformat.v4.new_notebook(), FAST=True)


# the pipeline end to end (release, inject FAST, autograde, gradebook, CSV and HTML) on two assignments; every
# exercise's right, wrong and blank answers are graded one by one above. Four runs, not six: the right student hands
# in both notebooks, the wrong one only the first and the blank one only the second, so the gradebook also shows
# what a notebook that was never handed in scores (0, as nbgrader counts it)
GRADED = ["01_latency", "02_throughput"]
HANDED_IN = {"right": GRADED, "wrong": GRADED[:1], "blank": GRADED[1:]}


@pytest.mark.notebooks
def test_grade_three_synthetic_submissions(tmp_path):
    subs = tmp_path / "submitted"
    assert set(HANDED_IN) == set(grading.KINDS)
    for kind, stems in HANDED_IN.items():
        for stem in stems:
            d = subs / kind / stem
            d.mkdir(parents=True)
            nbformat.write(grading.submission(NB_DIR / f"{stem}.ipynb", kind), d / f"{stem}.ipynb")
    table = grading.grade(subs, NB_DIR, tmp_path / "grades")
    n = sum(len(SOLUTIONS[s]) for s in GRADED)
    cols = [c for c in table.columns if c not in ("total", "max")]
    assert len(cols) == n and set(table.index) == set(grading.KINDS)
    assert (table.loc["right", cols] == 1).all() and table.loc["right", "total"] == n == table.loc["right", "max"]
    assert table.loc["wrong", "total"] == 0 and table.loc["blank", "total"] == 0
    assert (table["max"] == n).all()  # a notebook not handed in still counts towards the maximum
    csv = pd.read_csv(tmp_path / "grades" / "grades.csv", index_col="student")
    assert csv.loc["right", "total"] == n
    html = (tmp_path / "grades" / "grades.html").read_text()
    assert "<table" in html and "02_throughput ex1" in html and "blank" in html
