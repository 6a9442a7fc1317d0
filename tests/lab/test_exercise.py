from mclab.lab.exercise import check


def test_check_outcomes(capsys):
    assert check("E", None, 3) is None and "not attempted" in capsys.readouterr().out
    assert check("E", 3.1, 3.0) is True
    assert check("E", 4, 3, hint="look again") is False and "hint: look again" in capsys.readouterr().out
    assert check("E", " Abc ", "abc") is True
    assert check("E", ["b", "a"], ["a", "b"]) is True
    assert check("E", "02", lambda a: a == "02") is True
    assert check("E", True, False) is False


def test_under_the_grader_a_wrong_or_missing_answer_raises(monkeypatch, capsys):
    import pytest

    from mclab.lab import exercise

    monkeypatch.setenv(exercise.GRADE_ENV, "1")
    assert exercise.grading() and check("E", 3.1, 3.0) is True
    with pytest.raises(AssertionError, match="not attempted"):
        check("E", None, 3)
    with pytest.raises(AssertionError, match="not right"):
        check("E", 4, 3)
    with pytest.raises(AssertionError, match="known wrong"):
        exercise.reject("E", 60.0, [60.0, 1.0])
    assert exercise.reject("E", 1.5, [60.0, 1.0]) is True
    monkeypatch.delenv(exercise.GRADE_ENV)
    assert exercise.reject("E", 60.0, [60.0]) is False and exercise.reject("E", None, [1]) is None


def test_matches_compares_by_kind():
    import numpy as np
    import pytest

    from mclab.lab.exercise import matches

    assert matches((1.0, 2.0), (1.01, 2.0)) and not matches((1.0, 2.0), (1.0, 3.0)) and not matches(1.0, (1.0, 2.0))
    assert matches(np.float32(2.0), 2.0) and matches(np.int64(3), 3, rel_tol=0) and not matches("3", 3)
    assert not matches([1], lambda a: a[5] > 0)  # a predicate that cannot read the answer: a fail, not a crash
    with pytest.raises(ValueError, match="rel_tol"):
        matches(1.0, 1.0, rel_tol=-1)
