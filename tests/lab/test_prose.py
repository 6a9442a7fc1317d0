"""mclab.lab.prose: the words follow the interval, and bad bounds are refused."""
import math

import pytest

from mclab.lab import prose

WORDS = dict(above="faster", below="slower", within="level")


@pytest.mark.parametrize(("lo", "hi", "ref", "want"), [
    (1.2, 1.5, 1.0, "faster"), (0.5, 0.9, 1.0, "slower"), (0.9, 1.1, 1.0, "level"),
    (1.0, 1.3, 1.0, "level"),            # touching the reference is not clear of it
    (0.2, 0.4, 0.0, "faster"), (-3.0, -1.0, 0.0, "slower"),
])
def test_versus_reads_the_interval(lo, hi, ref, want):
    assert prose.versus(lo, hi, ref=ref, **WORDS) == want


@pytest.mark.parametrize(("lo", "hi", "match"), [(2.0, 1.0, "lo=2.0"), (math.nan, 1.0, "lo=nan"),
                                                 (0.0, math.inf, "hi=inf"), ("1", 2.0, "lo='1'")])
def test_versus_refuses_bad_bounds(lo, hi, match):
    with pytest.raises(ValueError, match=match):
        prose.versus(lo, hi, **WORDS)
