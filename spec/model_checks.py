r"""Checks of the model clauses: noise-model losses, maximum likelihood, Gaussian fits, RLHF.

Called like :mod:`klspec.reference`: ``gaussian_nll(y, f, sigma)``,
``mse(y, f)``, ``laplace_nll(y, f, b)``, ``mae(y, f)``, ``bernoulli_nll(y, p)``
(or ``bernoulli_nll(y, logits=z)``), ``poisson_nll(y, rate)``;
``categorical_mle(samples, support=...)`` → (support, probabilities),
``categorical_log_likelihood(samples, probs, support)`` (average, batched over
candidates), ``bernoulli_mle(y)``; ``fit_gaussian_to_mixture(weights, means,
sds, direction=..., start=...)`` → (mean, sd, kl),
``mixture_gaussian_kl(weights, means, sds, mean, sd, direction=...)``;
``rlhf_optimal_policy(ref_probs, rewards, beta)``,
``rlhf_objective(policy, ref_probs, rewards, beta)``,
``rlhf_optimal_value(ref_probs, rewards, beta)``.

Exact values come from mpmath on the float64 inputs; tolerances from the error a
correct float64 evaluation can make (:func:`model_tolerance`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from klspec.spec import _expected
from klspec.spec._assert import invoke, observe, require, require_close, show, violated
from klspec.spec._registry import check
from klspec.spec.implementations import Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import U, gamma, model_tolerance


def _mp(x: float) -> mpmath.mpf:
    return mpmath.mpf(float(x))


def _close(call: str, got: float, terms: Sequence[mpmath.mpf], *, expected_text: str = "") -> None:
    """``got`` is Σ terms (exact) within :func:`model_tolerance` of their sizes."""
    __tracebackhide__ = True
    value = mpmath.fsum(terms)
    magnitude = float(mpmath.fsum(abs(t) for t in terms))
    require_close(
        call, got, float(value), model_tolerance(magnitude, len(terms)), expected_text=expected_text
    )


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
    return [_mp(a) - _mp(b) for a, b in zip(y, f, strict=True)]


def _scales(s: np.ndarray, n: int) -> list[mpmath.mpf]:
    return [_mp(x) for x in np.broadcast_to(s, (n,))]


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
        _close("gaussian_nll(y, f, sigma)", got, terms)


@check("noise.mse", needs={"mse"}, on={"data": regression_data})
def mse_value(impl: Implementation, case: Case) -> None:
    """mse(y, f) is the mean of (y − f)², within the float64 tolerance."""
    got = observe(impl, "mse", case.y, case.f)
    with mpmath.workdps(40):
        n = case.y.size
        _close("mse(y, f)", got, [a * a / n for a in _residuals(case.y, case.f)])


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
        _close("laplace_nll(y, f, b)", got, terms)


@check("noise.mae", needs={"mae"}, on={"data": regression_data})
def mae_value(impl: Implementation, case: Case) -> None:
    """mae(y, f) is the mean of |y − f|, within the float64 tolerance."""
    got = observe(impl, "mae", case.y, case.f)
    with mpmath.workdps(40):
        n = case.y.size
        _close("mae(y, f)", got, [abs(a) / n for a in _residuals(case.y, case.f)])


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
            y, p = _mp(y), _mp(p)
            hit = -y * mpmath.log(p) if y > 0 else mpmath.mpf(0)
            miss = -(1 - y) * mpmath.log1p(-p) if y < 1 else mpmath.mpf(0)
            terms.append(hit + miss)
        _close("bernoulli_nll(y, p)", got, terms)


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
            y, z = _mp(y), _mp(z)
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
            k, lam = _mp(k), _mp(lam)
            log_term = k * mpmath.log(lam) if k > 0 else mpmath.mpf(0)
            terms.append(lam - log_term + mpmath.loggamma(k + 1))
        # Each of the three parts rounds on its own: the tolerance is on their sizes.
        sizes = [
            _mp(lam) + abs(_mp(k) * mpmath.log(_mp(lam)) if k > 0 else 0) + mpmath.loggamma(k + 1)
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
            nll_terms, loss_terms = terms(case.y, f, _mp(scale))
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


# --- maximum likelihood ------------------------------------------------------------------


@st.composite
def categorical_data(draw: st.DrawFn) -> Case:
    """Samples from k outcomes and a few candidate distributions (some with zeros)."""
    k = draw(st.integers(2, 8), label="outcomes")
    n = draw(st.integers(1, 60), label="samples")
    m = draw(st.integers(1, 5), label="candidates")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, k, n).astype(float)
    candidates = rng.dirichlet(np.full(k, draw(st.sampled_from([0.3, 1.0, 10.0]))), m)
    if draw(st.booleans(), label="zeros"):
        candidates[rng.integers(0, m), rng.integers(0, k)] = 0.0
    candidates = candidates / candidates.sum(axis=-1, keepdims=True)
    return Case(samples=samples, candidates=candidates, outcomes=[float(k)])


def _empirical(case: Case) -> tuple[list[int], np.ndarray, np.ndarray]:
    support = list(range(int(case.outcomes[0])))
    samples = [int(s) for s in case.samples]
    counts = np.bincount(samples, minlength=len(support)).astype(float)
    return samples, support, counts


def _log_likelihoods(impl: Implementation, case: Case) -> tuple[list[int], list[int], np.ndarray]:
    samples, support, _ = _empirical(case)
    got = observe(
        impl,
        "categorical_log_likelihood",
        samples,
        case.candidates,
        support,
        call="categorical_log_likelihood(samples, candidates, support)",
        shape=case.candidates.shape[:-1],
    )
    return samples, support, np.asarray(got)


@check(
    "mle.likelihood_plus_kl",
    needs={"categorical_log_likelihood", "kl", "entropy"},
    on={"data": categorical_data},
)
def likelihood_plus_kl(impl: Implementation, case: Case) -> None:
    """KL(P̂‖Q) + average log-likelihood(Q) is −H(P̂) for every candidate Q."""
    samples, _support, ll = _log_likelihoods(impl, case)
    _, _, counts = _empirical(case)
    p_hat = counts / len(samples)
    h = observe(impl, "entropy", p_hat, call="entropy(P̂)")
    h_tol = _expected.of("entropy", p_hat, exact=False).tolerance
    for i, q in enumerate(case.candidates):
        kl = observe(impl, "kl", p_hat, q, call=f"kl(P̂, candidates[{i}])")
        if math.isinf(kl) or math.isinf(ll[i]):
            require(
                math.isinf(kl) and ll[i] == -math.inf,
                f"categorical_log_likelihood(samples, candidates, support)[{i}]",
                ll[i],
                "-inf exactly when kl(P̂, Q) is +inf (an observed outcome of probability 0)",
            )
            continue
        want = _expected.of("kl", p_hat, q, exact=False)
        ce = _expected.of("cross_entropy", p_hat, q, exact=False)
        tolerance = want.tolerance + h_tol + ce.tolerance
        require_close(
            f"kl(P̂, candidates[{i}]) + log-likelihood[{i}]",
            kl + ll[i],
            -h,
            tolerance,
            expected_text="-entropy(P̂)",
        )


@check(
    "mle.argmin_kl_is_argmax_likelihood",
    needs={"categorical_log_likelihood", "kl"},
    on={"data": categorical_data},
)
def argmin_kl_is_argmax_likelihood(impl: Implementation, case: Case) -> None:
    """The candidates with the smallest KL(P̂‖Q) are those with the largest likelihood."""
    samples, _, ll = _log_likelihoods(impl, case)
    _, _, counts = _empirical(case)
    p_hat = counts / len(samples)
    kls = np.array(
        [
            observe(impl, "kl", p_hat, q, call=f"kl(P̂, candidates[{i}])")
            for i, q in enumerate(case.candidates)
        ]
    )
    finite = np.isfinite(kls) & np.isfinite(ll)
    assume(finite.any())
    tolerances = np.array(
        [
            _expected.of("kl", p_hat, q, exact=False).tolerance
            + _expected.of("cross_entropy", p_hat, q, exact=False).tolerance
            for q in case.candidates
        ]
    )
    by_kl = _best(np.where(finite, kls, np.inf), tolerances)
    by_ll = _best(np.where(finite, -ll, np.inf), tolerances)
    chosen_kl, chosen_ll = int(np.argmin(np.where(finite, kls, np.inf))), int(np.argmax(ll))
    if chosen_kl not in by_ll or chosen_ll not in by_kl:
        violated(
            f"argmax log-likelihood={chosen_ll}, but should be argmin kl(P̂, Q)={chosen_kl} "
            f"(log-likelihoods {show(ll)}; kl {show(kls)})"
        )


@check(
    "mle.categorical",
    needs={"categorical_mle", "categorical_log_likelihood"},
    on={"data": categorical_data},
)
def categorical_mle_is_frequency(impl: Implementation, case: Case) -> None:
    """categorical_mle is count/n exactly, and no candidate has a larger likelihood."""
    samples, support, ll = _log_likelihoods(impl, case)
    _, _, counts = _empirical(case)
    call = "categorical_mle(samples, support=support)"
    result = invoke(call, impl.function("categorical_mle"), samples, support=support)
    try:
        outcomes, probs = result
        probs = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        violated(f"{call} returned {result!r}, but should return (support, probabilities)")
    want = counts / len(samples)
    if list(outcomes) != support or probs.shape != want.shape or (probs != want).any():
        violated(f"{call}={show(probs)}, but should be count/n = {show(want)}")
    best = observe(
        impl,
        "categorical_log_likelihood",
        samples,
        probs,
        support,
        call="categorical_log_likelihood(samples, mle, support)",
    )
    h_tol = _expected.of("entropy", want, exact=False).tolerance
    for i in range(ll.size):
        tol = h_tol + _expected.of("cross_entropy", want, case.candidates[i], exact=False).tolerance
        require(
            ll[i] <= best + tol,
            f"categorical_log_likelihood(samples, candidates[{i}], support)",
            ll[i],
            f"<= the MLE's {show(best)} (+ {tol:.2g})",
        )


@st.composite
def bernoulli_samples(draw: st.DrawFn) -> Case:
    y = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=40), label="y")
    p = draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5), label="candidates")
    return Case(y=y, candidates=p)


@check("mle.bernoulli", needs={"bernoulli_mle", "bernoulli_nll"}, on={"data": bernoulli_samples})
def bernoulli_mle_is_mean(impl: Implementation, case: Case) -> None:
    """bernoulli_mle(y) is count/n, and its Bernoulli NLL is the smallest."""
    got = observe(impl, "bernoulli_mle", case.y, call="bernoulli_mle(y)")
    want = float(case.y.sum()) / case.y.size
    require(got == want, "bernoulli_mle(y)", got, f"count/n = {show(want)}")
    best = observe(
        impl, "bernoulli_nll", case.y, np.full(case.y.shape, want), call="bernoulli_nll(y, mle)"
    )
    for p in case.candidates:
        nll = observe(
            impl, "bernoulli_nll", case.y, np.full(case.y.shape, p), call=f"bernoulli_nll(y, {p!r})"
        )
        with mpmath.workdps(30):
            size = abs(best) + (0 if math.isinf(nll) else abs(nll))
        require(
            nll >= best - model_tolerance(size, case.y.size),
            f"bernoulli_nll(y, {p!r})",
            nll,
            f">= the MLE's {show(best)}",
        )


# --- misspecification: the ML Gaussian of mixture data is the forward-KL fit ----------------


@st.composite
def mixtures(draw: st.DrawFn) -> Case:
    """Two-component mixtures; the post's ½N(−3, 1) + ½N(3, 1) among them."""
    if draw(st.booleans(), label="the post's mixture"):
        return Case(weights=[0.5, 0.5], means=[-3.0, 3.0], sds=[1.0, 1.0], regime="bimodal")
    w = draw(st.floats(0.05, 0.95), label="weight")
    means = draw(st.lists(st.floats(-10.0, 10.0), min_size=2, max_size=2), label="means")
    sds = draw(st.lists(st.floats(0.2, 5.0), min_size=2, max_size=2), label="sds")
    return Case(weights=[w, 1.0 - w], means=means, sds=sds, regime="drawn")


