"""KL is cross-entropy minus entropy, for a symbolic number of outcomes."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import Proved
from klspec.spec.derivations.notation import notation

i = sp.Symbol("i", integer=True, positive=True)
k = sp.Symbol("k", integer=True, positive=True)
p = sp.IndexedBase("p", positive=True)
q = sp.IndexedBase("q", positive=True)


def _sum(body: sp.Expr) -> sp.Expr:
    return sp.Sum(body, (i, 1, k))


KL = notation("KL", r"D_{\mathrm{KL}}(P \,\|\, Q)", lambda: _sum(p[i] * sp.log(p[i] / q[i])))
CrossEntropy = notation("CrossEntropy", r"H(P, Q)", lambda: -_sum(p[i] * sp.log(q[i])))
Entropy = notation("Entropy", r"H(P)", lambda: -_sum(p[i] * sp.log(p[i])))


KL_CROSS_ENTROPY = Derivation(
    id="derivation.kl_cross_entropy",
    title="KL divergence is cross-entropy minus entropy",
    statement="For distributions P, Q on k outcomes, D_KL(P‖Q) = H(P, Q) − H(P).",
    assumptions=(
        "k ≥ 1 outcomes, k symbolic (a positive integer)",
        "p_i > 0 and q_i > 0 for every i (outcomes with p_i = 0 contribute 0 to every "
        "term and can be dropped first; q_i = 0 < p_i makes both sides +∞)",
    ),
    symbols={"i": i, "k": k, "p": p, "q": q},
    chains=(
        Chain(
            start=KL(),
            steps=(
                Step(_sum(p[i] * sp.log(p[i] / q[i])), "definition of D_KL", Proved()),
                Step(
                    _sum(p[i] * sp.log(p[i])) - _sum(p[i] * sp.log(q[i])),
                    "log(p/q) = log p − log q for p, q > 0; split the sum",
                    Proved(),
                ),
                Step(
                    CrossEntropy() - Entropy(),
                    "H(P, Q) = −Σ p_i log q_i and H(P) = −Σ p_i log p_i",
                    Proved(),
                ),
            ),
        ),
    ),
    conclusion="D_KL(P‖Q) = H(P, Q) − H(P) for every number of outcomes k. Normalisation "
    "is never used, so the identity holds for any positive weights; with p_i only real "
    "(not positive) sympy rightly refuses to split the logarithm.",
    clause_ids=("kl.decomposition",),
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_decomposition_matches_reference",
)
