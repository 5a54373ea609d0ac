"""From the RLHF optimum to the DPO loss: Z cancels in the Bradley–Terry likelihood."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved
from klspec.spec.derivations.noise_models import BCE, Sigmoid
from klspec.spec.derivations.notation import notation
from klspec.spec.derivations.rules import INSTANCE

i = sp.Symbol("i", integer=True, positive=True)  # a response y_i to the prompt x
win, lose = sp.symbols("w l", integer=True, positive=True)  # the chosen and rejected ones
beta = sp.Symbol("beta", positive=True)
Z = sp.Symbol("Z", positive=True)  # Z(x) = Σ_y π_ref(y|x) e^{r(x,y)/β} > 0
r = sp.IndexedBase("r", real=True)  # the reward r(x, y_i)
rho = sp.IndexedBase("rho", positive=True)  # π_ref(y_i | x)
pi = sp.IndexedBase("pi", positive=True)  # the policy being trained, π_θ(y_i | x)
m = sp.Symbol("m", real=True)  # the margin
eps = sp.Symbol("epsilon", positive=True)  # label smoothing, 0 < ε < ½
theta = sp.Symbol("theta", real=True)  # one parameter of the policy
ell_w = sp.Function("ell_w", real=True)  # log π_θ(y_w | x) as a function of θ
ell_l = sp.Function("ell_l", real=True)

#: π*(y_i) = π_ref(y_i) e^{r_i/β} / Z, the maximiser of J (derivation.rlhf_optimum).
PiStar = notation(
    "DPOPiStar",
    r"\pi^{*}_{#1}",
    lambda ii: rho[ii] * sp.exp(r[ii] / beta) / Z,
    nargs=1,
    positive=True,
)
#: The Bradley–Terry probability that y_w is preferred to y_l: σ(r_w − r_l).
Prefer = notation(
    "DPOPrefer",
    r"P\left(y_{w} \succ y_{l}\right)",
    lambda: Sigmoid(r[win] - r[lose]),
)
#: The margin m = (log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l)).
Margin = notation(
    "DPOMargin",
    r"m",
    lambda: (sp.log(pi[win]) - sp.log(rho[win])) - (sp.log(pi[lose]) - sp.log(rho[lose])),
)
#: The DPO loss of one pair: the Bradley–Terry NLL with the reward parametrised by π_θ.
Loss = notation(
    "DPOLoss",
    r"\mathcal{L}_{\mathrm{DPO}}",
    lambda: (
        -sp.log(Sigmoid(beta * sp.log(pi[win] / rho[win]) - beta * sp.log(pi[lose] / rho[lose])))
    ),
)
#: The same loss as a function of the margin alone.
LossOf = notation(
    "DPOLossOf",
    r"\mathcal{L}(#1)",
    lambda mm: sp.log(1 + sp.exp(-beta * mm)),
    nargs=1,
)
#: Label-smoothed (conservative) DPO: the labels are flipped with probability ε.
SmoothedLoss = notation(
    "DPOSmoothedLoss",
    r"\mathcal{L}_{\varepsilon}(#1)",
    lambda mm: -(1 - eps) * sp.log(Sigmoid(beta * mm)) - eps * sp.log(Sigmoid(-beta * mm)),
    nargs=1,
)

#: r_i = β log(π*_i/π_ref,i) + β log Z: the reward in terms of the optimal policy (chain 1).
REWARD = (r[i], beta * sp.log(PiStar(i) / rho[i]) + beta * sp.log(Z))


def _reward_at(k: sp.Symbol) -> sp.Expr:
    return REWARD[1].xreplace({i: k})


#: m(θ) = (ℓ_w(θ) − log π_ref(y_w)) − (ℓ_l(θ) − log π_ref(y_l)), the margin as θ varies.
MarginOf = notation(
    "DPOMarginOf",
    r"m(#1)",
    lambda t: (ell_w(t) - sp.log(rho[win])) - (ell_l(t) - sp.log(rho[lose])),
    nargs=1,
)


def _margin_of_theta() -> sp.Expr:
    return MarginOf(theta)


DPO = Derivation(
    id="derivation.dpo",
    title="From the RLHF optimum to the DPO loss",
    statement="Solving π* = π_ref e^{r/β}/Z for the reward, r = β log(π*/π_ref) + β log Z; "
    "in the Bradley–Terry likelihood σ(r_w − r_l) the partition function Z cancels, and "
    "with the policy π_θ in the place of π* the negative log-likelihood of a preference "
    "pair is the DPO loss −log σ(β m), m = (log π_θ(y_w) − log π_ref(y_w)) − "
    "(log π_θ(y_l) − log π_ref(y_l)). Its gradient weights each pair by σ(−β m).",
    assumptions=(
        "responses y_i for one prompt x, with π_ref(y_i) > 0 and π_θ(y_i) > 0; rewards "
        "r_i real; β > 0",
        "π*(y_i) = π_ref(y_i) e^{r_i/β}/Z, Z = Σ_j π_ref(y_j) e^{r_j/β} > 0, the maximiser "
        "of E_π[r] − β D_KL(π‖π_ref) (derivation.rlhf_optimum)",
        "the Bradley–Terry model: y_w is preferred to y_l with probability σ(r_w − r_l)",
        "DPO's modelling step: the reward is parametrised by the policy being trained, "
        "r_θ = β log(π_θ/π_ref) + β log Z, i.e. π_θ plays π*",
        "label smoothing 0 < ε < ½: each recorded preference is flipped with probability ε",
    ),
    symbols={"i": i, "w": win, "l": lose, "beta": beta, "Z": Z, "r": r, "rho": rho, "pi": pi},
    chains=(
        Chain(
            title="The reward in terms of the optimal policy",
            start=r[i],
            steps=(
                Step(
                    beta * sp.log(sp.exp(r[i] / beta)),
                    "log e^{x} = x for real x",
                    Proved(),
                ),
                Step(
                    beta * sp.log(PiStar(i) * Z / rho[i]),
                    "e^{r_i/β} = π*_i Z / π_ref,i, the optimum solved for the exponential",
                    Proved(),
                ),
                Step(
                    REWARD[1],
                    "split the log: every factor is positive",
                    Proved(),
                ),
            ),
        ),
        Chain(
            title="Z cancels in the Bradley–Terry likelihood",
            start=Prefer(),
            steps=(
                Step(Sigmoid(r[win] - r[lose]), "the Bradley–Terry model", Proved()),
                Step(
                    # As written: sympy would cancel the two β log Z at once.
                    Sigmoid(
                        sp.Add(
                            _reward_at(win),
                            sp.Mul(-1, _reward_at(lose), evaluate=False),
                            evaluate=False,
                        )
                    ),
                    "the reward of chain 1, at y_w and at y_l",
                    ByRule(INSTANCE, {"identity": REWARD, "over": (i,), "proof": Proved()}),
                ),
                Step(
                    Sigmoid(
                        beta * sp.log(PiStar(win) / rho[win])
                        - beta * sp.log(PiStar(lose) / rho[lose])
                    ),
                    "β log Z cancels: the likelihood needs no partition function",
                    Proved(),
                ),
            ),
        ),
        Chain(
            title="The DPO loss of one preference pair",
            start=Loss(),
            steps=(
                Step(
                    -sp.log(
                        Sigmoid(
                            beta * sp.log(pi[win] / rho[win]) - beta * sp.log(pi[lose] / rho[lose])
                        )
                    ),
                    "the Bradley–Terry negative log-likelihood, with π_θ in the place of π*",
                    Proved(),
                ),
                Step(
                    -sp.log(Sigmoid(beta * Margin())),
                    "β log(π_θ/π_ref) at y_w minus at y_l is β m",
                    Proved(),
                ),
                Step(
                    LossOf(Margin()),
                    "−log σ(x) = log(1 + e^{−x}), the softplus of −x",
                    Proved(),
                ),
            ),
        ),
        Chain(
            title="The gradient weights each pair by σ(−β m)",
            start=LossOf(m),
            steps=(
                Step(
                    sp.Eq(sp.Derivative(LossOf(m), m), -beta * Sigmoid(-beta * m)),
                    "differentiate: pairs with a small or negative margin (ranked wrongly) "
                    "get weights near β, pairs already ranked right get weights near 0",
                    Proved(),
                    relation="⇒",
                ),
                Step(
                    sp.Eq(
                        sp.Derivative(LossOf(_margin_of_theta()), theta),
                        -beta
                        * Sigmoid(-beta * _margin_of_theta())
                        * (sp.Derivative(ell_w(theta), theta) - sp.Derivative(ell_l(theta), theta)),
                    ),
                    "the chain rule through m(θ), with ℓ_w(θ) = log π_θ(y_w) and "
                    "ℓ_l(θ) = log π_θ(y_l): raise log π_θ(y_w), lower log π_θ(y_l), by σ(−β m)",
                    Proved(),
                    relation="⇒",
                ),
                Step(
                    sp.Eq(sp.Limit(LossOf(m), m, sp.oo), 0),
                    "a pair ranked right by a wide margin costs nothing",
                    Proved(),
                    relation="⇒",
                ),
                Step(
                    sp.Eq(sp.Limit(LossOf(m) + beta * m, m, -sp.oo), 0),
                    "a pair ranked wrong by a wide margin costs −β m: linear, not exponential",
                    Proved(),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="Label smoothing is binary cross-entropy with the soft label 1 − ε",
            start=SmoothedLoss(m),
            steps=(
                Step(
                    -(1 - eps) * sp.log(Sigmoid(beta * m)) - eps * sp.log(Sigmoid(-beta * m)),
                    "the label is right with probability 1 − ε, flipped with probability ε",
                    Proved(),
                ),
                Step(
                    BCE(1 - eps, Sigmoid(beta * m)),
                    "σ(−x) = 1 − σ(x): the Bernoulli NLL of the soft label 1 − ε",
                    Proved(),
                ),
                Step(
                    (1 - eps) * LossOf(m) + eps * LossOf(-m),
                    "−log σ(x) = log(1 + e^{−x}) for both terms: the mixture of the loss at m "
                    "and at −m",
                    Proved(),
                ),
            ),
        ),
    ),
    conclusion="The DPO loss is the Bradley–Terry negative log-likelihood of the implicit "
    "rewards β log(π_θ/π_ref): the partition function Z, which no one can compute, "
    "cancels because only reward differences enter the likelihood. The loss is log(1 + "
    "e^{−β m}), a softplus of the margin: → 0 for pairs ranked right, ≈ −β m for pairs "
    "ranked wrong, and its gradient σ(−β m)·β·∇(log π_θ(y_w) − log π_θ(y_l)) "
    "concentrates on the pairs the policy gets wrong. Label smoothing with ε mixes the "
    "loss at m and at −m with weights 1 − ε and ε.",
    clause_ids=(),
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_dpo_loss_is_the_bradley_terry_nll_of_implicit_rewards",
    honesty="Putting π_θ in the place of π* is DPO's modelling choice (the reward is "
    "parametrised by the policy), stated as an assumption, not derived. The optimum π* "
    "itself is derived on its own page (derivation.rlhf_optimum).",
)