def _fit(
    impl: Implementation, case: Case, direction: str, start: tuple[float, float] | None = None
):
    options: dict[str, Any] = {"direction": direction}
    if start is not None:
        options["start"] = start
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    call = f"fit_gaussian_to_mixture(weights, means, sds, {shown})"
    result = invoke(
        call,
        impl.function("fit_gaussian_to_mixture"),
        case.weights,
        case.means,
        case.sds,
        **options,
    )
    try:
        mean, sd, kl = (float(x) for x in result)
    except (TypeError, ValueError):
        violated(f"{call} returned {result!r}, but should return (mean, sd, kl)")
    return call, mean, sd, kl


def _moments(case: Case) -> tuple[Fraction, Fraction, Fraction]:
    """Exact mean, variance and E[(X − mean)⁴] of the mixture (from its float64 parameters)."""
    w = [Fraction(float(x)) for x in case.weights]
    total = sum(w)
    w = [x / total for x in w]
    mu = [Fraction(float(x)) for x in case.means]
    s2 = [Fraction(float(x)) ** 2 for x in case.sds]
    mean = sum(a * m for a, m in zip(w, mu, strict=True))
    var = sum(a * (v + (m - mean) ** 2) for a, m, v in zip(w, mu, s2, strict=True))
    fourth = sum(
        a * ((m - mean) ** 4 + 6 * (m - mean) ** 2 * v + 3 * v * v)
        for a, m, v in zip(w, mu, s2, strict=True)
    )
    return mean, var, fourth


