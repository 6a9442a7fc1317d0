"""The same numbers on every supported Python: what the notebooks' FAST runs record, minus timings, is identical.

`.ci/run` runs `make test` on the oldest and the newest supported Python and copies each run's
``build/test-notebooks/*.metrics.json`` to ``build/metrics-py3.X/``; this test compares those folders metric by
metric. It names the interpreters to compare in ``MCLAB_COMPARE_PYTHONS`` (e.g. ``"3.11 3.13"``), and then a
missing folder fails; without the variable it compares whichever folders exist and is skipped below two.
"""
from __future__ import annotations

import json
import os

import pytest
from conftest import REPO

RUNS = REPO / "build"
ENV_VAR = "MCLAB_COMPARE_PYTHONS"

# Metrics that depend only on the data, the seeds and the pinned packages (accuracies, perplexities, SQNRs, MACs,
# parameter counts, sizes, operator counts), never on the clock. Timings, speed-ups and their intervals are left out.
# A trained model also depends on torch's thread count at training time (the order of float sums); .ci/run trains
# every model afresh on each Python (one MCLAB_CACHE per Python) in the same test order, so that is the same too.
DETERMINISTIC: dict[str, tuple[str, ...]] = {
    "04_quantisation_math": ("sqnr_8bit_per_channel_db", "sqnr_outlier_per_tensor_db", "sqnr_calib_db",
                             "int_linear_top1_agreement"),
    "05_ptq_qat": ("accuracy", "calib_size_accuracy", "n_test", "fp32_weight_bytes", "int8_weight_bytes",
                   "static_loss_points", "qat_loss_points", "ort_int8_ops"),
    "06_pruning": ("dense_accuracy", "unstructured_accuracy", "structured_accuracy", "iterative_test_accuracy",
                   "oneshot_val_accuracy", "dense_macs", "structured_macs", "dense_params", "structured_params",
                   "unstructured_nonzero_params", "file_bytes", "storage_bytes"),
    "07_distillation": ("teacher_accuracy", "scratch_accuracy", "distilled_accuracy", "teacher_params",
                        "student_params", "mac_ratio", "size_ratio"),
    "08_lowrank": ("accuracy", "accuracy_finetuned", "macs", "params"),
    "13_edge_llms": ("val_perplexity", "n_params", "format_perplexity", "format_kld", "format_linear_bytes",
                     "gguf_file_bytes", "gguf_perplexity", "llama_cpp_pytorch_perplexity"),
    "13b_llm_outliers_kv_speculative": ("fp32_perplexity", "kv_perplexity", "target_params", "draft_params"),
}


def _folders() -> dict[str, object]:
    wanted = os.environ.get(ENV_VAR, "").split()
    if wanted:
        missing = [v for v in wanted if not (RUNS / f"metrics-py{v}").is_dir()]
        assert not missing, f"{ENV_VAR}={' '.join(wanted)}, but build/metrics-py{missing[0]}/ is missing: " \
            "copy that Python's build/test-notebooks/*.metrics.json there after its `make test` (.ci/run does)"
        return {v: RUNS / f"metrics-py{v}" for v in wanted}
    found = {p.name.removeprefix("metrics-py"): p for p in sorted(RUNS.glob("metrics-py3.*")) if p.is_dir()}
    if len(found) < 2:
        pytest.skip(f"needs the FAST notebook metrics of two Pythons in build/metrics-py3.X/ (found {sorted(found)}); "
                    ".ci/run makes them")
    return found


def _metrics(folder, notebook: str) -> dict:
    path = folder / f"{notebook}.metrics.json"
    assert path.is_file(), f"{path} is missing: the notebook did not run (or record) under that Python"
    return json.loads(path.read_text())


def _compare(notebook: str, keys: tuple[str, ...]) -> None:
    folders = _folders()
    (first, base), *others = folders.items()
    ref = _metrics(base, notebook)
    missing = [k for k in keys if k not in ref]
    assert not missing, f"{notebook} recorded no {missing} (renamed? update tests/test_versions.py)"
    for version, folder in others:
        got = _metrics(folder, notebook)
        differ = {k: (ref.get(k), got.get(k)) for k in keys if ref.get(k) != got.get(k)}
        assert not differ, f"{notebook}: Python {first} vs {version} differ: {differ}"


@pytest.mark.parametrize("notebook", sorted(DETERMINISTIC))
def test_deterministic_metrics_are_identical_across_pythons(notebook):
    _compare(notebook, DETERMINISTIC[notebook])
