"""Maximum likelihood is forward-KL minimisation; the Bernoulli MLE is the frequency."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, Zero
from klspec.spec.derivations.claims import argmax, argmin
from klspec.spec.derivations.notation import notation
from klspec.spec.derivations.rules import (
    AFFINE_ARGMIN_TO_ARGMAX,
    CONVEX_STATIONARY_POINT,
    REORDER_DOUBLE_SUM,
    SIFT,
)

i = sp.Symbol("i", integer=True, positive=True)  # sample index
j = sp.Symbol("j", integer=True, positive=True)  # outcome index
n = sp.Symbol("n", integer=True, positive=True)  # number of samples
K = sp.Symbol("K", integer=True, positive=True)  # number of distinct observed values
x = sp.IndexedBase("x", integer=True, positive=True)  # samples, coded 1..K
Q = sp.IndexedBase("Q", positive=True)  # Q_θ(j), the model's probability of outcome j

Count = notation(
    "Count",
    r"c_{#1}",
    lambda jj: sp.Sum(sp.KroneckerDelta(x[i], jj), (i, 1, n)),
    nargs=1,
    positive=True,  # j ranges over the observed values, so every count is >= 1
)
Phat = notation("Phat", r"\hat{P}_{#1}", lambda jj: Count(jj) / n, nargs=1, positive=True)
KLdata = notation(
    "KLdata",
    r"D_{\mathrm{KL}}\left(\hat{P} \,\|\, Q_{\theta}\right)",
    lambda: sp.Sum(Phat(j) * sp.log(Phat(j) / Q[j]), (j, 1, K)),
)
Hdata = notation(
    "Hdata", r"H\left(\hat{P}\right)", lambda: -sp.Sum(Phat(j) * sp.log(Phat(j)), (j, 1, K))
)
AvgLogLik = notation(
    "AvgLogLik",
    r"\bar{\ell}(\theta)",
    lambda: sp.Sum(sp.log(Q[x[i]]), (i, 1, n)) / n,
)


def _sum_j(body):
    return sp.Sum(body, (j, 1, K))


# The post's coin: flips H, H, T.
Q_H, Q_T = sp.symbols("Q_H Q_T", positive=True)
_COIN = ("H", "H", "T")
_COIN_Q = {"H": Q_H, "T": Q_T}
_coin_phat = {o: sp.Rational(_COIN.count(o), len(_COIN)) for o in ("H", "T")}
KLcoin = notation(
    "KLcoin",
    r"D_{\mathrm{KL}}\left(\hat{P} \,\|\, Q_{\theta}\right)",
    lambda: sum(ph * sp.log(ph / _COIN_Q[o]) for o, ph in _coin_phat.items()),
)
Hcoin = notation(
    "Hcoin", r"H\left(\hat{P}\right)", lambda: -sum(ph * sp.log(ph) for ph in _coin_phat.values())
)

MLE_FORWARD_KL = Derivation(
    id="derivation.mle_forward_kl",
    title="Maximum likelihood minimises forward KL",
    statement="For the empirical distribution P̂ of samples x_1..x_n, "
    "D_KL(P̂‖Q_θ) = −H(P̂) − (1/n) Σ_i log Q_θ(x_i); so the θ minimising the forward KL "
    "from the data maximises the average log-likelihood.",
    assumptions=(
        "n ≥ 1 samples x_i, n symbolic; repeats allowed",
        "outcomes j = 1..K are the K distinct observed values (K symbolic), so each count "
        "c_j = Σ_i δ(x_i, j) ≥ 1 and P̂_j = c_j/n > 0; unobserved outcomes have P̂ = 0 and "
        "add nothing to D_KL",
        "Q_θ(j) > 0 for every observed j (else D_KL = +∞ and the log-likelihood is −∞)",
    ),
    symbols={"i": i, "j": j, "n": n, "K": K, "x": x, "Q": Q, "Q_H": Q_H, "Q_T": Q_T},
    chains=(
        Chain(
            start=KLdata(),
            steps=(
                Step(
                    _sum_j(Phat(j) * sp.log(Phat(j))) - _sum_j(Phat(j) * sp.log(Q[j])),
                    "log(P̂_j/Q_j) = log P̂_j − log Q_j, both positive; split the sum",
                    Proved(),
                ),
                Step(
                    -Hdata() - _sum_j(Phat(j) * sp.log(Q[j])),
                    "the first sum is −H(P̂): it depends on the data only",
                    Proved(),
                ),
                Step(
                    -Hdata() - _sum_j(Count(j) * sp.log(Q[j])) / n,
                    "P̂_j = c_j/n",
                    Proved(),
                ),
                Step(
                    -Hdata()
                    - _sum_j(sp.Sum(sp.KroneckerDelta(x[i], j) * sp.log(Q[j]), (i, 1, n))) / n,
                    "c_j = Σ_i δ(x_i, j) counts the samples equal to j",
                    Proved(),
                ),
                Step(
                    -Hdata()
                    - sp.Sum(_sum_j(sp.KroneckerDelta(x[i], j) * sp.log(Q[j])), (i, 1, n)) / n,
                    "sum over the samples first",
                    ByRule(REORDER_DOUBLE_SUM),
                ),
                Step(
                    -Hdata() - sp.Sum(sp.log(Q[x[i]]), (i, 1, n)) / n,
                    "only j = x_i survives the delta",
                    ByRule(SIFT, given="every sample x_i is one of the outcomes 1, …, K"),
                ),
                Step(
                    -Hdata() - AvgLogLik(),
                    "the average log-likelihood ℓ̄(θ) = (1/n) Σ_i log Q_θ(x_i)",
                    Proved(),
                ),
                Step(
                    sp.Eq(argmin(KLdata(), Q), argmax(AvgLogLik(), Q)),
                    "D_KL = −1·ℓ̄(θ) − H(P̂) and H(P̂) does not involve the model's probabilities Q",
                    ByRule(AFFINE_ARGMIN_TO_ARGMAX),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="The post's coin, flips H, H, T: P̂ = (2/3, 1/3)",
            start=KLcoin(),
            steps=(
                Step(
                    sp.Rational(2, 3) * sp.log(sp.Rational(2, 3) / Q_H)
                    + sp.Rational(1, 3) * sp.log(sp.Rational(1, 3) / Q_T),
                    "P̂(H) = 2/3, P̂(T) = 1/3",
                    Proved(),
                ),
                Step(
                    -Hcoin() - (sp.log(Q_H) + sp.log(Q_H) + sp.log(Q_T)) / 3,
                    "split the logs: −H(P̂) minus the average log-likelihood of H, H, T",
                    Proved(),
                ),
            ),
        ),
    ),
    conclusion="D_KL(P̂‖Q_θ) = −H(P̂) − ℓ̄(θ) with H(P̂) fixed by the data, so minimising "
    "the forward KL from the data over θ is maximising the average log-likelihood: MLE. "
    "Grouping the samples by value (a finite double sum reordered, then sifted by the "
    "Kronecker delta) is by rule; every other step, and the coin example with its "
    "repeated H, is proved.",
    clause_ids=("example.coin_flips",),
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_mle_identity_on_random_samples",
)


# --- Bernoulli: the MLE is the empirical frequency -------------------------------------

a = sp.Symbol("a", integer=True, positive=True)  # heads
b = sp.Symbol("b", integer=True, positive=True)  # tails
theta = sp.Symbol("theta", positive=True)  # P(heads) under the model; 0 < θ < 1
t = sp.Symbol("t", positive=True)  # θ = t/(1 + t) runs over (0, 1) as t runs over (0, ∞)

KLbern = notation(
    "KLbern",
    r"D_{\mathrm{KL}}\left(\hat{P} \,\|\, \operatorname{Bern}(#1)\right)",
    lambda th: (
        a / (a + b) * sp.log(a / ((a + b) * th)) + b / (a + b) * sp.log(b / ((a + b) * (1 - th)))
    ),
    nargs=1,
)
_first = -a / ((a + b) * theta) + b / ((a + b) * (1 - theta))
_second = a / ((a + b) * theta**2) + b / ((a + b) * (1 - theta) ** 2)

MLE_BERNOULLI = Derivation(
    id="derivation.mle_bernoulli",
    title="The Bernoulli MLE is the empirical frequency",
    statement="With a heads and b tails, D_KL(P̂‖Bern(θ)) over 0 < θ < 1 is minimised "
    "exactly at θ = a/(a + b) = P̂(heads); its second derivative is positive everywhere.",
    assumptions=(
        "a ≥ 1 heads and b ≥ 1 tails (with a = 0 or b = 0 the minimiser is the boundary "
        "θ = 0 or 1)",
        "0 < θ < 1 (declared θ > 0; θ < 1 enters through the parametrisation θ = t/(1 + t), t > 0)",
    ),
    symbols={"a": a, "b": b, "theta": theta, "t": t},
    chains=(
        Chain(
            start=KLbern(theta),
            steps=(
                Step(
                    a / (a + b) * sp.log(a / ((a + b) * theta))
                    + b / (a + b) * sp.log(b / ((a + b) * (1 - theta))),
                    "P̂ = (a, b)/(a + b), Bern(θ) = (θ, 1 − θ)",
                    Proved(),
                ),
                Step(
                    sp.Eq(sp.Derivative(KLbern(theta), theta), _first),
                    "differentiate",
                    Proved(
                        lambda prev, new: [
                            Zero(sp.diff(prev, theta) - _first, "∂/∂θ of the previous line")
                        ]
                    ),
                    relation="⇒",
                ),
                Step(
                    sp.Eq(sp.Derivative(KLbern(theta), (theta, 2)), _second),
                    "differentiate again: the second-order condition, positive for 0 < θ < 1",
                    Proved(
                        lambda prev, new: [
                            Zero(sp.diff(prev, theta, 2) - _second, "∂²/∂θ² of the previous line")
                        ]
                    ),
                    relation="⇒",
                ),
                Step(
                    sp.Eq(argmin(KLbern(theta), theta), a / (a + b)),
                    "the only zero of the derivative, in (0, 1), of a strictly convex "
                    "function: the unique minimiser, the frequency of heads",
                    ByRule(
                        CONVEX_STATIONARY_POINT,
                        {
                            "interval": (0, 1),
                            "onto_domain": (t, t / (1 + t)),
                        },
                    ),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="θ̂ = a/(a + b): the maximum-likelihood Bernoulli parameter is the observed "
    "frequency (2/3 for the post's H, H, T), and it is the unique minimiser of the forward "
    "KL from the data.",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_bernoulli_mle_minimises_kl_on_a_grid",
)