@check(
    "mle.misspecified_gaussian",
    needs={"gaussian_nll", "fit_gaussian_to_mixture"},
    on={"mixtures": mixtures},
)
def misspecified_gaussian(impl: Implementation, case: Case) -> None:
    """The Gaussian MLE of 20000 mixture samples is within 5 standard errors of the forward fit."""
    n = 20_000
    rng = np.random.default_rng(20251128)
    which = rng.random(n) < case.weights[0]
    x = np.where(
        which, rng.normal(case.means[0], case.sds[0], n), rng.normal(case.means[1], case.sds[1], n)
    )
    m_hat = math.fsum(x) / n
    s_hat = math.sqrt(math.fsum((x - m_hat) ** 2) / n)
    # The maximiser of the implementation's own likelihood: no neighbour does better.
    best = observe(impl, "gaussian_nll", x, m_hat, s_hat, call="gaussian_nll(x, x̄, s)")
    slack = model_tolerance(abs(best) * 4, n)
    for dm, ds in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        m, s = m_hat + dm * s_hat, s_hat * (1 + ds)
        other = observe(impl, "gaussian_nll", x, m, s, call=f"gaussian_nll(x, {m!r}, {s!r})")
        require(
            other >= best - slack,
            f"gaussian_nll(x, {m!r}, {s!r})",
            other,
            f">= {show(best)} at (x̄, s)",
        )
    call, mean, sd, _ = _fit(impl, case, "forward")
    _, var, fourth = _moments(case)
    se_mean = math.sqrt(float(var) / n)
    se_var = math.sqrt(float(fourth - var * var) / n)
    require_close("x̄ of the samples", m_hat, mean, 5 * se_mean, expected_text=f"{call}.mean")
    require_close("s² of the samples", s_hat**2, sd**2, 5 * se_var, expected_text=f"{call}.sd²")


