r"""Checks of the noise-model clauses: losses as negative log-likelihoods.

Called like :mod:`klspec.reference.noise_models`: ``gaussian_nll(y, f, sigma)``,
``mse(y, f)``, ``laplace_nll(y, f, b)``, ``mae(y, f)``, ``bernoulli_nll(y, p)``
(or ``bernoulli_nll(y, logits=z)``), ``poisson_nll(y, rate)``.

Exact values come from mpmath on the float64 inputs; tolerances from the error a
correct float64 evaluation can make (:func:`~klspec.spec.tolerances.model_tolerance`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
from hypothesis import strategies as st

from klspec.spec._assert import mp, observe, require_close, require_sum, show, violated
from klspec.spec.checks._registry import check
from klspec.spec.interface import Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import model_tolerance

# --- inputs: regression data -------------------------------------------------------------


@st.composite
def regression_data(draw: st.DrawFn, *, scale_name: str = "sigma") -> Case:
    """Observations, predictions and a noise scale across 300 decades (no overflow of z²)."""
    n = draw(st.integers(1, 12), label="n")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    residual = draw(st.integers(-300, 150), label="log10 residual")
    scale = draw(st.integers(max(-150, residual - 150), 150), label=f"log10 {scale_name}")
    per_entry = draw(st.booleans(), label=f"{scale_name} per entry")
    rng = np.random.default_rng(seed)
    f = rng.normal(0.0, 10.0 ** min(residual + 1, 150), n)
    y = f + rng.normal(0.0, 10.0**residual, n)
    s = 10.0**scale * (rng.uniform(0.5, 2.0, n) if per_entry else np.ones(1))
    return Case(y=y, f=f, **{scale_name: s}, regime=f"residual 1e{residual}, scale 1e{scale}")


def _residuals(y: np.ndarray, f: np.ndarray) -> list[mpmath.mpf]:
    return [mp(a) - mp(b) for a, b in zip(y, f, strict=True)]


def _scales(s: np.ndarray, n: int) -> list[mpmath.mpf]:
    return [mp(x) for x in np.broadcast_to(s, (n,))]


@check("noise.gaussian_nll", needs={"gaussian_nll"}, on={"data": regression_data})
def gaussian_nll_value(impl: Implementation, case: Case) -> None:
    """gaussian_nll(y, f, σ) is Σ (y−f)²/(2σ²) + ½ log(2πσ²), within the float64 tolerance."""
    got = observe(impl, "gaussian_nll", case.y, case.f, case.sigma)
    with mpmath.workdps(40):
        r, s = _residuals(case.y, case.f), _scales(case.sigma, case.y.size)
        terms = [
            (a / b) ** 2 / 2 + mpmath.log(2 * mpmath.pi * b * b) / 2
            for a, b in zip(r, s, strict=True)
        ]
        require_sum("gaussian_nll(y, f, sigma)", got, terms)


@check("noise.mse", needs={"mse"}, on={"data": regression_data})
def mse_value(impl: Implementation, case: Case) -> None:
    """mse(y, f) is the mean of (y − f)², within the float64 tolerance."""
    got = observe(impl, "mse", case.y, case.f)
    with mpmath.workdps(40):
        n = case.y.size
        require_sum("mse(y, f)", got, [a * a / n for a in _residuals(case.y, case.f)])


@check(
    "noise.laplace_nll",
    needs={"laplace_nll"},
    on={"data": functools.partial(regression_data, scale_name="b")},
)
def laplace_nll_value(impl: Implementation, case: Case) -> None:
    """laplace_nll(y, f, b) is Σ |y − f|/b + log(2b), within the float64 tolerance."""
    got = observe(impl, "laplace_nll", case.y, case.f, case.b)
    with mpmath.workdps(40):
        r, s = _residuals(case.y, case.f), _scales(case.b, case.y.size)
        terms = [abs(a) / b + mpmath.log(2 * b) for a, b in zip(r, s, strict=True)]
        require_sum("laplace_nll(y, f, b)", got, terms)


@check("noise.mae", needs={"mae"}, on={"data": regression_data})
def mae_value(impl: Implementation, case: Case) -> None:
    """mae(y, f) is the mean of |y − f|, within the float64 tolerance."""
    got = observe(impl, "mae", case.y, case.f)
    with mpmath.workdps(40):
        n = case.y.size
        require_sum("mae(y, f)", got, [abs(a) / n for a in _residuals(case.y, case.f)])


# --- Bernoulli and Poisson -----------------------------------------------------------------


@st.composite
def bernoulli_data(draw: st.DrawFn) -> Case:
    """Labels (0/1 or soft) and probabilities from 1e-300 to 1 − 1e-16, 0 and 1 included.

    Half the draws are *confident*: hard labels with p within 1e-300..1e-17 of the label,
    so every term is tiny and log(1 − p) written as such (not log1p(−p)) loses it all.
    """
    n = draw(st.integers(1, 10), label="n")
    tiny = st.integers(-300, -1).map(lambda e: 10.0**e)
    if draw(st.booleans(), label="confident"):
        y = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n), label="y")
        gaps = draw(st.lists(st.integers(-300, -17), min_size=n, max_size=n), label="log10 gap")
        # p = gap for y = 0; for y = 1 the nearest float below 1 (1 − 1e-17 rounds to 1).
        ps = [10.0**g if lab == 0 else 1.0 - 2.0**-53 for g, lab in zip(gaps, y, strict=True)]
        return Case(y=y, p=ps, regime="confident")
    labels = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))
    y = draw(st.lists(labels, min_size=n, max_size=n), label="y")
    p = st.one_of(tiny, tiny.map(lambda t: 1.0 - max(t, 2.0**-53)), st.floats(0.0, 1.0))
    ps = draw(st.lists(p, min_size=n, max_size=n), label="p")
    # p = 0 or 1 only where the label makes the term finite (0·log 0 = 0).
    ps = [
        (0.5 if (x == 0.0 and lab > 0) or (x == 1.0 and lab < 1) else x)
        for x, lab in zip(ps, y, strict=True)
    ]
    return Case(y=y, p=ps, regime="probabilities")


@check("noise.bernoulli_nll", needs={"bernoulli_nll"}, on={"probabilities": bernoulli_data})
def bernoulli_nll_value(impl: Implementation, case: Case) -> None:
    """bernoulli_nll(y, p) is −Σ [y log p + (1−y) log(1−p)], with 0·log 0 = 0."""
    got = observe(impl, "bernoulli_nll", case.y, case.p)
    with mpmath.workdps(40):
        terms = []
        for y, p in zip(case.y, case.p, strict=True):
            y, p = mp(y), mp(p)
            hit = -y * mpmath.log(p) if y > 0 else mpmath.mpf(0)
            miss = -(1 - y) * mpmath.log1p(-p) if y < 1 else mpmath.mpf(0)
            terms.append(hit + miss)
        require_sum("bernoulli_nll(y, p)", got, terms)


@st.composite
def logit_data(draw: st.DrawFn) -> Case:
    """Labels and logits from ±1e-300 to ±1e300 (softplus overflows naively beyond 709)."""
    n = draw(st.integers(1, 8), label="n")
    labels = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))
    y = draw(st.lists(labels, min_size=n, max_size=n), label="y")
    size = st.integers(-300, 300).map(lambda e: 10.0**e)
    z = st.one_of(
        st.tuples(size, st.sampled_from([-1.0, 1.0])).map(lambda t: t[0] * t[1]),
        st.floats(-800.0, 800.0),
    )
    return Case(y=y, logits=draw(st.lists(z, min_size=n, max_size=n), label="logits"))


@check("noise.bernoulli_logits", needs={"bernoulli_nll"}, on={"logits": logit_data})
def bernoulli_logits_value(impl: Implementation, case: Case) -> None:
    """bernoulli_nll(y, logits=z) is Σ softplus(z) − y z, finite and accurate for any z."""
    call = "bernoulli_nll(y, logits=logits)"
    got = observe(impl, "bernoulli_nll", case.y, call=call, logits=case.logits)
    with mpmath.workdps(40):
        terms, sizes = [], []
        for y, z in zip(case.y, case.logits, strict=True):
            y, z = mp(y), mp(z)
            linear = (1 - y) * z if z >= 0 else -y * z  # max(z, 0) − y z, >= 0
            tail = mpmath.log1p(mpmath.exp(-abs(z)))
            terms.append(linear + tail)
            # max(z, 0) − y z cancels when y is near 1: its parts' sizes, not its own,
            # are what a float64 evaluation (and a one-ulp change of y) is accurate to.
            sizes.append(max(z, 0) + abs(y * z) + tail)
        value = mpmath.fsum(terms)
        tolerance = model_tolerance(float(mpmath.fsum(sizes)), len(terms))
    require_close(call, got, float(value), tolerance, expected_text="Σ softplus(z) − y z")


@st.composite
def poisson_data(draw: st.DrawFn) -> Case:
    """Counts up to 1e6 and rates from 1e-300 to 1e6 (a rate of 0 only with a count of 0)."""
    n = draw(st.integers(1, 8), label="n")
    counts = st.one_of(st.integers(0, 5), st.integers(0, 10**6))
    y = draw(st.lists(counts, min_size=n, max_size=n), label="y")
    rate = st.one_of(
        st.integers(-300, 6).map(lambda e: 10.0**e), st.floats(1e-3, 1e3), st.just(0.0)
    )
    rates = draw(st.lists(rate, min_size=n, max_size=n), label="rate")
    rates = [r if r > 0 or k == 0 else 1.0 for r, k in zip(rates, y, strict=True)]
    return Case(y=[float(k) for k in y], rate=rates)


@check("noise.poisson_nll", needs={"poisson_nll"}, on={"counts": poisson_data})
def poisson_nll_value(impl: Implementation, case: Case) -> None:
    """poisson_nll(y, rate) is Σ λ − y log λ + log y!, with 0·log 0 = 0."""
    got = observe(impl, "poisson_nll", case.y, case.rate)
    with mpmath.workdps(40):
        terms = []
        for k, lam in zip(case.y, case.rate, strict=True):
            k, lam = mp(k), mp(lam)
            log_term = k * mpmath.log(lam) if k > 0 else mpmath.mpf(0)
            terms.append(lam - log_term + mpmath.loggamma(k + 1))
        # Each of the three parts rounds on its own: the tolerance is on their sizes.
        sizes = [
            mp(lam) + abs(mp(k) * mpmath.log(mp(lam)) if k > 0 else 0) + mpmath.loggamma(k + 1)
            for k, lam in zip(case.y, case.rate, strict=True)
        ]
        tolerance = model_tolerance(float(mpmath.fsum(sizes)), len(terms))
        value = float(mpmath.fsum(terms))
    require_close("poisson_nll(y, rate)", got, value, tolerance)


# --- MLE within a model family: NLL and MSE / MAE pick the same candidate -------------------


@st.composite
def model_families(draw: st.DrawFn) -> Case:
    """Data y, a finite family of candidate predictions F (rows) and a noise scale."""
    n = draw(st.integers(1, 8), label="n")
    k = draw(st.integers(2, 6), label="candidates")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    scale = 10.0 ** draw(st.integers(-3, 3), label="log10 scale")
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, n)
    family = y + rng.normal(0, 1, (k, n)) * rng.uniform(0.1, 2.0, (k, 1))
    if draw(st.booleans(), label="with a tie"):
        family[-1] = family[0][::-1] if n > 1 else family[0]  # same residuals, permuted
    return Case(y=y, family=family, scale=[scale])


def _best(values: np.ndarray, tolerances: np.ndarray) -> set[int]:
    """The candidates within the sum of tolerances of the smallest value (ties are ties)."""
    j = int(np.argmin(values))
    return {i for i in range(values.size) if values[i] <= values[j] + tolerances[i] + tolerances[j]}


def _agree_on_argmin(
    impl: Implementation, case: Case, *, nll: str, loss: str, terms: Callable[..., Any]
) -> None:
    scale = float(case.scale[0])
    nlls, losses, nll_tol, loss_tol = [], [], [], []
    for i, f in enumerate(case.family):
        nlls.append(observe(impl, nll, case.y, f, scale, call=f"{nll}(y, F[{i}], {scale:g})"))
        losses.append(observe(impl, loss, case.y, f, call=f"{loss}(y, F[{i}])"))
        with mpmath.workdps(30):
            nll_terms, loss_terms = terms(case.y, f, mp(scale))
            nll_tol.append(model_tolerance(float(mpmath.fsum(map(abs, nll_terms))), len(case.y)))
            loss_tol.append(model_tolerance(float(mpmath.fsum(map(abs, loss_terms))), len(case.y)))
    nlls, losses = np.array(nlls), np.array(losses)
    by_nll, by_loss = _best(nlls, np.array(nll_tol)), _best(losses, np.array(loss_tol))
    chosen_nll, chosen_loss = int(np.argmin(nlls)), int(np.argmin(losses))
    if chosen_nll not in by_loss or chosen_loss not in by_nll:
        violated(
            f"argmin {nll}(y, F[i], {scale:g})={chosen_nll}, but should be argmin "
            f"{loss}(y, F[i])={chosen_loss} ({nll}: {show(nlls)}; {loss}: {show(losses)})"
        )


def _gaussian_terms(y: np.ndarray, f: np.ndarray, s: mpmath.mpf) -> tuple[list, list]:
    r = _residuals(y, f)
    nll = [(a / s) ** 2 / 2 + mpmath.log(2 * mpmath.pi * s * s) / 2 for a in r]
    return nll, [a * a / len(r) for a in r]


def _laplace_terms(y: np.ndarray, f: np.ndarray, b: mpmath.mpf) -> tuple[list, list]:
    r = _residuals(y, f)
    return [abs(a) / b + mpmath.log(2 * b) for a in r], [abs(a) / len(r) for a in r]


@check(
    "noise.gaussian_mle_is_least_squares",
    needs={"gaussian_nll", "mse"},
    on={"families": model_families},
)
def gaussian_mle_is_least_squares(impl: Implementation, case: Case) -> None:
    """The candidate minimising gaussian_nll is the one minimising mse (ties either way)."""
    _agree_on_argmin(impl, case, nll="gaussian_nll", loss="mse", terms=_gaussian_terms)


@check(
    "noise.laplace_mle_is_least_absolute",
    needs={"laplace_nll", "mae"},
    on={"families": model_families},
)
def laplace_mle_is_least_absolute(impl: Implementation, case: Case) -> None:
    """The candidate minimising laplace_nll is the one minimising mae (ties either way)."""
    _agree_on_argmin(impl, case, nll="laplace_nll", loss="mae", terms=_laplace_terms)
