"""The forward-KL-optimal normal distribution matches the mean and variance."""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import ByRule, Proved, UnderConstraint, moments
from klspec.spec.derivations.claims import argmin
from klspec.spec.derivations.notation import Normal, notation, written
from klspec.spec.derivations.rules import (
    CONVEX_STATIONARY_POINT,
    INSTANCE,
    SPECIALISE,
    UNIQUE_STATIONARY_COERCIVE,
)

x = sp.Symbol("x", real=True)
c = sp.Symbol("c", real=True)
mu = sp.Symbol("mu", real=True)  # mean of P
v = sp.Symbol("v", positive=True)  # variance of P
m = sp.Symbol("m", real=True)  # mean of the fitted normal
s = sp.Symbol("s", positive=True)  # its standard deviation
p = sp.Function("p", positive=True)  # density of P
oo = sp.oo


def _integral(body):
    return sp.Integral(body, (x, -oo, oo))


KLfit = notation(
    "KLfit",
    r"D_{\mathrm{KL}}\left(P \,\|\, \mathcal{N}(#1, #2^{2})\right)",
    lambda mm, ss: _integral(p(x) * sp.log(p(x) / Normal(x, mm, ss**2))),
    nargs=2,
)
HP = notation("HP", r"H(P)", lambda: -_integral(p(x) * sp.log(p(x))))

#: ∫p = 1, ∫x p = μ, ∫x² p = v + μ²: the moments of P, which exist by hypothesis.
_MOMENTS = moments(p(x), x, {0: sp.S.One, 1: mu, 2: v + mu**2})


_FITTED = -HP() + sp.log(2 * sp.pi * s**2) / 2 + (v + (mu - m) ** 2) / (2 * s**2)

Moment = notation(
    "Moment",
    r"\int_{-\infty}^{\infty} x^{#1}\, \mathcal{N}(x \mid #2, 1)\, dx",
    lambda k, cc: _integral(x**k * Normal(x, cc, 1)),
    nargs=2,
)
Mixture = notation(
    "Mixture",
    r"\tfrac12\mathcal{N}(#1 \mid -3, 1) + \tfrac12\mathcal{N}(#1 \mid 3, 1)",
    lambda xx: Normal(xx, -3, 1) / 2 + Normal(xx, 3, 1) / 2,
    nargs=1,
    positive=True,
)
_mixture_moment = notation(
    "MixtureMoment",
    r"\mathbb{E}_{P}\left[x^{#1}\right]",
    lambda k: _integral(x**k * Mixture(x)),
    nargs=1,
)
_M1, _M2 = c, 1 + c**2  # proved in chains 2 and 3


#: The consequences of the first chain: m̂ = μ for every s, then ŝ = √v at m = μ.
_M_HAT = sp.Eq(argmin(KLfit(m, s), m), mu)
_S_HAT = sp.Eq(argmin(KLfit(mu, s), s), sp.sqrt(v))


def _half(e: sp.Basic) -> sp.Basic:
    """½·e, printed as such (arithmetic the page shows, not sympy's evaluation of it)."""
    return written(sp.Mul, sp.Rational(1, 2), e)


def _shown(*terms: sp.Basic) -> sp.Basic:
    """A sum printed term by term, unevaluated."""
    return written(sp.Add, *terms)


#: The identities proved in chains 2 and 3, used at c = ±3 in chains 4 and 5.
FIRST_MOMENT = (Moment(1, c), _M1)
SECOND_MOMENT = (Moment(2, c), _M2)