# --- Gaussian fits ------------------------------------------------------------------------

_FIT_ACCURACY = 1e-9  # what the integrals promise (clause fit.divergence_value)
_BIMODAL = Case(weights=[0.5, 0.5], means=[-3.0, 3.0], sds=[1.0, 1.0], regime="bimodal")


def _log_mixture(case: Case, x: mpmath.mpf) -> mpmath.mpf:
    logs = [
        mpmath.log(_mp(w))
        - (x - _mp(m)) ** 2 / (2 * _mp(s) ** 2)
        - mpmath.log(_mp(s) * mpmath.sqrt(2 * mpmath.pi))
        for w, m, s in zip(case.weights, case.means, case.sds, strict=True)
        if w > 0
    ]
    top = max(logs)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in logs))


def _log_gaussian(m: float, s: float, x: mpmath.mpf) -> mpmath.mpf:
    return -((x - _mp(m)) ** 2) / (2 * _mp(s) ** 2) - mpmath.log(
        _mp(s) * mpmath.sqrt(2 * mpmath.pi)
    )


def _features(case: Case) -> list[tuple[float, float]]:
    """(x, width) where log p changes on the scale ``width``: the components, and the kinks.

    A kink is where two components have equal weighted density: there log p turns from
    one parabola to the other over a width 1/|difference of their slopes| (a quadratic
    in x gives the points).
    """
    comps = [
        (math.log(float(w)), float(m), float(s))
        for w, m, s in zip(case.weights, case.means, case.sds, strict=True)
        if w > 0
    ]
    out = [(m, s) for _, m, s in comps]
    for i, (lw_i, m_i, s_i) in enumerate(comps):
        for lw_j, m_j, s_j in comps[i + 1 :]:
            a = 1 / (2 * s_j**2) - 1 / (2 * s_i**2)
            b = m_i / s_i**2 - m_j / s_j**2
            c = lw_i - math.log(s_i) - m_i**2 / (2 * s_i**2)
            c += -lw_j + math.log(s_j) + m_j**2 / (2 * s_j**2)
            if a == 0:
                roots = [-c / b] if b else []
            else:
                disc = b * b - 4 * a * c
                roots = [(-b + k * math.sqrt(disc)) / (2 * a) for k in (1, -1)] if disc >= 0 else []
            for r in roots:
                slope = abs((r - m_j) / s_j**2 - (r - m_i) / s_i**2)
                out.append((r, 1 / slope if slope else s_i))
    return out


