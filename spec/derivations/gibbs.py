"""Gibbs' inequality, D_KL(P‖Q) ≥ 0, from log x ≤ x − 1."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, Solves, UnderConstraint, sums_to_one
from klspec.spec.derivations.cross_entropy import KL, i, k, p, q
from klspec.spec.derivations.notation import claim
from klspec.spec.derivations.rules import LOG_LE_X_MINUS_1


def _sum(body: sp.Expr) -> sp.Expr:
    return sp.Sum(body, (i, 1, k))


_p_sums_to_1, _q_sums_to_1 = sums_to_one(p, 1, k), sums_to_one(q, 1, k)
_x = sp.Symbol("x", positive=True)

GIBBS = Derivation(
    id="derivation.gibbs",
    title="Gibbs' inequality: KL is never negative",
    statement="For distributions P, Q on k outcomes, D_KL(P‖Q) ≥ 0, with equality only if P = Q.",
    assumptions=(
        "k ≥ 1 outcomes, k symbolic",
        "p_i > 0 and q_i > 0 (outcomes with p_i = 0 contribute 0; q_i = 0 < p_i gives +∞)",
        "Σ p_i = 1 and Σ q_i = 1, used only in the last step",
    ),
    symbols={"i": i, "k": k, "p": p, "q": q},
    chains=(
        Chain(
            start=KL(),
            steps=(
                Step(_sum(p[i] * sp.log(p[i] / q[i])), "definition of D_KL", Proved()),
                Step(
                    -_sum(p[i] * sp.log(q[i] / p[i])),
                    "log(p/q) = −log(q/p)",
                    Proved(),
                ),
                Step(
                    -_sum(p[i] * (q[i] / p[i] - 1)),
                    "log x ≤ x − 1 at x = q_i/p_i, times p_i > 0, summed, negated",
                    ByRule(LOG_LE_X_MINUS_1),
                    relation="≥",
                ),
                Step(
                    _sum(p[i]) - _sum(q[i]),
                    "multiply out and split the sum",
                    Proved(),
                ),
                Step(
                    sp.S.Zero,
                    "both distributions sum to 1",
                    UnderConstraint("Σp = Σq = 1", lambda e: _q_sums_to_1(_p_sums_to_1(e))),
                ),
                Step(
                    claim("GibbsEquality", r"D_{\mathrm{KL}}(P \,\|\, Q) = 0 \iff P = Q"),
                    "log x = x − 1 only at x = 1, and every weight p_i > 0: equality needs "
                    "q_i/p_i = 1 for every i",
                    Proved(
                        lambda prev, new: [
                            Solves(
                                (_x - 1 - sp.log(_x),),
                                (_x,),
                                {_x: sp.S.One},
                                "x − 1 − log x = 0 has the single root x = 1",
                            )
                        ]
                    ),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="D_KL(P‖Q) ≥ 0 for all distributions, = 0 only when P = Q. Sympy checked: "
    "the lemma (the minimum of x − 1 − log x over x > 0 is 0, attained only at x = 1), "
    "each equality, and the last step under Σp = Σq = 1. That a positive-weighted sum of "
    "the lemma's instances keeps its sign is the reviewed rule 'log x ≤ x − 1, "
    "termwise' (its weights and arguments are checked positive at the use); sympy's "
    "inequality solvers cannot prove the inequality for symbolic k directly.",
    clause_ids=("kl.nonnegative", "kl.zero_iff_equal"),
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_gibbs_lower_bound_terms",
    honesty="The inequality step is 'by rule': sympy proves the one-variable lemma and "
    "the remainder, not the monotonicity of summation.",
)
