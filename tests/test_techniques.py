"""mclab.techniques: the source's technique table beside measured numbers, with a verdict per column."""
from __future__ import annotations

import pytest

from mclab import techniques


def test_strategy_matrix_sets_measurements_beside_the_claims():
    df = techniques.strategy_matrix({
        "INT8 quantisation": {"speedup": 1.5, "speedup_ci": (1.4, 1.6), "compression": 3.9, "accuracy_pts": -0.2},
        "TensorRT": "needs an NVIDIA GPU",
    })
    assert list(df.index) == list(techniques.CLAIMS)
    int8 = df.loc["INT8 quantisation"]
    assert int8["claimed speed-up"] == "2-4x" and int8["measured speed-up"] == "1.50x (95% CI 1.40-1.60)"
    assert int8["speed vs claim"] == "slower than claimed" and int8["size vs claim"] == "as claimed"
    assert int8["accuracy vs claim"] == "smaller loss than claimed"
    assert df.loc["TensorRT", "measured speed-up"] == "not measurable here: needs an NVIDIA GPU"
    assert df.loc["FP16", "measured speed-up"] == "not measured in this run"
    assert df.loc["lightweight architecture", "claimed speed-up"] == "10x+"


def test_unknown_technique_names_the_known_ones():
    with pytest.raises(ValueError, match=r"\['magic'\] are not in the source's table.*INT8 quantisation"):
        techniques.strategy_matrix({"magic": {"speedup": 2.0}})