def _expect_log_mixture(case: Case, centre: float, width: float) -> mpmath.mpf:
    """∫ φ(z) log p(centre + width·z) dz over |z| <= 40 by Gauss–Legendre, graded at features.

    Panels are graded geometrically (width/4, width/2, ... out to 40 z-units) around
    every feature of log p (:func:`_features`) and around z = 0, so that each panel
    is smooth on its own scale and mpmath's error estimate can be trusted (it is
    checked). Agrees with the reference to 1e-16 relative on the hard cases of
    tests/test_fitting.py.
    """
    c, w = _mp(centre), _mp(width)
    points = {-40.0, 40.0}
    for x, scale in [(centre, width), *_features(case)]:
        z, step = (x - centre) / width, scale / width / 4
        points.add(z)
        while step < 80:
            points.update((z - step, z + step))
            step *= 2
    points = sorted(z for z in points if -40.0 <= z <= 40.0)

    def integrand(z: mpmath.mpf) -> mpmath.mpf:
        return mpmath.npdf(z) * _log_mixture(case, c + w * z)

    value, error = mpmath.quad(
        integrand, [_mp(z) for z in points], method="gauss-legendre", error=True
    )
    if error > 1e-15 * (1 + abs(value)):
        raise RuntimeError(f"the quadrature of the oracle did not converge (error {error})")
    return value


def mixture_kl_exact(case: Case, mean: float, sd: float, direction: str) -> float:
    """KL(P‖Q) (forward) or KL(Q‖P) (reverse) with mpmath: closed forms and one quadrature.

    Reverse: −½ log(2πe s²) − E_Q[log p]. Forward: Σ_k w_k E_k[log p] − E_P[log q],
    with E_P[log q] = −½ log(2π s²) − Σ_k w_k (σ_k² + (μ_k − m)²)/(2 s²). Cached: the
    same mixtures come back for every implementation a run checks.
    """
    key = tuple(tuple(float(x) for x in case.arrays[k]) for k in ("weights", "means", "sds"))
    return _mixture_kl_exact(key, float(mean), float(sd), direction)


@functools.lru_cache(maxsize=4096)
def _mixture_kl_exact(
    key: tuple[tuple[float, ...], ...], mean: float, sd: float, direction: str
) -> float:
    case = Case(weights=key[0], means=key[1], sds=key[2])
    with mpmath.workdps(20):
        m, s = _mp(mean), _mp(sd)
        if direction == "reverse":
            value = -mpmath.log(2 * mpmath.pi * mpmath.e * s * s) / 2 - _expect_log_mixture(
                case, mean, sd
            )
            return float(value)
        total = mpmath.fsum(_mp(w) for w in case.weights)
        parts, spread = [], []
        for w, mu, sigma in zip(case.weights, case.means, case.sds, strict=True):
            if w > 0:
                parts.append(_mp(w) / total * _expect_log_mixture(case, float(mu), float(sigma)))
                spread.append(_mp(w) / total * (_mp(sigma) ** 2 + (_mp(mu) - m) ** 2))
        log_q = -mpmath.log(2 * mpmath.pi * s * s) / 2 - mpmath.fsum(spread) / (2 * s * s)
        return float(mpmath.fsum(parts) - log_q)


def _fit_tolerance(value: float) -> float:
    return _FIT_ACCURACY * max(1.0, abs(value))


@check("fit.forward_moment_matching", needs={"fit_gaussian_to_mixture"}, on={"mixtures": mixtures})
def forward_moment_matching(impl: Implementation, case: Case) -> None:
    """The forward fit's mean and variance are the mixture's (exact moments), its kl the KL."""
    call, mean, sd, kl = _fit(impl, case, "forward")
    m, var, _ = _moments(case)
    scale = float(
        sum(
            Fraction(float(w)) * (Fraction(float(s)) ** 2 + Fraction(float(mu)) ** 2)
            for w, mu, s in zip(case.weights, case.means, case.sds, strict=True)
        )
    )
    require_close(
        f"{call}.mean", mean, float(m), 4 * U * math.sqrt(scale) + 1e-300, expected_text="E_P[x]"
    )
    require_close(f"{call}.sd²", sd * sd, float(var), 16 * U * scale, expected_text="Var_P[x]")
    if case.regime == "bimodal":  # the value of kl elsewhere: fit.minimum, fit.divergence_value
        want = mixture_kl_exact(case, mean, sd, "forward")
        require_close(
            f"{call}.kl", kl, want, _fit_tolerance(want), expected_text="KL(P‖Q) by quadrature"
        )


@st.composite
def hard_mixtures(draw: st.DrawFn) -> Case:
    """Separated modes, unequal weights and widths, and a Q far narrower or wider than P.

    Drawn from a finite set, so that the quadratures (cached) are shared between runs.
    """
    kinds = ["separated", "unequal", "widths", "narrow q", "wide q"]
    kind = draw(st.sampled_from(kinds), label="kind")
    gap = draw(st.sampled_from([3.0, 10.0, 30.0]), label="gap")
    w = {"unequal": 1e-6}.get(kind, 0.5)
    sds = [1e-3, 1e3] if kind == "widths" else [1.0, 1.0]
    mean = draw(st.sampled_from([-1.0, 0.0, 0.3, 0.9, 1.2]), label="mean of q / gap") * gap
    sd = {"narrow q": 1e-3, "wide q": 1e3}.get(kind) or draw(
        st.sampled_from([0.3, 1.0, 3.0]), label="sd of q"
    )
    direction = draw(st.sampled_from(["forward", "reverse"]), label="direction")
    return Case(
        weights=[w, 1.0 - w],
        means=[-gap, gap],
        sds=sds,
        q=[mean, sd],
        regime=f"{kind} {direction}",
        forward=[1.0 if direction == "forward" else 0.0],
    )


