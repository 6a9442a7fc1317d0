"""mclab.ocr.ladder: the rungs, and a short climb that keeps what pays and chains its ratios."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("rapidocr")

from mclab import ocr  # noqa: E402


def test_ladder_rungs_change_one_thing_each():
    rungs = ocr.ladder(threads=2)
    names = [r.name for r in rungs]
    assert names[0] == "RapidOCR defaults" and rungs[0].changes == {"det_max_scale": None}  # exactly as shipped
    assert rungs[1].changes == {"det_limit_type": "max", "det_limit_side": 960} and rungs[2].changes == {"threads": 2}
    assert rungs[3].before == {"ort_level": "disable"} and rungs[3].changes == {"ort_level": "all"}
    assert rungs[4].changes["runtime"] == "openvino" and rungs[5].changes["precision"] == "default"
    assert not any(n.startswith("INT8") for n in names) and rungs[-1].changes == {"use_cls": False}
    with8 = [r.name for r in ocr.ladder(threads=2, int8={"det_model": "d.xml", "rec_model": "r.xml"},
                                        int8_naive={"det_model": "dn.xml", "rec_model": "rn.xml"})]
    assert with8[6:9] == ["INT8, NNCF's CNN rules", "INT8 recogniser, convolutions only",
                          "INT8 detector, convolutions only"]
    with pytest.raises(ValueError, match=r"int8 lacks \['det_model'\]"):
        ocr.ladder(threads=2, int8={"rec_model": "r.xml"})
    with pytest.raises(ValueError, match="threads"):
        ocr.ladder(threads=0)
    with pytest.raises(ValueError, match="not OCRConfig fields"):
        ocr.Rung("typo", {"thread": 2})


def test_climb_keeps_what_pays_and_chains_its_ratios(lines):
    rungs = [ocr.Rung("one thread", {"det_limit_type": "max", "det_limit_side": 960, "threads": 1}),
             ocr.Rung("two threads", {"threads": 2}),
             ocr.Rung("graph optimisation", {}, before={"ort_level": "disable"}),
             ocr.Rung("keep no box", {"det_thresh": 0.99, "box_thresh": 0.99})]  # fast, but reads nothing
    res = ocr.climb(rungs, lines[:2], timing_docs=1, rounds=2, warmup=0, progress=False)
    assert [r.name for r in res] == ["one thread", "two threads", "graph optimisation", "keep no box"]
    assert res[0].speedup is None and res[0].cumulative == 1 and res[0].ms_per_doc > 0 and res[0].kept
    two = res[1]
    assert two.kept == (two.speedup_ci[0] > 1) and two.speedup_ci[0] <= two.speedup  # faster beyond doubt, or not kept
    assert two.verdict in ("kept", "no measurable gain", "slower") and res[0].verdict == "baseline"
    assert two.cumulative == pytest.approx(two.speedup)  # times faster than the first, kept or not
    base_cum = two.cumulative if two.kept else 1.0
    assert res[2].cumulative == base_cum  # timed against another baseline: not a step of the chain
    blind = res[3]
    assert blind.score.cer > 0.5 and not blind.kept and blind.config.box_thresh == 0.99
    assert blind.verdict == "over the CER budget" and set(ocr.VERDICTS) >= {r.verdict for r in res}
    assert all(r.score.n_lines == 2 for r in res) and set(two.stages_ms) == set(ocr.STAGES)
    assert two.as_dict()["precision"] == {"det": "fp32", "rec": "fp32", "cls": "fp32"} and "kept" in two.as_dict()
    assert two.as_dict()["verdict"] == two.verdict
    with pytest.raises(ValueError, match="timing_docs"):
        ocr.climb(rungs, lines[:2], timing_docs=3)
    with pytest.raises(ValueError, match="cer_budget_pts"):
        ocr.climb(rungs, lines[:2], cer_budget_pts=-1)


def test_a_rung_is_kept_only_when_its_whole_interval_is_above_one():
    from mclab.ocr.ladder import _verdict

    assert _verdict(None, True) == "baseline"
    assert _verdict((1.02, 1.3), True) == "kept"
    assert _verdict((0.97, 1.3), True) == "no measurable gain"  # a median above 1 is not enough
    assert _verdict((0.6, 0.9), True) == "slower"
    assert _verdict((1.5, 2.0), False) == "over the CER budget"


def test_model_bytes_counts_the_files_the_runners_read(pipe):
    assert ocr.model_bytes(pipe) == sum(os.path.getsize(pipe.files[k]) for k in pipe.runners) > 10e6
