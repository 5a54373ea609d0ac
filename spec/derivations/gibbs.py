"""Gibbs' inequality with supports: D_KL(P‖Q) ≥ 0, = 0 exactly when P = Q.

Cover & Thomas, Theorem 2.6.3. The sum defining D_KL runs over the support of P
(0·log(0/q) = 0); over that support Q's mass is at most 1, not 1, which is why the
equality case needs Q(supp P) = 1 as well as q_i = p_i.
"""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, UnderConstraint, sums_to_one
from klspec.spec.derivations.notation import notation
from klspec.spec.derivations.rules import (
    DROP_NONNEGATIVE,
    LIMIT_OF_CHAIN,
    LOG_LE_X_MINUS_1,
    ZERO_IFF_PARTS_ZERO,
    LogGap,
)

i = sp.Symbol("i", integer=True, positive=True)
#: |supp P|: the outcomes are numbered so that supp P = {1, ..., m} (m ≤ k).
m = sp.Symbol("m", integer=True, positive=True)
k = m  # the name the cross-checks and older tests use for the summation range
p = sp.IndexedBase("p", positive=True)
#: Q's masses on supp P (q_i > 0 there), written q̃_i/(1 + u): q̃ is Q conditioned on
#: supp P (q̃_i = q_i/Q(supp P), summing to 1) and u = Q(outside supp P)/Q(supp P) ≥ 0.
#: Every Q with q_i > 0 on supp P is of this form, and Q(supp P) = 1/(1 + u) ∈ (0, 1].
qt = sp.IndexedBase("qtilde", positive=True)
u = sp.Symbol("u", nonnegative=True)
#: For the infinite case: a mass q_j → 0⁺ at an outcome with p_j > 0.
q_j = sp.Symbol("q_j", positive=True)
p_j = sp.Symbol("p_j", positive=True)


def _sum(body: sp.Expr) -> sp.Expr:
    return sp.Sum(body, (i, 1, m))


q = notation(
    "GibbsQ",
    lambda printer, ii: rf"{{q}}_{{{printer._print(ii)}}}",
    lambda ii: qt[ii] / (1 + u),
    nargs=1,
    positive=True,
)
QSupp = notation(
    "QOnSuppP",
    r"Q(\operatorname{supp} P)",
    lambda: 1 / (1 + u),
    positive=True,
)
KL = notation(
    "GibbsKL",
    r"D_{\mathrm{KL}}(P \,\|\, Q)",
    lambda: _sum(p[i] * sp.log(p[i] / q(i))),
)

_p_sums_to_1, _qt_sums_to_1 = sums_to_one(p, 1, m), sums_to_one(qt, 1, m)

#: The equality case, as the checker reads it: D_KL ≥ 0, and D_KL = 0 exactly when
#: q_i = p_i for every i ∈ supp P and Q(supp P) = 1 (together: P = Q).
EQUALITY = sp.And(
    sp.Ge(KL(), 0),
    sp.Equivalent(sp.Eq(KL(), 0), sp.And(sp.Eq(q(i), p[i]), sp.Eq(QSupp(), 1))),
)