@check(
    "fit.divergence_value",
    needs={"mixture_gaussian_kl"},
    on={"hard": hard_mixtures},
    max_examples=40,
)
def divergence_value(impl: Implementation, case: Case) -> None:
    """mixture_gaussian_kl is the divergence by quadrature, within 1e-9."""
    direction = "forward" if case.forward[0] else "reverse"
    mean, sd = (float(x) for x in case.q)
    call = f"mixture_gaussian_kl(weights, means, sds, {mean!r}, {sd!r}, direction={direction!r})"
    got = observe(
        impl,
        "mixture_gaussian_kl",
        case.weights,
        case.means,
        case.sds,
        mean,
        sd,
        call=call,
        direction=direction,
    )
    want = mixture_kl_exact(case, mean, sd, direction)
    require_close(
        call, got, want, _FIT_ACCURACY + 1e-12 * abs(want), expected_text="the quadrature"
    )


def _local_minimum(
    impl: Implementation, case: Case, call: str, mean: float, sd: float, kl: float, direction: str
) -> None:
    for dm, ds in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
        m, s = mean + 1e-3 * dm * sd, sd * math.exp(1e-3 * ds)
        other = observe(
            impl,
            "mixture_gaussian_kl",
            case.weights,
            case.means,
            case.sds,
            m,
            s,
            call=f"mixture_gaussian_kl(..., {m!r}, {s!r}, direction={direction!r})",
            direction=direction,
        )
        require(
            other >= kl - _FIT_ACCURACY,
            f"mixture_gaussian_kl(..., {m!r}, {s!r})",
            other,
            f">= {call}.kl = {show(kl)}",
        )


@check(
    "fit.minimum",
    needs={"fit_gaussian_to_mixture", "mixture_gaussian_kl"},
    on={"mixtures": mixtures},
)
def fit_minimum(impl: Implementation, case: Case) -> None:
    """Neither fit can be improved by a nearby (mean, sd)."""
    for direction in ("forward", "reverse"):
        call, mean, sd, kl = _fit(impl, case, direction)
        at_fit = observe(
            impl,
            "mixture_gaussian_kl",
            case.weights,
            case.means,
            case.sds,
            mean,
            sd,
            call=f"mixture_gaussian_kl(..., {mean!r}, {sd!r}, direction={direction!r})",
            direction=direction,
        )
        require_close(
            f"{call}.kl",
            kl,
            at_fit,
            2 * _fit_tolerance(at_fit),
            expected_text="mixture_gaussian_kl at the fit",
        )
        _local_minimum(impl, case, call, mean, sd, kl, direction)


@check("fit.reverse_mode_seeking", needs={"fit_gaussian_to_mixture"})
def reverse_mode_seeking(impl: Implementation, case: None) -> None:
    """From near either mode of ½N(−3,1) + ½N(3,1), the reverse fit locks onto that mode."""
    for start in ((2.5, 1.0), (-2.5, 1.0), (3.5, 0.7), (-3.5, 0.7)):
        call, mean, sd, kl = _fit(impl, _BIMODAL, "reverse", start)
        mode = math.copysign(3.0, start[0])
        require_close(f"{call}.mean", mean, mode, 0.05, expected_text="the mode it started near")
        require_close(f"{call}.sd", sd, 1.0, 0.05, expected_text="the mode's sd")
        require_close(f"{call}.kl", kl, math.log(2), 0.01, expected_text="log 2")


@check("fit.symmetric_stationary_point", needs={"fit_gaussian_to_mixture", "mixture_gaussian_kl"})
def symmetric_stationary_point(impl: Implementation, case: None) -> None:
    """From mean 0 the reverse fit stays on the axis, at a local minimum worse than the modes."""
    call, mean, sd, kl = _fit(impl, _BIMODAL, "reverse", (0.0, 1.0))
    require(abs(mean) < 1e-6, f"{call}.mean", mean, "0 (the gradient in the mean is 0 there)")
    _, _, _, mode_kl = _fit(impl, _BIMODAL, "reverse", (2.5, 1.0))
    require(kl > mode_kl + 0.1, f"{call}.kl", kl, f"> the mode fit's {show(mode_kl)} + 0.1")
    for m in (0.1, -0.1):
        moved = observe(
            impl,
            "mixture_gaussian_kl",
            *_BIMODAL.arrays.values(),
            m,
            sd,
            direction="reverse",
            call=f"mixture_gaussian_kl(..., {m}, {sd!r}, direction='reverse')",
        )
        require(
            moved > kl + _fit_tolerance(kl),
            f"mixture_gaussian_kl(..., {m}, {sd!r})",
            moved,
            f"> {show(kl)} at mean 0 (a local minimum)",
        )


