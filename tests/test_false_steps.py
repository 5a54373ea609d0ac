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

# --- sums of nonnegative parts, optima read from claims, limits (Gibbs with supports) ------

L_ = sp.Symbol("L", integer=True, nonnegative=True)  # a sum over 1..L may be empty
_phi = rules.LogGap


def _zero_iff(d, *conds):
    return sp.And(sp.Ge(d, 0), sp.Equivalent(sp.Eq(d, 0), sp.And(*conds)))


def _parts(claim):
    return Step(claim, "sum of nonnegative parts", ByRule(rules.ZERO_IFF_PARTS_ZERO), "⇒")


_TWO = _phi(x) + (y - 1) ** 2  # φ(x) ≥ 0 is 0 at x = 1; (y − 1)² at y = 1
CORPUS += [
    Row(
        "DROP_NONNEGATIVE dropped a term of unknown sign",
        x + y - 1,
        Step(x, "drop y − 1", ByRule(rules.DROP_NONNEGATIVE), "≥"),
        Step(x, "drop y", ByRule(rules.DROP_NONNEGATIVE), "≥"),
        twin_prev=x + y,
    ),
    Row(
        "DROP_NONNEGATIVE counted a sum that may run downwards as ≥ 0",
        sp.Sum(w[i], (i, 1, K - 2)),
        Step(sp.S.Zero, "a sum of positive terms", ByRule(rules.DROP_NONNEGATIVE), "≥"),
        Step(sp.S.Zero, "a sum of positive terms", ByRule(rules.DROP_NONNEGATIVE), "≥"),
        twin_prev=sp.Sum(w[i], (i, 1, L_)),  # possibly empty, but never negative
    ),
    Row(
        "ZERO_IFF_PARTS_ZERO took a part with a negative weight",
        _phi(x) - _phi(y) / 2,
        _parts(_zero_iff(_phi(x) - _phi(y) / 2, sp.Eq(x, 1), sp.Eq(y, 1))),
        _parts(_zero_iff(_phi(x) + _phi(y) / 2, sp.Eq(x, 1), sp.Eq(y, 1))),
        twin_prev=_phi(x) + _phi(y) / 2,
    ),
    Row(
        "ZERO_IFF_PARTS_ZERO took a condition that does not make its part vanish",
        _TWO,
        _parts(_zero_iff(_TWO, sp.Eq(x, 2), sp.Eq(y, 1))),
        _parts(_zero_iff(_TWO, sp.Eq(x, 1), sp.Eq(y, 1))),
    ),
    Row(
        "ZERO_IFF_PARTS_ZERO took a rest that may be negative",
        _phi(x) + y - 1,
        _parts(_zero_iff(_phi(x) + y - 1, sp.Eq(x, 1), sp.Eq(y, 1))),
        _parts(_zero_iff(_TWO, sp.Eq(x, 1), sp.Eq(y, 1))),
        twin_prev=_TWO,
    ),
    Row(
        "ZERO_IFF_PARTS_ZERO: a claim about another expression than the chain's",
        _TWO,
        _parts(_zero_iff(_phi(x) + 2 * (y - 1) ** 2, sp.Eq(x, 1), sp.Eq(y, 1))),
        _parts(_zero_iff(_TWO, sp.Eq(x, 1), sp.Eq(y, 1))),
    ),
    Row(
        "ZERO_IFF_PARTS_ZERO: an equality case that leaves out a part (Q(supp P) = 1)",
        _TWO,
        _parts(_zero_iff(_TWO, sp.Eq(x, 1))),
        _parts(_zero_iff(_TWO, sp.Eq(x, 1), sp.Eq(y, 1))),
    ),
    Row(
        "LIMIT_OF_CHAIN: a limit other than the one sympy computes",
        x * sp.log(x),
        Step(
            sp.Eq(sp.Limit(x * sp.log(x), x, 0, "+"), -sp.oo),
            "limit",
            ByRule(rules.LIMIT_OF_CHAIN),
            "⇒",
        ),
        Step(
            sp.Eq(sp.Limit(x * sp.log(x), x, 0, "+"), 0), "limit", ByRule(rules.LIMIT_OF_CHAIN), "⇒"
        ),
    ),
]


def _optimum_rows():
    from klspec.spec.derivations.notation import notation

    kl = sp.Sum(P[i] * sp.log(P[i] / w[i]), (i, 1, K))  # D_KL(P‖w), 0 exactly at P = w
    gibbs = _zero_iff(kl, sp.Eq(P[i], w[i]))
    objective = sp.Symbol("F")
    at_w = notation("AtW", "F(w)", lambda: x)()  # F(w) written out: x − y·0
    w_policy = notation("WPolicy", "w", lambda: sp.Lambda(i, w[i]))()
    u_policy = notation("UPolicy", "u", lambda: sp.Lambda(i, u[i]))()

    def claim(best, value):
        return Step(
            sp.And(sp.Eq(argmax(objective, P), best), sp.Eq(at_w, value)),
            "maximiser",
            ByRule(rules.OPTIMUM_BY_GIBBS, {"term": kl, "established": gibbs}),
            "⇒",
        )

    def ctx(prev, established=(gibbs,)):
        return Context(same=(objective, prev), established=established)

    good = x - y * kl
    return [
        Row(
            "OPTIMUM_BY_GIBBS: a maximiser other than where the KL vanishes",
            good,
            claim(u_policy, x),
            claim(w_policy, x),
            context=ctx(good),
        ),
        Row(
            "OPTIMUM_BY_GIBBS: the KL entering with a positive coefficient",
            x + y * kl,
            claim(w_policy, x),
            claim(w_policy, x),
            context=ctx(x + y * kl),
            twin_context=ctx(good),
            twin_prev=good,
        ),
        Row(
            "OPTIMUM_BY_GIBBS: the KL's sign and equality case never established",
            good,
            claim(w_policy, x),
            claim(w_policy, x),
            context=ctx(good, established=()),
            twin_context=ctx(good),
        ),
        Row(
            "OPTIMUM_BY_GIBBS: a maximum other than the constant",
            good,
            claim(w_policy, 2 * x),
            claim(w_policy, x),
            context=ctx(good),
        ),
    ]


CORPUS += _optimum_rows()

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
