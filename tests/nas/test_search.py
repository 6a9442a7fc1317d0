"""mclab.nas.search: search at equal evaluations under a budget, evolution against random, compared over seeds."""
from __future__ import annotations

import numpy as np
import pytest

from mclab import nas


@pytest.mark.parametrize("method", ["evolution", "random"])
def test_search_spends_exactly_the_evaluations_within_budget(method, make_lut, scored, budget):
    lut = make_lut()
    ev = scored()
    res = nas.search(ev, lut, budget, nas.SearchConfig(method, evaluations=20, population=6, seed=0))
    assert len(res.history) == 20 == ev.evaluations            # distinct, and exactly as many as allowed
    assert all(h.latency_ms <= budget for h in res.history)
    assert res.accuracy == max(h.accuracy for h in res.history) and lut.predict(res.best) <= budget
    first = res.history[0]
    assert first.latency_ms == lut.predict(first.arch) and first.as_dict()["arch"] == str(first.arch)
    assert nas.SEARCH_METHODS == ("evolution", "random")
    assert res.best_so_far() == sorted(res.best_so_far())


def test_evolution_beats_random_on_a_smooth_objective(make_lut, scored, budget):
    lut = make_lut()
    evo = [nas.search(scored(), lut, budget, nas.SearchConfig("evolution", 40, seed=s)).accuracy
           for s in range(8)]
    rnd = [nas.search(scored(), lut, budget, nas.SearchConfig("random", 40, seed=s)).accuracy
           for s in range(8)]
    assert np.mean(evo) >= np.mean(rnd)


def test_compare_methods_runs_every_seed_at_equal_evaluations(make_lut, scored, budget):
    lut = make_lut()
    cmp = nas.compare_methods(scored(), lut, budget, evaluations=15, seeds=[3, 4, 5],
                                 config=nas.SearchConfig(population=5, parents=2))
    assert set(cmp.runs) == {"evolution", "random"} and cmp.seeds == [3, 4, 5]
    for m, rs in cmp.runs.items():
        assert [r.config.seed for r in rs] == [3, 4, 5] and all(r.config.method == m for r in rs)
        assert all(len(r.history) == 15 for r in rs)                     # equal evaluations, shared cache or not
        assert all(r.config.population == 5 and r.config.parents == 2 for r in rs)
        alone = [nas.search(scored(), lut, budget, r.config).accuracy for r in rs]
        np.testing.assert_allclose(cmp.best(m), alone)                   # the shared cache changes nothing
    np.testing.assert_allclose(cmp.diff(), cmp.best("evolution") - cmp.best("random"))
    assert cmp.mean("random") == pytest.approx(cmp.best("random").mean())
    assert cmp.sd("random") == pytest.approx(cmp.best("random").std(ddof=1))
    frame = cmp.to_frame()
    assert list(frame.index) == ["seed 3", "seed 4", "seed 5"]
    np.testing.assert_allclose(frame["evolution - random"], 100 * cmp.diff())
    assert cmp.as_dict()["best"]["evolution"] == cmp.best("evolution").tolist()
    one = nas.compare_methods(scored(), lut, budget, evaluations=5, seeds=[0], methods=["random"])
    assert one.sd("random") == 0.0 and "evolution - random" not in one.to_frame()
    with pytest.raises(ValueError, match="was not run"):
        one.best("evolution")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"seeds": []}, ValueError, "seeds"),
    ({"seeds": [0, 0]}, ValueError, "distinct"),
    ({"seeds": [0.5]}, ValueError, "seeds"),
    ({"evaluations": 0}, ValueError, "evaluations=0"),
    ({"methods": ["grid"]}, ValueError, "method='grid'"),
    ({"methods": []}, ValueError, "methods"),
    ({"config": {"population": 4}}, TypeError, "SearchConfig"),
])
def test_compare_methods_rejects_bad_input(kwargs, error, match, make_lut, scored):
    lut = make_lut()
    args = {"evaluations": 5, "seeds": [0], **kwargs}
    with pytest.raises(error, match=match):
        nas.compare_methods(scored(), lut, 10.0, **args)


def test_search_rejects_bad_budgets_and_configs(make_lut, scored):
    lut = make_lut()
    with pytest.raises(ValueError, match="below the smallest"):
        nas.search(scored(), lut, 0.01)
    with pytest.raises(ValueError, match="budget_ms"):
        nas.search(scored(), lut, -1)
    with pytest.raises(ValueError, match="method"):
        nas.SearchConfig("grid")
    with pytest.raises(ValueError, match="evaluations"):
        nas.SearchConfig(evaluations=0)
    with pytest.raises(TypeError, match="Evaluator"):
        nas.search(lambda a: 0.5, lut, 10.0)
