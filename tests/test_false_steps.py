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

from klspec.spec.derivations import rules
from klspec.spec.derivations._core import Step, check_step
from klspec.spec.derivations.checks import ByRule, Level, Numeric, Proved, Zero

x, y = sp.symbols("x y", positive=True)
j = sp.Symbol("j", integer=True)
i = sp.Symbol("i", integer=True, positive=True)
K = sp.Symbol("K", integer=True, positive=True)
g = sp.Function("g")
h = sp.Function("h")
w = sp.IndexedBase("w", positive=True)
u = sp.IndexedBase("u", positive=True)


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


CORPUS += [
    Row(
        "SIFT did not check that the delta's point lies in the range summed over",
        sp.Sum(sp.KroneckerDelta(7, j) * g(j), (j, 1, 3)),
        Step(g(7), "sift", ByRule(rules.SIFT)),
        Step(g(2), "sift", ByRule(rules.SIFT)),
    ),
    Row(
        "SIFT: a point outside the range cannot be given as inside",
        sp.Sum(sp.KroneckerDelta(K + 1, j) * g(j), (j, 1, K)),
        Step(g(K + 1), "sift", ByRule(rules.SIFT, given="K + 1 is an outcome")),
        Step(sp.S.Zero, "no term has δ = 1", Proved()),
    ),
    Row(
        "REORDER did not check that the sums are finite",
        sp.Sum(h(i, j), (j, 1, sp.oo), (i, 1, sp.oo)),
        Step(
            sp.Sum(h(i, j), (i, 1, sp.oo), (j, 1, sp.oo)),
            "reorder",
            ByRule(rules.REORDER_DOUBLE_SUM),
        ),
        Step(sp.Sum(h(i, j), (i, 1, K), (j, 1, K)), "reorder", ByRule(rules.REORDER_DOUBLE_SUM)),
    ),
    Row(
        "LOG_LE_X_MINUS_1 did not check that the sum's limits increase",
        -sp.Sum(w[i] * sp.log(u[i]), (i, K + 2, K)),
        Step(
            -sp.Sum(w[i] * (u[i] - 1), (i, K + 2, K)),
            "log x ≤ x − 1",
            ByRule(rules.LOG_LE_X_MINUS_1),
            "≥",
        ),
        Step(
            -sp.Sum(w[i] * (u[i] - 1), (i, 1, K)),
            "log x ≤ x − 1",
            ByRule(rules.LOG_LE_X_MINUS_1),
            "≥",
        ),
    ),
]
n = sp.Symbol("n", integer=True, positive=True)
k = sp.Symbol("k", integer=True, positive=True)


def _induction(claim, base):
    return ByRule(rules.INDUCTION, {"claim": claim, "a": k, "k": k, "n": n, "base": base})


_GAUSS = n * (n + 1) / 2
CORPUS += [
    Row(
        "INDUCTION took any hypothesis: it must be the claim at n − 1",
        7 + n,
        Step(sp.Sum(k, (k, 1, n)), "induction", _induction(sp.Sum(k, (k, 1, n)), Proved())),
        Step(sp.Sum(k, (k, 1, n)), "induction", _induction(sp.Sum(k, (k, 1, n)), Proved())),
    ),
    Row(
        "INDUCTION did not check the base case",
        (_GAUSS + 7).xreplace({n: n - 1}) + n,
        Step(sp.Sum(k, (k, 1, n)), "induction", _induction(_GAUSS + 7, Proved())),
        Step(sp.Sum(k, (k, 1, n)), "induction", _induction(_GAUSS, Proved())),
    ),
]

a_, b_ = sp.symbols("a b", positive=True)
P = sp.IndexedBase("P", positive=True)
beta = sp.Symbol("beta", positive=True)


def _kl_to(q):
    return sp.Sum(P[i] * sp.log(P[i] / q), (i, 1, 2))


def _drop(q):
    from klspec.spec.derivations.checks import UnderConstraint, sums_to_one

    return ByRule(
        rules.DROP_KL,
        {"term": _kl_to(q), "p_sums_to_one": UnderConstraint("ΣP = 1", sums_to_one(P, 1, 2))},
    )


CORPUS += [
    Row(
        "INSTANCE used identities no chain proved",
        sp.log(2 * b_),
        Step(
            sp.log(2) * sp.log(b_),
            "instance",
            ByRule(
                rules.INSTANCE,
                {
                    "identity": (sp.log(a_ * b_), sp.log(a_) * sp.log(b_)),
                    "over": (a_,),
                    "proof": Proved(),
                },
            ),
        ),
        Step(
            sp.log(2) + sp.log(b_),
            "instance",
            ByRule(
                rules.INSTANCE,
                {
                    "identity": (sp.log(a_ * b_), sp.log(a_) + sp.log(b_)),
                    "over": (a_,),
                    "proof": Proved(),
                },
            ),
        ),
    ),
    Row(
        "DROP_KL did not check that the term is a KL between distributions",
        a_ - beta * _kl_to(sp.Rational(1, 3)),
        Step(a_, "Gibbs", _drop(sp.Rational(1, 3)), "≤"),
        Step(a_, "Gibbs", _drop(sp.Rational(1, 2)), "≤"),
    ),
]

theta, t = sp.symbols("theta t", positive=True)
m = sp.Symbol("m", real=True)
_HAT = sp.Symbol(r"\hat{\theta}")


def _convex(objective, var, solution, **more):
    params = {"objective": objective, "var": var, "solution": solution, **more}
    return ByRule(rules.CONVEX_STATIONARY_POINT, params)