GIBBS = Derivation(
    id="derivation.gibbs",
    title="Gibbs' inequality: KL is never negative",
    statement="For distributions P, Q on k outcomes, D_KL(P‖Q) = Σ_{i ∈ supp P} p_i "
    "log(p_i/q_i) ≥ 0, with equality exactly when P = Q; D_KL(P‖Q) = +∞ when q_j = 0 < "
    "p_j for some j.",
    assumptions=(
        "k outcomes, numbered so that supp P = {i : p_i > 0} = {1, …, m}, m ≥ 1 symbolic; "
        "D_KL sums over supp P (the convention 0·log(0/q) = 0)",
        "p_i > 0 on supp P and Σ_{i=1}^{m} p_i = 1 (used where stated)",
        "chains 1–2: q_i > 0 on supp P; Q is any distribution with that property, written "
        "q_i = q̃_i/(1 + u) with q̃ = Q conditioned on supp P (q̃_i > 0, Σ_{i=1}^{m} q̃_i = 1, "
        "used where stated) and u = Q(outside supp P)/Q(supp P) ≥ 0, so Q(supp P) = "
        "Σ_{i=1}^{m} q_i = 1/(1 + u) ∈ (0, 1], not necessarily 1",
        "chain 3: if q_j = 0 < p_j for some j, D_KL(P‖Q) = +∞ by definition (p_j log(p_j/0) "
        "= +∞, the limit checked there; the other terms are finite), so D_KL ≥ 0 and "
        "D_KL ≠ 0 = D_KL(P‖P) hold trivially; this case is a definition, not derived",
    ),
    symbols={"i": i, "m": m, "p": p, "qtilde": qt, "u": u, "q_j": q_j, "p_j": p_j},
    chains=(
        Chain(
            title="The inequality, over supp P",
            start=KL(),
            steps=(
                Step(
                    _sum(p[i] * sp.log(p[i] / q(i))),
                    "definition of D_KL: terms with p_i = 0 are 0, so the sum runs over supp P",
                    Proved(),
                ),
                Step(
                    -_sum(p[i] * sp.log(q(i) / p[i])),
                    "log(p/q) = −log(q/p)",
                    Proved(),
                ),
                Step(
                    -_sum(p[i] * (q(i) / p[i] - 1)),
                    "log x ≤ x − 1 at x = q_i/p_i, times p_i > 0, summed, negated",
                    ByRule(LOG_LE_X_MINUS_1),
                    relation="≥",
                ),
                Step(
                    _sum(p[i]) - _sum(q(i)),
                    "multiply out and split the sum",
                    Proved(),
                ),
                Step(
                    1 - QSupp(),
                    "P sums to 1 over its support; Σ_{i ∈ supp P} q_i = Q(supp P)",
                    UnderConstraint(_p_sums_to_1, _qt_sums_to_1),
                ),
                Step(
                    sp.S.Zero,
                    "Q(supp P) ≤ 1: 1 − Q(supp P) = u/(1 + u) ≥ 0",
                    ByRule(DROP_NONNEGATIVE),
                    relation="≥",
                ),
            ),
        ),
        Chain(
            title="The equality case",
            start=KL(),
            steps=(
                Step(
                    _sum(p[i] * LogGap(q(i) / p[i])) + 1 - QSupp(),
                    "with φ(x) = x − 1 − log x: D_KL = Σ p_i φ(q_i/p_i) + Σ p_i − Σ q_i, "
                    "P sums to 1, Σ q_i = Q(supp P)",
                    UnderConstraint(_p_sums_to_1, _qt_sums_to_1),
                ),
                Step(
                    EQUALITY,
                    "p_i > 0, φ ≥ 0 with φ(x) = 0 only at x = 1, and 1 − Q(supp P) ≥ 0: "
                    "D_KL = 0 exactly when every q_i/p_i = 1 and Q(supp P) = 1",
                    ByRule(ZERO_IFF_PARTS_ZERO),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="The infinite case: q_j = 0 < p_j",
            start=p_j * sp.log(p_j / q_j),
            steps=(
                Step(
                    sp.Eq(sp.Limit(p_j * sp.log(p_j / q_j), q_j, 0, "+"), sp.oo),
                    "the term p_j log(p_j/q_j) as q_j → 0⁺: the definition's p_j log(p_j/0) "
                    "= +∞ is this limit",
                    ByRule(LIMIT_OF_CHAIN),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="D_KL(P‖Q) ≥ 0 for all distributions P, Q, and D_KL(P‖Q) = 0 exactly when "
    "q_i = p_i on supp P and Q(supp P) = 1, that is, when P = Q (Q's mass outside supp P "
    "is then 0, as is P's). Sympy checked: each equality, the step that uses Σp = 1, the "
    "lemma (the minimum of φ(x) = x − 1 − log x over x > 0 is 0, and φ = 0 only at "
    "x = 1), that the weights p_i and arguments q_i/p_i are positive, that "
    "1 − Q(supp P) = u/(1 + u) ≥ 0, that each condition of the equality case is "
    "equivalent to one part of the sum vanishing, and the limit behind the infinite "
    "case.",
    clause_ids=("kl.nonnegative", "kl.zero_iff_equal"),
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_gibbs_lower_bound_terms",
    honesty="Four steps are 'by rule': that a positive-weighted finite sum of instances "
    "of log x ≤ x − 1 keeps its sign, that dropping a term sympy shows ≥ 0 gives a lower "
    "bound, that a sum of nonnegative parts is 0 exactly when each part is, and a limit "
    "sympy computes; sympy "
    "proves the one-variable lemma, the signs and the remainders, not the monotonicity "
    "of summation. The case q_j = 0 < p_j is the definition D_KL = +∞ (chain 3 checks "
    "only that it is the limit), and the relabelling supp P = {1, …, m} and the "
    "restriction of the sum to supp P are how the statement is set up, not steps.",
)
