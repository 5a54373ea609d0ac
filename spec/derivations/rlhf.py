"""The KL-regularised RLHF objective and its closed-form optimum."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, UnderConstraint, Zero, sums_to_one
from klspec.spec.derivations.notation import claim, notation
from klspec.spec.derivations.rules import DROP_KL

i = sp.Symbol("i", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
K = sp.Symbol("K", integer=True, positive=True)  # number of responses y
pi = sp.IndexedBase("pi", positive=True)  # the policy π(y_i | x)
rho = sp.IndexedBase("rho", positive=True)  # the reference π_ref(y_i | x)
r = sp.IndexedBase("r", real=True)  # the reward r(x, y_i)
beta = sp.Symbol("beta", positive=True)


def _sum(body):
    return sp.Sum(body, (i, 1, K))


Z = notation("Z", r"Z", lambda: sp.Sum(rho[j] * sp.exp(r[j] / beta), (j, 1, K)), positive=True)
PiStar = notation(
    "PiStar",
    r"\pi^{*}_{#1}",
    lambda ii: rho[ii] * sp.exp(r[ii] / beta) / Z(),
    nargs=1,
    positive=True,
)
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
    """J(π*) written out: the policy replaced by π*."""
    return _sum(PiStar(i) * r[i]) - beta * _sum(PiStar(i) * sp.log(PiStar(i) / rho[i]))


RLHF_OPTIMUM = Derivation(
    id="derivation.rlhf_optimum",
    title="The RLHF objective is maximised by π* ∝ π_ref·e^{r/β}",
    statement="J(π) = E_π[r] − β D_KL(π‖π_ref) = β log Z − β D_KL(π‖π*) with "
    "π*(y) = π_ref(y) e^{r(y)/β}/Z and Z = Σ_y π_ref(y) e^{r(y)/β}; so π* is the unique "
    "maximiser and J(π*) = β log Z.",
    assumptions=(
        "K responses y_1..y_K for a prompt x, K symbolic",
        "π(y_i) > 0 and π_ref(y_i) > 0; rewards r_i real; β > 0",
        "Σ π_i = 1 (used in one step); π* sums to 1 by construction (checked)",
    ),
    symbols={"i": i, "j": j, "K": K, "pi": pi, "rho": rho, "r": r, "beta": beta},
    chains=(
        Chain(
            start=J(),
            steps=(
                Step(ExpectedReward() - beta * KLref(), "definition of the objective", Proved()),
                Step(
                    _sum(pi[i] * r[i]) - beta * _sum(pi[i] * sp.log(pi[i] / rho[i])),
                    "write out the expectation and the KL",
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
                    UnderConstraint("Σπ = 1", sums_to_one(pi, 1, K)),
                ),
                Step(
                    beta * sp.log(Z()),
                    "Gibbs: D_KL(π‖π*) ≥ 0, with equality iff π = π*",
                    ByRule(
                        DROP_KL,
                        {
                            "term": KLstar(),
                            "p_sums_to_one": UnderConstraint("Σπ = 1", sums_to_one(pi, 1, K)),
                        },
                    ),
                    relation="≤",
                ),
                Step(
                    claim(
                        "RLHFOptimum",
                        r"\operatorname*{argmax}_\pi J(\pi) = \pi^{*},"
                        r"\quad J(\pi^{*}) = \beta \ln Z",
                    ),
                    "equality holds only at π = π*, and J(π*) written out is β log Z",
                    Proved(
                        lambda prev, new: [
                            Zero(_objective_at_optimum() - beta * sp.log(Z()), "J(π*) = β log Z")
                        ]
                    ),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="Maximising expected reward minus β·D_KL(π‖π_ref) is minimising "
    "D_KL(π‖π*) for the tilted reference π* ∝ π_ref·e^{r/β}: the optimum is π* itself, "
    "with value β log Z. Small β tilts hard towards high reward; large β stays near "
    "π_ref. (This closed form is the starting point of DPO.)",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_rlhf_optimum_beats_random_policies",
)