_UNIT = {"interval": (0, 1), "onto_domain": (t, t / (1 + t))}
CORPUS += [
    Row(
        "CONVEX_STATIONARY_POINT did not check that the objective is the previous line",
        (m - 1) ** 2,
        Step(sp.Eq(_HAT, 2), "convex", _convex((m - 2) ** 2, m, 2), "⇒"),
        Step(sp.Eq(_HAT, 1), "convex", _convex((m - 1) ** 2, m, 1), "⇒"),
    ),
    Row(
        "CONVEX_STATIONARY_POINT did not check that the minimiser lies in the interval",
        (theta - 2) ** 2,
        Step(sp.Eq(_HAT, 2), "convex", _convex((theta - 2) ** 2, theta, 2, **_UNIT), "⇒"),
        Step(sp.Eq(_HAT, 2), "convex", _convex((theta - 2) ** 2, theta, 2), "⇒"),
    ),
    Row(
        "CONVEX_STATIONARY_POINT did not check that the parametrisation covers the domain",
        (theta - sp.Rational(1, 4)) ** 2,
        Step(
            sp.Eq(_HAT, sp.Rational(1, 4)),
            "convex",
            _convex(
                (theta - sp.Rational(1, 4)) ** 2,
                theta,
                sp.Rational(1, 4),
                interval=(0, 1),
                onto_domain=(t, t / (2 + 2 * t)),
            ),
            "⇒",
        ),
        Step(
            sp.Eq(_HAT, sp.Rational(1, 4)),
            "convex",
            _convex((theta - sp.Rational(1, 4)) ** 2, theta, sp.Rational(1, 4), **_UNIT),
            "⇒",
        ),
    ),
]

_x = sp.Symbol("x", positive=True)


def _int1(f):
    return sp.Integral(f, (_x, 1, sp.oo))


CORPUS += [
    Row(
        "divergent integrals were merged as numbers (0 = log 2)",
        _int1(1 / _x) - _int1(1 / (_x + 1)),
        Step(sp.log(2), "merge and integrate", Proved()),
        Step(sp.Rational(1, 2), "merge and integrate", Proved()),
    ),
    Row(
        "infinite sums were split without their parts converging",
        sp.Sum(1 / k - 1 / (k + 1), (k, 1, sp.oo)),
        Step(
            sp.Sum(1 / k, (k, 1, sp.oo)) - sp.Sum(1 / (k + 1), (k, 1, sp.oo)),
            "split the sum",
            Proved(),
        ),
        Step(
            sp.Sum(1 / k, (k, 1, K)) - sp.Sum(1 / (k + 1), (k, 1, K)),
            "split the sum",
            Proved(),
        ),
    ),
]

# Twins that start from their own (true) previous line.
_TWIN_PREV = {
    "divergent integrals were merged as numbers (0 = log 2)": _int1(1 / _x**2)
    - _int1(1 / (_x + 1) ** 2),
    "infinite sums were split without their parts converging": sp.Sum(
        1 / k - 1 / (k + 1), (k, 1, K)
    ),
    "DROP_KL did not check that the term is a KL between distributions": a_
    - beta * _kl_to(sp.Rational(1, 2)),
    "INDUCTION took any hypothesis: it must be the claim at n − 1": sp.Sum(k, (k, 1, n - 1)) + n,
    "INDUCTION did not check the base case": _GAUSS.xreplace({n: n - 1}) + n,
    "SIFT did not check that the delta's point lies in the range summed over": sp.Sum(
        sp.KroneckerDelta(2, j) * g(j), (j, 1, 3)
    ),
    "REORDER did not check that the sums are finite": sp.Sum(h(i, j), (j, 1, K), (i, 1, K)),
    "LOG_LE_X_MINUS_1 did not check that the sum's limits increase": -sp.Sum(
        w[i] * sp.log(u[i]), (i, 1, K)
    ),
}


@pytest.mark.parametrize("row", CORPUS, ids=lambda r: r.hole)
def test_the_false_step_is_rejected_and_its_twin_accepted(row):
    false = check_step(row.prev, row.false)
    assert not false.ok, f"accepted a false step ({row.hole}): {false.detail}"
    twin = check_step(_TWIN_PREV.get(row.hole, row.prev), row.twin)
    assert twin.ok, f"rejected the true twin ({row.hole}): {twin.detail}"


def test_a_side_condition_taken_as_given_makes_the_step_asserted_and_says_so():
    """A sample in the support is a hypothesis, not something sympy can check."""
    x_ = sp.IndexedBase("x", integer=True, positive=True)
    prev = sp.Sum(sp.KroneckerDelta(x_[i], j) * g(j), (j, 1, K))
    undecided = check_step(prev, Step(g(x_[i]), "sift", ByRule(rules.SIFT)))
    assert not undecided.ok
    assert "state it with given=" in undecided.detail
    given = ByRule(rules.SIFT, given="x_i is an outcome")
    r = check_step(prev, Step(g(x_[i]), "sift", given))
    assert r.ok, r.detail
    assert r.level is Level.ASSERTED
    assert r.as_claimed
    assert r.label == "asserted: sift with a Kronecker delta, given x_i is an outcome"
    # Given where it is provable: the step is by rule, not what it claims.
    proved = check_step(
        sp.Sum(sp.KroneckerDelta(2, j) * g(j), (j, 1, 3)), Step(g(2), "sift", given)
    )
    assert proved.ok
    assert proved.level is Level.BY_RULE
    assert not proved.as_claimed
