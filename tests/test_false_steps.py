"""A corpus of false or unjustified steps: each rejected, each with a true twin accepted.

Issue 14 found a checker that accepted 20 of 21 deliberately false steps. Every
row here is one such step (a class of hole in the checker), next to the nearest
true step, which must pass: a row whose false step is rejected for a reason that
also rejects its twin proves nothing. The corpus grows with every hole closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sympy as sp

from klspec.spec.derivations._core import Step, check_step
from klspec.spec.derivations.checks import Numeric, Proved, Zero

x, y = sp.symbols("x y", positive=True)


@dataclass(frozen=True)
class Row:
    hole: str  #: the class of hole in the checker this row closes
    prev: sp.Basic
    false: Step
    twin: Step  #: the same kind of step, true


def _always(*_):
    return [Zero(sp.S.Zero, "0 = 0")]


CORPUS = [
    Row(
        "custom obligations on an '=' step replaced the equality check",
        sp.log(x + y),
        Step(sp.log(x) + sp.log(y), "log of a sum", Proved(_always)),
        Step(sp.log(x + y), "unchanged", Proved(_always)),
    ),
    Row(
        "custom obligations on an '=' step (the product rule's twin)",
        sp.log(x * y),
        Step(sp.log(x) * sp.log(y), "log of a product", Proved(_always)),
        Step(sp.log(x) + sp.log(y), "log of a product", Proved(_always)),
    ),
    Row(
        "numeric steps used an absolute tolerance",
        sp.exp(-100),
        Step(sp.S.Zero, "negligible", Numeric(), "≈"),
        Step(sp.exp(-100) * (1 + sp.Rational(1, 10**45)), "to 45 digits", Numeric(), "≈"),
    ),
    Row(
        "numeric steps used an absolute tolerance (a small difference of small numbers)",
        sp.exp(-60) - sp.exp(-61),
        Step(sp.exp(-60), "the second term is negligible", Numeric(dps=30), "≈"),
        Step(sp.exp(-60) * (1 - sp.exp(-1)), "factored", Numeric(dps=30), "≈"),
    ),
    Row(
        "numeric steps were shown with '='",
        sp.pi,
        Step(sp.Rational(355, 113), "Zu Chongzhi", Numeric(rtol=sp.Rational(1, 10**6)), "="),
        Step(sp.Rational(355, 113), "Zu Chongzhi", Numeric(rtol=sp.Rational(1, 10**6)), "≈"),
    ),
]


@pytest.mark.parametrize("row", CORPUS, ids=lambda r: r.hole)
def test_the_false_step_is_rejected_and_its_twin_accepted(row):
    false = check_step(row.prev, row.false)
    assert not false.ok, f"accepted a false step ({row.hole}): {false.detail}"
    twin = check_step(row.prev, row.twin)
    assert twin.ok, f"rejected the true twin ({row.hole}): {twin.detail}"
