r"""Checks of the maximum-likelihood clauses: MLE is forward-KL minimisation.

Called like :mod:`klspec.reference.likelihood`: ``categorical_mle(samples,
support=...)`` → (support, probabilities), ``categorical_log_likelihood(samples,
probs, support)`` (average, batched over candidates), ``bernoulli_mle(y)``; and,
for the misspecified model, ``gaussian_nll`` and ``fit_gaussian_to_mixture``.

Exact values come from mpmath on the float64 inputs; tolerances from the error a
correct float64 evaluation can make (:func:`~klspec.spec.tolerances.model_tolerance`).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from klspec.spec import _expected
from klspec.spec._assert import invoke, observe, printable, require, require_close, show, violated
from klspec.spec.checks._registry import check
from klspec.spec.checks.fitting import _fit, _moments, mixtures
from klspec.spec.checks.noise_models import _best
from klspec.spec.interface import Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import model_tolerance

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
    except Exception:  # the target's object: whatever it raises, it is not (support, probs)
        violated(f"{call} returned {printable(result)}, but should return (support, probabilities)")
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
# (the mixtures and the fit's calling convention are the fitting checks')


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
