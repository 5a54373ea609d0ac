"""The noise model behind each common loss: the loss is the negative log-likelihood.

Gaussian noise gives mean squared error (the post's house prices), Laplace noise mean
absolute error, Bernoulli outcomes binary cross-entropy (with a logistic link, the
Bradley–Terry loss), Poisson counts the Poisson deviance, each up to terms that do not
depend on the prediction.
"""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, Zero
from klspec.spec.derivations.claims import argmin
from klspec.spec.derivations.notation import Normal, notation, written
from klspec.spec.derivations.rules import AFFINE_ARGMIN

i = sp.Symbol("i", integer=True, positive=True)
n = sp.Symbol("n", integer=True, positive=True)
y = sp.IndexedBase("y", real=True)  # observations
f = sp.IndexedBase("f", real=True)  # predictions f(x_i)
sigma = sp.Symbol("sigma", positive=True)
b = sp.Symbol("b", positive=True)


def _sum(body: sp.Expr) -> sp.Expr:
    return sp.Sum(body, (i, 1, n))


def _nll(density) -> sp.Expr:
    return -sp.log(sp.Product(density, (i, 1, n)))


# --- Gaussian noise → MSE -------------------------------------------------------------

MSE = notation("MSE", r"\operatorname{MSE}(f)", lambda: _sum((y[i] - f[i]) ** 2) / n, real=True)

