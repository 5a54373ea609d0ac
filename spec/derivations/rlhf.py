"""The KL-regularised RLHF objective and its closed-form optimum, on the closed simplex."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, UnderConstraint, sums_to_one
from klspec.spec.derivations.claims import argmax
from klspec.spec.derivations.notation import notation, unfold
from klspec.spec.derivations.rules import (
    LIMIT_OF_CHAIN,
    OPTIMUM_BY_GIBBS,
    ZERO_IFF_PARTS_ZERO,
    LogGap,
)

i = sp.Symbol("i", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
#: |supp π|: responses are numbered so that supp π = {1, ..., K} ⊆ supp π_ref.
K = sp.Symbol("K", integer=True, positive=True)
pi = sp.IndexedBase("pi", positive=True)  # the policy π(y_i | x) on supp π
rho = sp.IndexedBase("rho", positive=True)  # the reference π_ref(y_i | x) on supp π
r = sp.IndexedBase("r", real=True)  # the reward r(x, y_i)
#: Z's part from supp π_ref ∖ supp π (the responses π_ref allows and π gives 0):
#: Σ π_ref(y) e^{r(y)/β} over them, ≥ 0 (0 when π has all of supp π_ref).
Zbar = sp.Symbol(r"\bar{Z}", nonnegative=True)
beta = sp.Symbol("beta", positive=True)
#: For the infinite case: π_ref(y) = rho_y → 0⁺ at a response with π(y) = pi_y > 0.
rho_y = sp.Symbol("rho_y", positive=True)
pi_y = sp.Symbol("pi_y", positive=True)


def _sum(body):
    return sp.Sum(body, (i, 1, K))


Z = notation(
    "Z",
    r"Z",
    lambda: sp.Sum(rho[j] * sp.exp(r[j] / beta), (j, 1, K)) + Zbar,
    positive=True,
)
PiStar = notation(
    "PiStar",
    r"\pi^{*}_{#1}",
    lambda ii: rho[ii] * sp.exp(r[ii] / beta) / Z(),
    nargs=1,
    positive=True,
)
#: π* as a policy: i ↦ π*_i (on supp π; π* has mass Z̄/Z outside it).
PiStarPolicy = notation("PiStarPolicy", r"\pi^{*}", lambda: sp.Lambda(i, PiStar(i)))
J = notation(
    "J",
    r"J(\pi)",
    lambda: _sum(pi[i] * r[i]) - beta * _sum(pi[i] * sp.log(pi[i] / rho[i])),
)
ExpectedReward = notation("ExpectedReward", r"\mathbb{E}_{\pi}[r]", lambda: _sum(pi[i] * r[i]))
KLref = notation(
    "KLref",
    r"D_{\mathrm{KL}}\left(\pi \,\|\, \pi_{\mathrm{ref}}\right)",
    lambda: _sum(pi[i] * sp.log(pi[i] / rho[i])),
)
KLstar = notation(
    "KLstar",
    r"D_{\mathrm{KL}}\left(\pi \,\|\, \pi^{*}\right)",
    lambda: _sum(pi[i] * sp.log(pi[i] / PiStar(i))),
)


def _objective_at_optimum() -> sp.Expr:
    """J(π*) written out: π* is positive on all of supp π_ref, so for π = π* the
    responses numbered 1..K are all of supp π_ref and Z̄ = 0."""
    at = _sum(PiStar(i) * r[i]) - beta * _sum(PiStar(i) * sp.log(PiStar(i) / rho[i]))
    return unfold(at).xreplace({Zbar: 0})


Jstar = notation("Jstar", r"J(\pi^{*})", _objective_at_optimum)

_pi_sums_to_1 = sums_to_one(pi, 1, K)

#: Gibbs with supports for D_KL(π‖π*): ≥ 0, and 0 exactly when π_i = π*_i on supp π and
#: π* has no mass outside supp π (Z̄ = 0), i.e. π = π*.
GIBBS_FOR_PI_STAR = sp.And(
    sp.Ge(KLstar(), 0),
    sp.Equivalent(sp.Eq(KLstar(), 0), sp.And(sp.Eq(pi[i], PiStar(i)), sp.Eq(Zbar, 0))),
)

RLHF_OPTIMUM = Derivation(
    id="derivation.rlhf_optimum",
    title="The RLHF objective is maximised by π* ∝ π_ref·e^{r/β}",
    statement="Over all distributions π on the responses (the closed simplex), J(π) = "
    "E_π[r] − β D_KL(π‖π_ref) is maximised by π* = π_ref e^{r/β}/Z alone, with Z = "
    "Σ_{y ∈ supp π_ref} π_ref(y) e^{r(y)/β}, and J(π*) = β log Z; π_ref may be 0 on some "
    "responses (then so is π*).",
    assumptions=(
        "responses numbered so that supp π = {1, …, K} (K ≥ 1 symbolic) ⊆ supp π_ref; "
        "π_ref(y_i) = ρ_i > 0 there; rewards r_i real; β > 0; Z = Σ_{j ≤ K} ρ_j e^{r_j/β} "
        "+ Z̄, where Z̄ ≥ 0 is the part of Z from supp π_ref ∖ supp π (Z̄ = 0 exactly "
        "when supp π = supp π_ref)",
        "sums run over supports: terms with π(y) = 0 contribute 0 to E_π[r] and to both "
        "KLs (0·log 0 = 0), and responses outside supp π_ref have π* = 0",
        "Σ_{i=1}^{K} π_i = 1 (used where stated); π* = π_ref e^{r/β}/Z sums to 1 over "
        "supp π_ref by construction, with mass Z̄/Z outside supp π",
        "a π with π(y) > 0 = π_ref(y) for some y has D_KL(π‖π_ref) = +∞ and J(π) = −∞ by "
        "definition (chain 3 checks the limit behind it), so it is not a maximiser; the "
        "chains cover every other π, whatever its support",
    ),
    symbols={
        "i": i,
        "j": j,
        "K": K,
        "pi": pi,
        "rho": rho,
        "r": r,
        "Zbar": Zbar,
        "beta": beta,
        "rho_y": rho_y,
        "pi_y": pi_y,
    },
    chains=(
        Chain(
            title="Gibbs with supports: D_KL(π‖π*) ≥ 0, = 0 exactly when π = π*",
            start=KLstar(),
            steps=(
                Step(
                    _sum(pi[i] * LogGap(PiStar(i) / pi[i])) + _sum(pi[i]) - _sum(PiStar(i)),
                    "with φ(x) = x − 1 − log x: π_i log(π_i/π*_i) = π_i φ(π*_i/π_i) + π_i − π*_i",
                    Proved(),
                ),
                Step(
                    _sum(pi[i] * LogGap(PiStar(i) / pi[i])) + 1 - _sum(PiStar(i)),
                    "π sums to 1",
                    UnderConstraint(_pi_sums_to_1),
                ),
                Step(
                    _sum(pi[i] * LogGap(PiStar(i) / pi[i])) + Zbar / Z(),
                    "π* has mass Σ_{i ≤ K} π*_i = 1 − Z̄/Z on supp π",
                    Proved(),
                ),
                Step(
                    GIBBS_FOR_PI_STAR,
                    "π_i > 0, φ ≥ 0 with φ(x) = 0 only at x = 1, and Z̄/Z ≥ 0: D_KL = 0 "
                    "exactly when every π*_i/π_i = 1 and Z̄ = 0",
                    ByRule(ZERO_IFF_PARTS_ZERO),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="The objective and its maximiser",
            start=J(),
            steps=(
                Step(ExpectedReward() - beta * KLref(), "definition of the objective", Proved()),
                Step(
                    _sum(pi[i] * r[i]) - beta * _sum(pi[i] * sp.log(pi[i] / rho[i])),
                    "write out the expectation and the KL (over supp π)",
                    Proved(),
                ),
                Step(
                    -beta * _sum(pi[i] * (sp.log(pi[i]) - sp.log(rho[i]) - r[i] / beta)),
                    "one sum, β taken out",
                    Proved(),
                ),
                Step(
                    -beta * _sum(pi[i] * (sp.log(pi[i] / PiStar(i)) - sp.log(Z()))),
                    "log π*_i = log π_ref,i + r_i/β − log Z",
                    Proved(),
                ),
                Step(
                    beta * sp.log(Z()) * _sum(pi[i]) - beta * KLstar(),
                    "split the sum: log Z does not depend on i",
                    Proved(),
                ),
                Step(
                    beta * sp.log(Z()) - beta * KLstar(),
                    "π sums to 1",
                    UnderConstraint(_pi_sums_to_1),
                ),
                Step(
                    sp.And(
                        sp.Eq(argmax(J(), pi), PiStarPolicy()),
                        sp.Eq(Jstar(), beta * sp.log(Z())),
                    ),
                    "J = β log Z − β D_KL(π‖π*) with β > 0, and D_KL(π‖π*) ≥ 0 is 0 exactly "
                    "at π = π* (chain 1); J(π*) written out is β log Z",
                    ByRule(
                        OPTIMUM_BY_GIBBS,
                        {"term": KLstar(), "established": GIBBS_FOR_PI_STAR},
                    ),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="The infinite case: π(y) > 0 = π_ref(y)",
            start=-beta * pi_y * sp.log(pi_y / rho_y),
            steps=(
                Step(
                    sp.Eq(sp.Limit(-beta * pi_y * sp.log(pi_y / rho_y), rho_y, 0, "+"), -sp.oo),
                    "the term −β π(y) log(π(y)/π_ref(y)) of J as π_ref(y) → 0⁺: the "
                    "definition's D_KL = +∞, J = −∞ is this limit",
                    ByRule(LIMIT_OF_CHAIN),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="Maximising expected reward minus β·D_KL(π‖π_ref) over all distributions "
    "is minimising D_KL(π‖π*) for the tilted reference π* ∝ π_ref·e^{r/β}: the optimum "
    "is π* itself, uniquely, with value β log Z. π* is 0 exactly where π_ref is, and a "
    "policy that leaves out part of supp π_ref loses Z̄/Z in the Gibbs bound, so it is "
    "not optimal. Small β tilts hard towards high reward; large β stays near π_ref. "
    "(This closed form is the starting point of DPO.)",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_rlhf_optimum_beats_random_policies",
    honesty="The sign of D_KL(π‖π*) and its equality case are 'by rule' (a sum of "
    "nonnegative parts: the lemma log x ≤ x − 1 and the signs are checked, the "
    "monotonicity of summation is the rule's), and so is reading off the maximiser; "
    "the maximiser rule takes the support condition Z̄ = 0 from chain 1 as part of "
    "what π = π* means. The case π(y) > 0 = π_ref(y) is the definition J = −∞ (chain 3 "
    "checks only the limit), and numbering the supports is how the statement is set up.",
)
