"""A corpus of false or unjustified steps: each rejected, each with a true twin accepted.

Issue 14 found a checker that accepted 20 of 21 deliberately false steps. Every
row here is one such step (a class of hole in the checker), next to the nearest
true step, which must pass: a row whose false step is rejected for a reason that
also rejects its twin proves nothing. The corpus grows with every hole closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import sympy as sp

from klspec.spec.derivations import rules
from klspec.spec.derivations._core import Step, check_step
from klspec.spec.derivations.checks import (
    ByRule,
    Level,
    Numeric,
    Proved,
    UnderConstraint,
    Zero,
    sums_to_one,
)
from klspec.spec.derivations.claims import Context, argmax, argmin, in_context

x, y = sp.symbols("x y", positive=True)
_xpos = sp.Symbol("xp", positive=True)
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
    #: What the chain knows at the step (claims.Context), for rules that read it.
    context: Context = field(default_factory=Context)
    twin_context: Context | None = None  #: the twin's, if different
    twin_prev: sp.Basic | None = None  #: the twin's previous line, if different


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
        {"term": _kl_to(q), "p_sums_to_one": UnderConstraint(sums_to_one(P, 1, 2))},
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


def _convex(**more):
    return ByRule(rules.CONVEX_STATIONARY_POINT, more)


_UNIT = {"interval": (0, 1), "onto_domain": (t, t / (1 + t))}
CORPUS += [
    Row(
        "CONVEX_STATIONARY_POINT did not check that the objective is the previous line",
        (m - 1) ** 2,
        Step(sp.Eq(argmin((m - 2) ** 2, m), 2), "convex", _convex(), "⇒"),
        Step(sp.Eq(argmin((m - 1) ** 2, m), 1), "convex", _convex(), "⇒"),
    ),
    Row(
        "CONVEX_STATIONARY_POINT did not check that the minimiser lies in the interval",
        (theta - 2) ** 2,
        Step(sp.Eq(argmin((theta - 2) ** 2, theta), 2), "convex", _convex(**_UNIT), "⇒"),
        Step(sp.Eq(argmin((theta - 2) ** 2, theta), 2), "convex", _convex(), "⇒"),
    ),
    Row(
        "CONVEX_STATIONARY_POINT did not check that the parametrisation covers the domain",
        (theta - sp.Rational(1, 4)) ** 2,
        Step(
            sp.Eq(argmin((theta - sp.Rational(1, 4)) ** 2, theta), sp.Rational(1, 4)),
            "convex",
            _convex(interval=(0, 1), onto_domain=(t, t / (2 + 2 * t))),
            "⇒",
        ),
        Step(
            sp.Eq(argmin((theta - sp.Rational(1, 4)) ** 2, theta), sp.Rational(1, 4)),
            "convex",
            _convex(**_UNIT),
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

# --- ⇒ claims: structured, read by the rule that licenses them ---------------------------

_F = 3 * (m - 1) ** 2 + 5  # = a·g + c with g = (m − 1)², a = 3, c = 5
_G = -2 * (m - 1) ** 2 + 5  # a = −2 < 0
s_ = sp.Symbol("s", positive=True)

CORPUS += [
    Row(
        "AFFINE_ARGMIN applied to a different objective than the chain's",
        _F,
        Step(
            sp.Eq(argmin((m - 2) ** 2, m), argmin((m - 1) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN),
            "⇒",
        ),
        Step(
            sp.Eq(argmin(_F, m), argmin((m - 1) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN),
            "⇒",
        ),
    ),
    Row(
        "AFFINE_ARGMIN did not read the claim's right-hand objective",
        _F,
        Step(
            sp.Eq(argmin(_F, m), argmin((m - 2) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN),
            "⇒",
        ),
        Step(
            sp.Eq(argmin(_F, m), argmin((m - 1) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN),
            "⇒",
        ),
    ),
    Row(
        "AFFINE_ARGMIN_TO_ARGMAX: a claim of argmin where the coefficient makes it argmax",
        _G,
        Step(
            sp.Eq(argmin(_G, m), argmin((m - 1) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN_TO_ARGMAX),
            "⇒",
        ),
        Step(
            sp.Eq(argmin(_G, m), argmax((m - 1) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN_TO_ARGMAX),
            "⇒",
        ),
    ),
    Row(
        "AFFINE_ARGMIN: the two sides optimise over different variables",
        _F + theta,
        Step(
            sp.Eq(argmin(_F + theta, m), argmin((m - 1) ** 2, theta)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN),
            "⇒",
        ),
        Step(
            sp.Eq(argmin(_F + theta, m), argmin((m - 1) ** 2, m)),
            "affine",
            ByRule(rules.AFFINE_ARGMIN),
            "⇒",
        ),
    ),
    Row(
        "a ⇒ claim whose words were unrelated to what was checked",
        (m - 1) ** 2,
        Step(sp.Eq(argmin((m - 1) ** 2, m), 5), "by inspection", Proved(_always), "⇒"),
        Step(sp.Eq(argmin((m - 1) ** 2, m), 1), "convex", _convex(), "⇒"),
    ),
    Row(
        "a ⇒ claim of an equation proved by unrelated obligations",
        (m - 1) ** 2,
        Step(sp.Eq(sp.Derivative((m - 1) ** 2, m), 2 * m), "differentiate", Proved(_always), "⇒"),
        Step(sp.Eq(sp.Derivative((m - 1) ** 2, m), 2 * m - 2), "differentiate", Proved(), "⇒"),
    ),
    Row(
        "UNIQUE_STATIONARY_COERCIVE did not check that the objective is the previous line",
        s_ + 1 / s_,
        Step(
            sp.Eq(argmin(s_ + 4 / s_, s_), 2),
            "coercive",
            ByRule(rules.UNIQUE_STATIONARY_COERCIVE),
            "⇒",
        ),
        Step(
            sp.Eq(argmin(s_ + 1 / s_, s_), 1),
            "coercive",
            ByRule(rules.UNIQUE_STATIONARY_COERCIVE),
            "⇒",
        ),
    ),
    Row(
        "UNIQUE_STATIONARY_COERCIVE fixed another variable at a value nothing showed optimal",
        (m - 1) ** 2 + s_ + 1 / s_,
        Step(
            sp.Eq(argmin(16 + s_ + 1 / s_, s_), 1),
            "coercive at m = 5",
            ByRule(rules.UNIQUE_STATIONARY_COERCIVE, {"at": {m: 5}}),
            "⇒",
        ),
        Step(
            sp.Eq(argmin(s_ + 1 / s_, s_), 1),
            "coercive at m = 1",
            ByRule(rules.UNIQUE_STATIONARY_COERCIVE, {"at": {m: 1}}),
            "⇒",
        ),
        context=Context(same=((m - 1) ** 2 + s_ + 1 / s_,)),
        twin_context=Context(
            same=((m - 1) ** 2 + s_ + 1 / s_,),
            established=(sp.Eq(argmin((m - 1) ** 2 + s_ + 1 / s_, m), 1),),
        ),
    ),
]

mu = sp.Symbol("mu", real=True)
E = sp.Function("E")  # a quantity an earlier chain evaluated
_GENERAL = sp.Eq(argmin((m - mu) ** 2, m), mu)


def _specialise(value):
    return ByRule(rules.SPECIALISE, {"values": {mu: value}, "because": {mu: E(1)}})


CORPUS += [
    Row(
        "SPECIALISE took values that are not what the chains computed",
        sp.S.Zero,
        Step(sp.Eq(argmin((m - 4) ** 2, m), 4), "at μ = 4", _specialise(4), "⇒"),
        Step(sp.Eq(argmin((m - 3) ** 2, m), 3), "at μ = 3", _specialise(3), "⇒"),
        context=Context(established=(_GENERAL,), known={E(1): sp.Integer(3)}),
    ),
    Row(
        "SPECIALISE claimed a consequence that was never established",
        sp.S.Zero,
        Step(sp.Eq(argmin((m - 3) ** 2, m), 7), "at μ = 3", _specialise(3), "⇒"),
        Step(sp.Eq(argmin((m - 3) ** 2, m), 3), "at μ = 3", _specialise(3), "⇒"),
        context=Context(established=(_GENERAL,), known={E(1): sp.Integer(3)}),
    ),
]


# --- SPLIT_LAST_TOKEN: the instance is checked, the identity must be a chain above --------


def _split(parts, instance=None):
    from klspec.spec.derivations import autoregressive as ar

    return ByRule(
        rules.SPLIT_LAST_TOKEN,
        {
            "whole": ar.SeqKL(ar.T),
            "parts": parts,
            "identity": (ar.KLjoint(), ar.KLmarginal() + ar.ExpectedConditionalKL()),
            "instance": instance
            or ar.ForSizes(
                ((2, 2), (2, 3)), ar._instantiate, "|V|×T ∈ {2×2, 2×3}", constraint=ar._normalised
            ),
        },
    )


def _split_rows():
    from klspec.spec.derivations import autoregressive as ar

    chain_rule = Context(known={ar.KLjoint(): ar.KLmarginal() + ar.ExpectedConditionalKL()})
    right = ar.SeqKL(ar.T - 1) + ar.TokKL(ar.T)
    return [
        Row(
            "SPLIT_LAST_TOKEN made an unchecked replacement",
            ar.SeqKL(ar.T),
            Step(
                ar.SeqKL(ar.T - 1) + 2 * ar.TokKL(ar.T),
                "chain rule",
                _split(ar.SeqKL(ar.T - 1) + 2 * ar.TokKL(ar.T)),
            ),
            Step(right, "chain rule", _split(right)),
            context=chain_rule,
        ),
        Row(
            "SPLIT_LAST_TOKEN used a two-variable chain rule no chain above proved",
            ar.SeqKL(ar.T),
            Step(right, "chain rule", _split(right)),
            Step(right, "chain rule", _split(right)),
            twin_context=chain_rule,
        ),
    ]


CORPUS += _split_rows()


# --- declared assumptions: notation, bound variables, constraints -------------------------

a_pos, b_pos = sp.symbols("a_pos b_pos", positive=True)
p_ = sp.IndexedBase("p", positive=True)
q_ = sp.IndexedBase("q", positive=True)
xs = sp.IndexedBase("xs", integer=True, positive=True)


def _declared_positive(name, body):
    from klspec.spec.derivations.notation import notation

    return notation(name, name, lambda: body, positive=True)()


_DIFF = _declared_positive("Diff", a_pos - b_pos)  # declared > 0, but a − b may be < 0
_TOTAL = _declared_positive("Total", a_pos + b_pos)
_COUNT = _declared_positive("Count", sp.Sum(sp.KroneckerDelta(xs[i], 3), (i, 1, n)))  # may be 0
_SIZE = _declared_positive("Size", sp.Sum(xs[i], (i, 1, n)))  # a sum of positive terms

CORPUS += [
    Row(
        "positivity declared on a composite notation was trusted (a − b declared > 0)",
        sp.log(_DIFF**2),
        Step(2 * sp.log(_DIFF), "log of a square", Proved()),
        Step(2 * sp.log(_TOTAL), "log of a square", Proved()),
        twin_prev=sp.log(_TOTAL**2),
    ),
    Row(
        "positivity declared on a count was trusted (a sum of deltas can be 0)",
        sp.log(_COUNT**2),
        Step(2 * sp.log(_COUNT), "log of a square", Proved()),
        Step(2 * sp.log(_SIZE), "log of a square", Proved()),
        twin_prev=sp.log(_SIZE**2),
    ),
    Row(
        "a bound variable declared positive was trusted over a range with negatives",
        sp.Sum(sp.log(i**2), (i, -3, 3)),
        Step(sp.Sum(2 * sp.log(i), (i, -3, 3)), "log of a square", Proved()),
        Step(sp.Sum(2 * sp.log(i), (i, 1, K)), "log of a square", Proved()),
        twin_prev=sp.Sum(sp.log(i**2), (i, 1, K)),
    ),
    Row(
        "a bound variable declared positive was trusted over an integral from −1",
        sp.Integral(sp.log(_xpos**2), (_xpos, -1, 1)),
        Step(sp.Integral(2 * sp.log(_xpos), (_xpos, -1, 1)), "log of a square", Proved()),
        Step(sp.Integral(2 * sp.log(_xpos), (_xpos, 0, 1)), "log of a square", Proved()),
        twin_prev=sp.Integral(sp.log(_xpos**2), (_xpos, 0, 1)),
    ),
    Row(
        "a bound variable was trusted in a sum that runs downwards (Karr's convention)",
        sp.Sum(sp.log(i**2), (i, K + 2, K)),
        Step(sp.Sum(2 * sp.log(i), (i, K + 2, K)), "log of a square", Proved()),
        Step(sp.Sum(2 * sp.log(i), (i, K, K + 2)), "log of a square", Proved()),
        twin_prev=sp.Sum(sp.log(i**2), (i, K, K + 2)),
    ),
    Row(
        "a constraint's label was free text: it may name a constraint it does not use",
        sp.Sum(p_[i], (i, 1, K)),
        Step(sp.S.One, "p sums to 1", UnderConstraint(sums_to_one(q_, 1, K))),
        Step(sp.S.One, "p sums to 1", UnderConstraint(sums_to_one(p_, 1, K))),
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
    with in_context(row.context):
        false = check_step(row.prev, row.false)
    assert not false.ok, f"accepted a false step ({row.hole}): {false.detail}"
    twin_context = row.context if row.twin_context is None else row.twin_context
    with in_context(twin_context):
        prev = row.twin_prev if row.twin_prev is not None else row.prev
        twin = check_step(_TWIN_PREV.get(row.hole, prev), row.twin)
    assert twin.ok, f"rejected the true twin ({row.hole}): {twin.detail}"


def test_the_corpus_covers_every_class_of_hole_the_review_found():
    """Issue 14: at least 30 rows, and every class of hole has one."""
    assert len(CORPUS) >= 30
    assert len({r.hole for r in CORPUS}) == len(CORPUS)
    text = " ".join(r.hole for r in CORPUS)
    for cls in (
        "SIFT",
        "REORDER",
        "LOG_LE_X_MINUS_1",
        "INDUCTION",
        "SPLIT_LAST_TOKEN",
        "INSTANCE",
        "DROP_KL",
        "CONVEX_STATIONARY_POINT",
        "AFFINE_ARGMIN",
        "UNIQUE_STATIONARY_COERCIVE",
        "SPECIALISE",
        "integrals",
        "infinite sums",
        "numeric",
        "positivity declared",
        "bound variable",
        "⇒ claim",
        "constraint",
    ):
        assert cls in text, f"no row for {cls}"


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