GAUSSIAN_NLL_MSE = Derivation(
    id="derivation.gaussian_nll_mse",
    title="Gaussian noise gives mean squared error",
    statement="With independent errors y_i − f_i ~ 𝒩(0, σ²), −log ∏ 𝒩(y_i | f_i, σ²) = "
    "Σ (y_i − f_i)²/(2σ²) + (n/2) log(2πσ²), so for every σ > 0 the f minimising the "
    "negative log-likelihood is the f minimising the MSE.",
    assumptions=(
        "n ≥ 1 observations, n symbolic",
        "y_i, f_i real; σ > 0",
        "the errors are independent, so the likelihood is the product of the densities",
    ),
    symbols={"i": i, "n": n, "y": y, "f": f, "sigma": sigma},
    chains=(
        Chain(
            lhs=-sp.log(sp.Symbol("L")),
            start=_nll(Normal(y[i], f[i], sigma**2)),
            steps=(
                Step(
                    -_sum(sp.log(Normal(y[i], f[i], sigma**2))),
                    "the log of a product of positive densities is the sum of their logs",
                    Proved(),
                ),
                Step(
                    _sum((y[i] - f[i]) ** 2 / (2 * sigma**2) + sp.log(2 * sp.pi * sigma**2) / 2),
                    "log 𝒩(y | f, σ²) = −(y − f)²/(2σ²) − ½ log(2πσ²)",
                    Proved(),
                ),
                Step(
                    _sum((y[i] - f[i]) ** 2) / (2 * sigma**2)
                    + n * sp.log(2 * sp.pi * sigma**2) / 2,
                    "split the sum; the second term is the same n times",
                    Proved(),
                ),
                Step(
                    n / (2 * sigma**2) * MSE() + n * sp.log(2 * sp.pi * sigma**2) / 2,
                    "MSE(f) = (1/n) Σ (y_i − f_i)²",
                    Proved(),
                ),
                Step(
                    sp.Eq(argmin(_nll(Normal(y[i], f[i], sigma**2)), f), argmin(MSE(), f)),
                    "−log L = a·MSE(f) + c with a = n/(2σ²) > 0 and a, c free of f",
                    ByRule(AFFINE_ARGMIN),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="The negative log-likelihood under Gaussian noise is an increasing affine "
    "function of the MSE, so both have the same minimisers for every σ > 0; σ only "
    "scales and shifts the loss.",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_gaussian_nll_is_affine_in_mse",
)


# --- Laplace noise → MAE --------------------------------------------------------------

Laplace = notation(
    "Laplace",
    r"\operatorname{Laplace}\left(#1 \mid #2, #3\right)",
    lambda yy, mu, scale: sp.exp(-sp.Abs(yy - mu) / scale) / (2 * scale),
    nargs=3,
    positive=True,
)
MAE = notation("MAE", r"\operatorname{MAE}(f)", lambda: _sum(sp.Abs(y[i] - f[i])) / n, real=True)

LAPLACE_NLL_MAE = Derivation(
    id="derivation.laplace_nll_mae",
    title="Laplace noise gives mean absolute error",
    statement="With independent errors y_i − f_i ~ Laplace(0, b), −log ∏ Laplace(y_i | f_i, b) "
    "= (n/b)·MAE(f) + n log(2b), so the NLL and the MAE have the same minimisers.",
    assumptions=("n ≥ 1 observations, n symbolic", "y_i, f_i real; b > 0", "independent errors"),
    symbols={"i": i, "n": n, "y": y, "f": f, "b": b},
    chains=(
        Chain(
            lhs=-sp.log(sp.Symbol("L")),
            start=_nll(Laplace(y[i], f[i], b)),
            steps=(
                Step(
                    -_sum(sp.log(Laplace(y[i], f[i], b))),
                    "the log of a product of positive densities is the sum of their logs",
                    Proved(),
                ),
                Step(
                    _sum(sp.Abs(y[i] - f[i]) / b + sp.log(2 * b)),
                    "log Laplace(y | f, b) = −|y − f|/b − log(2b)",
                    Proved(),
                ),
                Step(
                    n / b * MAE() + n * sp.log(2 * b),
                    "MAE(f) = (1/n) Σ |y_i − f_i|",
                    Proved(),
                ),
                Step(
                    sp.Eq(argmin(_nll(Laplace(y[i], f[i], b)), f), argmin(MAE(), f)),
                    "−log L = a·MAE(f) + c with a = n/b > 0 and a, c free of f",
                    ByRule(AFFINE_ARGMIN),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="Under Laplace noise the NLL is an increasing affine function of the MAE: "
    "the same minimisers for every scale b > 0 (the median, not the mean, for a constant f).",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_laplace_nll_is_affine_in_mae",
)


# --- Bernoulli outcomes → binary cross-entropy (Bradley–Terry) -------------------------

s = sp.IndexedBase("s", real=True)  # scores (logits)
yb = sp.IndexedBase("y", real=True)  # labels; 0/1, or soft labels in [0, 1]
r_w, r_l = sp.symbols("r_w r_l", real=True)

Sigmoid = notation(
    "Sigmoid", r"\sigma\left(#1\right)", lambda t: 1 / (1 + sp.exp(-t)), nargs=1, positive=True
)
Bernoulli = notation(
    "Bernoulli",
    r"\operatorname{Bern}\left(#1 \mid #2\right)",
    lambda yy, pp: pp**yy * (1 - pp) ** (1 - yy),
    nargs=2,
    positive=True,
)
BCE = notation(
    "BCE",
    r"\operatorname{BCE}\left(#1, #2\right)",
    lambda yy, pp: -yy * sp.log(pp) - (1 - yy) * sp.log(1 - pp),
    nargs=2,
    real=True,
)

BERNOULLI_NLL_BCE = Derivation(
    id="derivation.bernoulli_nll_bce",
    title="Bernoulli outcomes give binary cross-entropy (the Bradley–Terry logistic loss)",
    statement="With y_i ~ Bernoulli(σ(s_i)) independent, −log ∏ Bern(y_i | σ(s_i)) = "
    "Σ BCE(y_i, σ(s_i)); for a comparison won by w over l with score s = r_w − r_l "
    "(Bradley–Terry) the term is log(1 + e^{−(r_w − r_l)}), the logistic loss.",
    assumptions=(
        "n ≥ 1 outcomes, n symbolic; scores s_i real",
        "labels y_i real (0/1, or soft labels); Bern(y | p) = p^y (1 − p)^{1−y}",
        "p_i = σ(s_i) = 1/(1 + e^{−s_i}), so 0 < p_i < 1",
    ),
    symbols={"i": i, "n": n, "y": yb, "s": s, "r_w": r_w, "r_l": r_l},
    chains=(
        Chain(
            lhs=-sp.log(sp.Symbol("L")),
            start=_nll(Bernoulli(yb[i], Sigmoid(s[i]))),
            steps=(
                Step(
                    -_sum(sp.log(Bernoulli(yb[i], Sigmoid(s[i])))),
                    "the log of a product of positive probabilities is the sum of their logs",
                    Proved(),
                ),
                Step(
                    -_sum(yb[i] * sp.log(Sigmoid(s[i])) + (1 - yb[i]) * sp.log(1 - Sigmoid(s[i]))),
                    "log(p^y (1 − p)^{1−y}) = y log p + (1 − y) log(1 − p) for 0 < p < 1",
                    Proved(),
                ),
                Step(
                    _sum(BCE(yb[i], Sigmoid(s[i]))),
                    "definition of binary cross-entropy",
                    Proved(),
                ),
            ),
        ),
        Chain(
            title="Bradley–Terry: one comparison won by w over l, y = 1, s = r_w − r_l",
            start=BCE(1, Sigmoid(r_w - r_l)),
            steps=(
                Step(
                    -sp.log(Sigmoid(r_w - r_l)),
                    "y = 1 keeps only the first term",
                    Proved(),
                ),
                Step(
                    sp.log(1 + sp.exp(-(r_w - r_l))),
                    "−log σ(t) = log(1 + e^{−t}): the logistic loss",
                    Proved(),
                ),
            ),
        ),
    ),
    conclusion="Binary cross-entropy is the Bernoulli negative log-likelihood; with a "
    "logistic link on a score difference it is the Bradley–Terry (logistic) loss.",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_bernoulli_nll_is_bce",
)


# --- Poisson counts → Poisson deviance --------------------------------------------------

yc = sp.IndexedBase("y", integer=True, positive=True)  # counts y_i ≥ 1 (see the zero chain)
lam = sp.IndexedBase("lambda", positive=True)
lam0 = sp.Symbol("lambda", positive=True)

Poisson = notation(
    "Poisson",
    r"\operatorname{Pois}\left(#1 \mid #2\right)",
    lambda yy, rate: rate**yy * sp.exp(-rate) / sp.factorial(yy),
    nargs=2,
    positive=True,
)
Deviance = notation(
    "Deviance",
    r"D\left(#1, #2\right)",
    lambda yy, rate: 2 * (yy * sp.log(yy / rate) - (yy - rate)),
    nargs=2,
    real=True,
)
TotalDeviance = notation(
    "TotalDeviance",
    r"\sum_{i=1}^{n} D\left(y_{i}, \lambda_{i}\right)",
    lambda: _sum(Deviance(yc[i], lam[i])),
    real=True,
)

POISSON_NLL_DEVIANCE = Derivation(
    id="derivation.poisson_nll_deviance",
    title="Poisson counts give the Poisson deviance, up to constants",
    statement="With y_i ~ Poisson(λ_i) independent, −log ∏ Pois(y_i | λ_i) = "
    "½ Σ D(y_i, λ_i) + Σ (y_i − y_i log y_i + log y_i!), where D(y, λ) = "
    "2(y log(y/λ) − (y − λ)) is the Poisson deviance; the second sum does not involve λ.",
    assumptions=(
        "n ≥ 1 counts, n symbolic; rates λ_i > 0",
        "counts y_i ≥ 1 in the first chain (y log y needs y > 0); a zero count is the "
        "second chain, with D(0, λ) = 2λ from y log(y/λ) → 0",
    ),
    symbols={"i": i, "n": n, "y": yc, "lambda": lam, "lambda0": lam0},
    chains=(
        Chain(
            lhs=-sp.log(sp.Symbol("L")),
            start=_nll(Poisson(yc[i], lam[i])),
            steps=(
                Step(
                    _sum(lam[i] - yc[i] * sp.log(lam[i]) + sp.log(sp.factorial(yc[i]))),
                    "log Pois(y | λ) = y log λ − λ − log y!, summed over independent counts",
                    Proved(),
                ),
                Step(
                    TotalDeviance() / 2
                    + _sum(yc[i] - yc[i] * sp.log(yc[i]) + sp.log(sp.factorial(yc[i]))),
                    "½ D(y, λ) = y log y − y log λ − y + λ; the rest is free of λ",
                    Proved(),
                ),
                Step(
                    sp.Eq(
                        argmin(_nll(Poisson(yc[i], lam[i])), lam),
                        argmin(TotalDeviance(), lam),
                    ),
                    "−log L = ½ Σ D + c with c free of λ",
                    ByRule(AFFINE_ARGMIN),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="A zero count",
            start=-sp.log(Poisson(0, lam0)),
            steps=(
                Step(lam0, "Pois(0 | λ) = e^{−λ}", Proved()),
                Step(
                    written(sp.Mul, sp.Rational(1, 2), written(sp.Mul, 2, lam0)),
                    "½ D(0, λ) = ½·2λ, since y log(y/λ) → 0 as y → 0⁺",
                    Proved(
                        lambda prev, new: [
                            Zero(prev - new, "previous − new = 0"),
                            Zero(
                                sp.limit(
                                    sp.Symbol("t", positive=True)
                                    * sp.log(sp.Symbol("t", positive=True) / lam0),
                                    sp.Symbol("t", positive=True),
                                    0,
                                    "+",
                                ),
                                "lim_{y→0⁺} y log(y/λ) = 0",
                            ),
                        ]
                    ),
                ),
            ),
        ),
    ),
    conclusion="Minimising the Poisson NLL over the rates is minimising the Poisson "
    "deviance; the two differ by a term of the counts alone (0 for a zero count).",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_poisson_nll_is_half_deviance_plus_constant",
)