MOMENT_MATCHING = Derivation(
    id="derivation.moment_matching",
    title="Forward-KL fitting of a normal distribution matches moments",
    statement="For P with a positive density, finite entropy, mean μ and variance v > 0, "
    "D_KL(P‖𝒩(m, s²)) is minimised exactly at "
    "m = μ, s² = v. For P = ½𝒩(−3, 1) + ½𝒩(3, 1) that is 𝒩(0, 10): one wide normal "
    "covering both modes.",
    assumptions=(
        "P has a positive density p on the real line with finite entropy, mean μ (real) "
        "and variance v > 0 (so ∫p = 1, ∫x p = μ, ∫x² p = v + μ² exist)",
        "the fitted normal has mean m (real) and standard deviation s > 0",
    ),
    symbols={"x": x, "c": c, "mu": mu, "v": v, "m": m, "s": s, "p": p},
    integrable=(
        _integral(p(x) * sp.log(p(x))),  # finite entropy
        _integral(p(x)),
        _integral(x * p(x)),
        _integral(x**2 * p(x)),  # finite variance
    ),
    chains=(
        Chain(
            start=KLfit(m, s),
            steps=(
                Step(
                    _integral(p(x) * sp.log(p(x))) - _integral(p(x) * sp.log(Normal(x, m, s**2))),
                    "log(p/𝒩) = log p − log 𝒩",
                    Proved(),
                ),
                Step(
                    -HP()
                    + _integral(p(x) * (sp.log(2 * sp.pi * s**2) / 2 + (x - m) ** 2 / (2 * s**2))),
                    "−log 𝒩(x | m, s²) = ½ log(2πs²) + (x − m)²/(2s²)",
                    Proved(),
                ),
                Step(
                    _FITTED,
                    "∫p = 1, ∫x p = μ, ∫x² p = v + μ²",
                    UnderConstraint(_MOMENTS),
                ),
                Step(
                    _M_HAT,
                    "for each s, convex in m (∂²/∂m² = 1/s² > 0) with its stationary point at μ",
                    ByRule(CONVEX_STATIONARY_POINT),
                    relation="⇒",
                ),
                Step(
                    _S_HAT,
                    "at m = μ, one stationary point s = √v, and the divergence → +∞ as "
                    "s → 0⁺ or s → ∞",
                    ByRule(UNIQUE_STATIONARY_COERCIVE, {"at": {m: mu}}),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="Moments of 𝒩(c, 1), for symbolic c",
            start=FIRST_MOMENT[0],
            steps=(Step(FIRST_MOMENT[1], "sympy integrates", Proved()),),
        ),
        Chain(
            start=SECOND_MOMENT[0],
            steps=(Step(SECOND_MOMENT[1], "sympy integrates", Proved()),),
        ),
        Chain(
            title="P = ½𝒩(−3, 1) + ½𝒩(3, 1)",
            start=_mixture_moment(1),
            steps=(
                Step(
                    Moment(1, -3) / 2 + Moment(1, 3) / 2,
                    "linearity of the integral",
                    Proved(),
                ),
                Step(
                    _shown(_half(sp.Integer(-3)), _half(sp.Integer(3))),
                    "the first moment c of 𝒩(c, 1) at c = −3 and c = 3",
                    ByRule(INSTANCE, {"identity": FIRST_MOMENT, "over": (c,), "proof": Proved()}),
                ),
                Step(sp.S.Zero, "arithmetic", Proved()),
            ),
        ),
        Chain(
            start=_mixture_moment(2),
            steps=(
                Step(
                    Moment(2, -3) / 2 + Moment(2, 3) / 2,
                    "linearity of the integral",
                    Proved(),
                ),
                Step(
                    _shown(
                        _half(_shown(1, sp.Pow(-3, 2, evaluate=False))),
                        _half(_shown(1, sp.Pow(3, 2, evaluate=False))),
                    ),
                    "the second moment 1 + c² of 𝒩(c, 1) at c = −3 and c = 3",
                    ByRule(INSTANCE, {"identity": SECOND_MOMENT, "over": (c,), "proof": Proved()}),
                ),
                Step(
                    sp.Integer(10),
                    "arithmetic: mean 0, so the variance is 10 − 0² = 10",
                    Proved(),
                ),
                Step(
                    sp.And(_M_HAT.xreplace({mu: 0}), _S_HAT.xreplace({mu: 0, v: 10})),
                    "moment matching (first chain) with μ = E_P[x] = 0 and "
                    "v = E_P[x²] − E_P[x]² = 10",
                    ByRule(
                        SPECIALISE,
                        {
                            "values": {mu: 0, v: 10},
                            "because": {
                                mu: _mixture_moment(1),
                                v: _mixture_moment(2) - _mixture_moment(1) ** 2,
                            },
                        },
                    ),
                    relation="⇒",
                ),
            ),
        ),
    ),
    conclusion="The forward-KL fit of a normal to any P with a positive density, finite "
    "entropy and finite variance is "
    "𝒩(mean of P, variance of P). For the two-mode mixture ½𝒩(−3, 1) + ½𝒩(3, 1) it is "
    "𝒩(0, 10): centred in the valley between the modes, wide enough to cover both "
    "(mass-covering). The reverse-KL fit instead locks onto one mode: that is numeric only, "
    "an optimisation checked in "
    "tests/test_derivation_crosschecks.py::test_reverse_kl_fit_seeks_a_mode, not derived.",
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_forward_kl_fit_of_the_mixture_is_moment_matching",
)