# --- RLHF ---------------------------------------------------------------------------------


@st.composite
def rlhf_problems(draw: st.DrawFn, *, zeros: bool = False) -> Case:
    """π_ref (zeros allowed), rewards up to 1e4 in size and β from 1e-3 to 1e2."""
    n = draw(st.integers(1, 8), label="responses")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    ref = rng.dirichlet(np.ones(n))
    if zeros and n > 1:
        ref[rng.integers(0, n)] = 0.0
    ref = ref / math.fsum(ref)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e4]), label="reward scale")
    rewards = rng.normal(0, scale, n)
    if zeros:
        rewards = np.where(ref == 0, 1e300, rewards)
    beta = draw(st.sampled_from([1e-3, 0.1, 1.0, 100.0]), label="beta")
    return Case(ref_probs=ref, rewards=rewards, beta=[beta])


def _optimum_exact(case: Case) -> tuple[list[mpmath.mpf], mpmath.mpf]:
    beta = _mp(case.beta[0])
    ref = [_mp(x) for x in case.ref_probs]
    total = mpmath.fsum(ref)
    logs = [
        mpmath.log(p / total) + _mp(r) / beta
        for p, r in zip(ref, case.rewards, strict=True)
        if p > 0
    ]
    top = max(logs)
    z = mpmath.fsum(mpmath.exp(v - top) for v in logs)
    policy = []
    for p, r in zip(ref, case.rewards, strict=True):
        policy.append(
            mpmath.exp(mpmath.log(p / total) + _mp(r) / beta - top) / z if p > 0 else mpmath.mpf(0)
        )
    return policy, beta * (top + mpmath.log(z))


def _exponent_scale(case: Case) -> float:
    beta = float(case.beta[0])
    live = case.rewards[case.ref_probs > 0]
    return float(np.max(np.abs(live))) / beta + 1.0


@check(
    "rlhf.optimal_policy",
    needs={"rlhf_optimal_policy", "rlhf_optimal_value"},
    on={"problems": rlhf_problems},
)
def rlhf_optimal_policy(impl: Implementation, case: Case) -> None:
    """rlhf_optimal_policy is π_ref e^{r/β}/Z entry by entry, rlhf_optimal_value is β log Z."""
    args = (case.ref_probs, case.rewards, float(case.beta[0]))
    n = case.ref_probs.size
    policy = observe(
        impl,
        "rlhf_optimal_policy",
        *args,
        call="rlhf_optimal_policy(ref_probs, rewards, beta)",
        shape=(n,),
    )
    value = observe(
        impl, "rlhf_optimal_value", *args, call="rlhf_optimal_value(ref_probs, rewards, beta)"
    )
    with mpmath.workdps(40):
        want, log_z = _optimum_exact(case)
    # r/β is rounded (relative u): the exponent moves by u·|r/β|, each π* by that, relatively.
    relative = (8 + 2 * n) * U + 4 * U * _exponent_scale(case)
    want = np.array([float(x) for x in want])
    require_close(
        "rlhf_optimal_policy(ref_probs, rewards, beta)", policy, want, relative * want + 1e-300
    )
    beta = float(case.beta[0])
    require_close(
        "rlhf_optimal_value(ref_probs, rewards, beta)",
        value,
        float(log_z),
        4 * U * beta * _exponent_scale(case) + 8 * U * abs(float(log_z)),
        expected_text="β log Z",
    )


