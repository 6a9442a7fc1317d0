from mclab.lab.exercise import check


def test_check_outcomes(capsys):
    assert check("E", None, 3) is None and "not attempted" in capsys.readouterr().out
    assert check("E", 3.1, 3.0) is True
    assert check("E", 4, 3, hint="look again") is False and "hint: look again" in capsys.readouterr().out
    assert check("E", " Abc ", "abc") is True
    assert check("E", ["b", "a"], ["a", "b"]) is True
    assert check("E", "02", lambda a: a == "02") is True
    assert check("E", True, False) is False