@check(
    "rlhf.optimum_beats_every_policy",
    needs={"rlhf_objective", "rlhf_optimal_value"},
    on={"problems": rlhf_problems},
)
def rlhf_optimum_beats_every_policy(impl: Implementation, case: Case) -> None:
    """rlhf_objective(π) <= rlhf_optimal_value for drawn π and for π* (which attains it)."""
    beta = float(case.beta[0])
    args = (case.ref_probs, case.rewards, beta)
    best = observe(
        impl, "rlhf_optimal_value", *args, call="rlhf_optimal_value(ref_probs, rewards, beta)"
    )
    with mpmath.workdps(40):
        optimum, _ = _optimum_exact(case)
    star = np.array([float(x) for x in optimum])
    rng = np.random.default_rng(int(case.ref_probs.size))
    candidates = {"π*": star}
    for k in range(3):
        pi = rng.dirichlet(np.ones(case.ref_probs.size)) * (case.ref_probs > 0)
        candidates[f"π_{k}"] = pi / math.fsum(pi)
    mixed = 0.999 * star + 0.001 * candidates["π_0"]
    candidates["π* perturbed"] = mixed / math.fsum(mixed)
    value_tol = 4 * U * beta * _exponent_scale(case) + 8 * U * abs(best)
    for name, pi in candidates.items():
        call = f"rlhf_objective({name}, ref_probs, rewards, beta)"
        j = observe(impl, "rlhf_objective", pi, *args, call=call)
        kl_tol = beta * _expected.of("kl", pi, case.ref_probs, exact=False).tolerance
        reward_tol = (gamma(pi.size) + 4 * U) * math.fsum(np.abs(pi * case.rewards))
        require(
            j <= best + value_tol + kl_tol + reward_tol,
            call,
            j,
            f"<= rlhf_optimal_value = {show(best)}",
        )
        if name == "π*":
            # J is stationary at π*: rounding π* moves J only to second order.
            require_close(call, j, best, value_tol + kl_tol + reward_tol, expected_text="β log Z")


@check(
    "rlhf.support",
    needs={"rlhf_optimal_policy"},
    on={"problems": functools.partial(rlhf_problems, zeros=True)},
)
def rlhf_support(impl: Implementation, case: Case) -> None:
    """π* is exactly 0 wherever π_ref is 0, even where the reward is 1e300."""
    n = case.ref_probs.size
    policy = observe(
        impl,
        "rlhf_optimal_policy",
        case.ref_probs,
        case.rewards,
        float(case.beta[0]),
        call="rlhf_optimal_policy(ref_probs, rewards, beta)",
        shape=(n,),
    )
    require(
        (case.ref_probs > 0) | (policy == 0),
        "rlhf_optimal_policy(ref_probs, rewards, beta)",
        policy,
        "0 where ref_probs is 0",
    )


@st.composite
def separated_rewards(draw: st.DrawFn) -> Case:
    """Rewards on a grid of 1e-3 (distinct or tied exactly) and a π_ref without zeros."""
    n = draw(st.integers(2, 6), label="responses")
    levels = draw(
        st.lists(st.integers(-1000, 1000), min_size=n, max_size=n), label="rewards / 1e-3"
    )
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    ref = np.random.default_rng(seed).dirichlet(np.ones(n))
    return Case(ref_probs=ref / math.fsum(ref), rewards=np.array(levels) * 1e-3)


@check("rlhf.beta_limits", needs={"rlhf_optimal_policy", "kl"}, on={"rewards": separated_rewards})
def rlhf_beta_limits(impl: Implementation, case: Case) -> None:
    """KL(π*_β‖π_ref) falls as β grows; π* → π_ref as β → ∞ and → the argmax as β → 0."""
    n = case.ref_probs.size

    def optimum(beta: float) -> np.ndarray:
        return observe(
            impl,
            "rlhf_optimal_policy",
            case.ref_probs,
            case.rewards,
            beta,
            call=f"rlhf_optimal_policy(ref_probs, rewards, {beta:g})",
            shape=(n,),
        )

    previous, previous_tol = math.inf, 0.0
    for k in range(-6, 7):
        beta = 10.0**k
        pi = optimum(beta)
        kl = observe(impl, "kl", pi, case.ref_probs, call=f"kl(π*_{beta:g}, π_ref)")
        tol = _expected.of("kl", pi, case.ref_probs, exact=False).tolerance
        require(
            kl <= previous + tol + previous_tol,
            f"kl(π*_{beta:g}, π_ref)",
            kl,
            f"<= {show(previous)} at β = {beta / 10:g} (it must fall as β grows)",
        )
        previous, previous_tol = kl, tol
    far = optimum(1e12)
    require_close(
        "rlhf_optimal_policy(ref_probs, rewards, 1e12)",
        far,
        case.ref_probs,
        1e-9,
        expected_text="ref_probs",
    )
    near = optimum(1e-12)
    top = case.rewards == case.rewards.max()
    want = np.where(top, case.ref_probs, 0.0)
    want = want / math.fsum(want)
    # r/β ~ 1e9 here: its rounding moves each π* by a relative u·|r|/β (rlhf.optimal_policy).
    relative = (8 + 2 * n) * U + 4 * U * (float(np.max(np.abs(case.rewards))) / 1e-12 + 1)
    require_close(
        "rlhf_optimal_policy(ref_probs, rewards, 1e-12)",
        near,
        want,
        relative * want + 1e-300,
        expected_text="π_ref restricted to the argmax",
    )
