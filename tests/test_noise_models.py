"""Losses from noise models (klspec.reference.noise_models) against scipy.stats and mpmath.

BOUNDS (relative error against mpmath at 50+ digits, in units of ε = 2**-52,
"relative, short of underflow" as in klspec.spec.oracle.accuracy_error):

* Bernoulli from logits, per term, z in ±[1e-300, 1e300] and ±1.8e308,
  y in {0, 1, 0.3}: <= 3ε.
* Gaussian, per term, σ from 5e-324 to 1.7e308, σ near 1/√(2π): <= 4ε·κ,
  κ = (½z² + |log σ√(2π)|) / |term| (1 unless the two parts cancel).
* Poisson from rates, per term, counts up to 1.7e308 and rates 1e-300..1e300
  times the count: <= 4ε (the terms are sums of non-negative parts).
* Poisson from log rates: <= 4ε·κ_L, κ_L = 1 + |λ − y| / term, the
  conditioning of the term in log λ (e^{log λ} is itself rounded).
* Sums of 2000 terms: <= 4ε·κ, κ = Σ|term| / |Σ term| (math.fsum adds no error).

Each accuracy check is a function of the implementation, and a meta-test shows it
rejects a naive one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special, stats

from klspec.reference import noise_models
from klspec.reference.noise_models import (
    bernoulli_nll,
    binary_cross_entropy,
    gaussian_nll,
    laplace_nll,
    mae,
    mse,
    poisson_nll,
)
from klspec.spec.oracle import accuracy_error

pytestmark = pytest.mark.filterwarnings("error")

EPS = float(np.finfo(np.float64).eps)
MAX = float(np.finfo(np.float64).max)
DPS = 50


def exactly(message: str) -> str:
    """A pytest.raises(match=...) pattern that accepts only this exact message."""
    return f"^{re.escape(message)}$"


def assert_accurate(call: str, got: float, exact: mpmath.mpf, bound: float, kappa: float = 1.0):
    """``got`` within ``bound``·ε·``kappa`` of ``exact`` (inf where exact overflows)."""
    __tracebackhide__ = True
    if exact > MAX:
        assert got == math.inf, f"{call}={got!r}, but should be inf (exact {exact}) [overflow]"
        return 0.0
    err = accuracy_error(float(got), exact) / EPS
    assert err <= bound * kappa, (
        f"{call}={got!r}, but should be {mpmath.nstr(exact, 17)} "
        f"(error {err:.3g}ε > {bound}ε·κ, κ={kappa:.3g}) [accuracy]"
    )
    return err / kappa


# ---------------------------------------------------------------- exact values


def exact_bernoulli_logit_term(y: float, z: float) -> mpmath.mpf:
    """softplus(z) − y·z = max(z, 0) − y·z + log(1 + e^{−|z|}), exactly (no cancellation)."""
    with mpmath.workdps(DPS):
        y_, z_ = mpmath.mpf(y), mpmath.mpf(z)
        linear = (1 - y_) * z_ if z_ >= 0 else -y_ * z_
        return +(linear + mpmath.log1p(mpmath.exp(-abs(z_))))


def exact_gaussian_term(y: float, f: float, sigma: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    """(y − f)²/(2σ²) + log(σ√(2π)) and its condition κ = Σ|parts| / |term|."""
    with mpmath.workdps(DPS):
        y_, f_, s = mpmath.mpf(y), mpmath.mpf(f), mpmath.mpf(sigma)
        quad = (y_ - f_) ** 2 / (2 * s * s)
        log_part = mpmath.log(s * mpmath.sqrt(2 * mpmath.pi))
        term = quad + log_part
        return +term, (quad + abs(log_part)) / abs(term) if term else mpmath.inf


def exact_laplace_term(y: float, f: float, b: float) -> mpmath.mpf:
    with mpmath.workdps(DPS):
        b_ = mpmath.mpf(b)
        return +(abs(mpmath.mpf(y) - mpmath.mpf(f)) / b_ + mpmath.log(2 * b_))


def exact_poisson_term(
    y: float, rate: float | None = None, log_rate: float | None = None
) -> tuple[mpmath.mpf, mpmath.mpf]:
    """λ − y log λ + log y! and κ_L = 1 + |λ − y|/term.

    y log λ and log y! are each ~y·log y and cancel to about ½ log(2πy): carry 50
    digits beyond the magnitude of y log y.
    """
    size = max(abs(y), abs(rate or 0.0), math.exp(min(log_rate or 0.0, 700.0)), 10.0)
    with mpmath.workdps(DPS + int(math.log10(size) + math.log10(math.log(size))) + 5):
        y_ = mpmath.mpf(y)
        if log_rate is not None:
            log_lam = mpmath.mpf(log_rate)
            lam = mpmath.exp(log_lam)
        else:
            lam = mpmath.mpf(rate)
            if lam == 0:
                return (mpmath.mpf(0) if y == 0 else mpmath.inf), mpmath.mpf(1)
            log_lam = mpmath.log(lam)
        term = lam - y_ * log_lam + mpmath.loggamma(y_ + 1)
        return +term, 1 + abs(lam - y_) / term


# ---------------------------------------------------------------- accuracy

HARD_LOGITS = sorted(
    {s * 10.0**k for k in range(-300, 301, 10) for s in (1.0, -1.0)}
    | {MAX, -MAX, 5e-324, -5e-324, 0.0, 36.7, -36.7, 709.8, -745.1}
)
LABELS = (0.0, 1.0, 0.3)


def check_bernoulli_logits(impl: Callable[[float, float], float]) -> float:
    """Worst error (in ε) of impl(y, z) ≈ softplus(z) − y·z; asserts <= 3ε per term."""
    worst = 0.0
    for y in LABELS:
        for z in HARD_LOGITS:
            got = impl(y, z)
            call = f"bernoulli_nll(y={y!r}, logits={z!r})"
            worst = max(worst, assert_accurate(call, got, exact_bernoulli_logit_term(y, z), 3))
    return worst


def test_bernoulli_logits_terms_are_accurate_for_extreme_logits():
    # BOUND: <= 3ε per term, z in ±[1e-300, 1e300], ±1.8e308, ±5e-324; y in {0, 1, 0.3}.
    check_bernoulli_logits(lambda y, z: bernoulli_nll(y, logits=z))


SIGMAS = [5e-324, 1e-310, 1e-300, 1e-200, 1e-10, 0.25, 0.3989422804014327, 0.39894228]
SIGMAS += [0.5, 0.75, 1.0, 1e10, 1e200, 1e300, 1.7e308]
RESIDUALS = [0.0, 1e-8, 0.5, 1.0, 1.1774100225154747, 3.0, 1e5, 1e150]


def hard_gaussian_inputs() -> list[tuple[float, float, float]]:
    """(y, f, σ) with residuals from 0 to 1e150 σ, and y, f near ±1e308 (y − f overflows)."""
    cases = [(1e308, -1e308, 1e300), (-1.5e308, 1.5e308, 1e300), (1e308, -1e308, 1e-300)]
    for sigma in SIGMAS:
        for c in RESIDUALS:
            for f in (0.0, 1.0, -1e300):
                y = f + c * sigma
                if math.isfinite(y):
                    cases.append((y, f, sigma))
    return cases


def check_gaussian(impl: Callable[[float, float, float], float]) -> float:
    """Worst error (in ε, per unit of κ) of impl(y, f, σ), one term; asserts <= 4ε·κ."""
    worst = 0.0
    for y, f, sigma in hard_gaussian_inputs():
        exact, kappa = exact_gaussian_term(y, f, sigma)
        call = f"gaussian_nll({y!r}, {f!r}, sigma={sigma!r})"
        worst = max(worst, assert_accurate(call, impl(y, f, sigma), exact, 4, float(kappa)))
    return worst


def test_gaussian_terms_are_accurate_for_tiny_and_huge_sigma():
    # BOUND: <= 4ε·κ per term, κ = (½z² + |log σ√(2π)|)/|term|; σ from 5e-324 to 1.7e308.
    check_gaussian(gaussian_nll)


def test_laplace_terms_are_accurate_for_tiny_and_huge_b():
    # BOUND: <= 4ε·κ per term, κ = (|y − f|/b + |log 2b|)/|term| (1 for b >= 1/2).
    for y, f, b in hard_gaussian_inputs():
        exact = exact_laplace_term(y, f, b)
        with mpmath.workdps(DPS):
            parts = abs(mpmath.mpf(y) - mpmath.mpf(f)) / b + abs(mpmath.log(2 * mpmath.mpf(b)))
            kappa = float(parts / abs(exact)) if exact else 1.0  # b = 1/2, y = f: exactly 0
        assert_accurate(
            f"laplace_nll({y!r}, {f!r}, b={b!r})", laplace_nll(y, f, b), exact, 4, kappa
        )


COUNTS = [1.0, 2.0, 3.0, 10.0, 15.0, 16.0, 17.0, 30.0, 100.0, 1e3, 12345.0, 1e6, 1e9]
COUNTS += [1e15, 2.0**53, 1e100, 1e300, 1.7e308]
RATE_FACTORS = [1.0, 1 + 1e-12, 1 + 1e-8, 1.001, 1.1, 0.7, 0.5, 1.5, 2.0, 2.99, 3.0, 3.01]
RATE_FACTORS += [1 / 3, 0.2, 1e-5, 1e5, 1e-300, 1e300]


def hard_poisson_inputs() -> list[tuple[float, float]]:
    """(y, λ): counts up to 1.7e308, λ near y (cancellation) and far, both sides of 3y, y/3."""
    cases = [(0.0, 0.0), (0.0, 2.5), (0.0, 1e-300), (0.0, 1e300), (5.0, 5e-324)]
    for y in COUNTS:
        for m in RATE_FACTORS:
            lam = y * m
            if 0 < lam < math.inf:
                cases.append((y, lam))
    return cases


def check_poisson_rate(impl: Callable[[float, float], float]) -> float:
    """Worst error (in ε) of impl(y, λ) ≈ λ − y log λ + log y!; asserts <= 4ε per term."""
    worst = 0.0
    for y, lam in hard_poisson_inputs():
        exact, _ = exact_poisson_term(y, rate=lam)
        worst = max(worst, assert_accurate(f"poisson_nll({y!r}, {lam!r})", impl(y, lam), exact, 4))
    return worst


def test_poisson_terms_are_accurate_for_large_counts():
    # BOUND: <= 4ε per term; y log λ and log y! reach 7e310 where the term is ~350.
    check_poisson_rate(poisson_nll)


def test_poisson_log_rate_terms_are_accurate_and_finite_beyond_exp_overflow():
    # BOUND: <= 4ε·κ_L, κ_L = 1 + |λ − y|/term; log rates past 709.78 (e^L overflows)
    # with counts near 1.8e308 still give the finite exact value.
    for y, lam in hard_poisson_inputs():
        if lam == 0:
            continue
        log_rate = math.log(lam)
        exact, kappa = exact_poisson_term(y, log_rate=log_rate)
        got = poisson_nll(y, log_rate=log_rate)
        assert_accurate(f"poisson_nll({y!r}, log_rate={log_rate!r})", got, exact, 4, float(kappa))
    for y in (0.0, 1.0, 1e300, 1.5e308, 1.7e308, MAX):
        for log_rate in (-1e308, -800.0, 709.5, 709.9, 710.3, 711.0, 760.0, 1e308):
            exact, kappa = exact_poisson_term(y, log_rate=log_rate)
            got = poisson_nll(y, log_rate=log_rate)
            call = f"poisson_nll({y!r}, log_rate={log_rate!r})"
            assert_accurate(call, got, exact, 4, float(kappa))
    assert math.isfinite(poisson_nll(1.7e308, log_rate=709.9))  # e^709.9 = 1.9e308 > MAX


def check_gaussian_sum(impl: Callable[..., float]) -> float:
    """2000-term sums with σ, residuals and means over 10 decades; asserts <= 4ε·κ."""
    worst = 0.0
    for seed in range(2):
        rng = np.random.default_rng(seed)
        n = 2000
        sigma = 10.0 ** rng.uniform(-3, 3, n)
        y = rng.normal(size=n) * 10.0 ** rng.uniform(-5, 5, n)
        f = y + rng.normal(size=n) * sigma * rng.uniform(0, 3, n)
        with mpmath.workdps(DPS):
            parts = [exact_gaussian_term(a, b, c)[0] for a, b, c in zip(y, f, sigma, strict=True)]
            exact = mpmath.fsum(parts)
            kappa = float(mpmath.fsum(abs(t) for t in parts) / abs(exact))
        call = f"gaussian_nll(y, f, sigma) [seed={seed}, n={n}]"
        worst = max(worst, assert_accurate(call, impl(y, f, sigma), exact, 4, kappa))
    return worst


def test_sums_of_many_terms_are_within_a_few_ulps():
    # BOUND: <= 4ε·κ, κ = Σ|term|/|Σ term|: fsum is correctly rounded, so no log2(n) growth.
    check_gaussian_sum(gaussian_nll)


def exact_stirling_error(n: float) -> mpmath.mpf:
    """δ(n) = log n! − (n log n − n + ½ log 2πn); the parts ~n log n cancel to ~1/(12n)."""
    with mpmath.workdps(DPS + 2 * int(math.log10(n)) + 5):
        x = mpmath.mpf(n)
        return +(
            mpmath.loggamma(x + 1) - (x * mpmath.log(x) - x + mpmath.log(2 * mpmath.pi * x) / 2)
        )


def test_stirling_error_table_is_correctly_rounded_and_the_series_accurate():
    # BOUND: the table (n <= 15) correctly rounded; the series (n >= 16) <= 1ε.
    for n in range(1, 16):
        assert noise_models._STIRLING_ERROR_TABLE[n] == float(exact_stirling_error(n)), f"δ({n})"
    for n in (16.0, 17.0, 40.0, 1e3, 1e6, 1e15, 1e300):
        got = noise_models._stirling_error(np.array([n]))[0]
        assert_accurate(f"_stirling_error({n})", got, exact_stirling_error(n), 1)


def test_constants_are_correctly_rounded():
    with mpmath.workdps(60):
        root = mpmath.sqrt(2 * mpmath.pi)
        ln2_lo = mpmath.mpf(noise_models._LN2_LO)
        correctly_rounded = {
            "_SQRT_2PI_HI": root,
            "_SQRT_2PI_LO": root - mpmath.mpf(noise_models._SQRT_2PI_HI),
            "_LOG_SQRT_2PI": mpmath.log(root),
            "_LOG_2PI": mpmath.log(2 * mpmath.pi),
            "_LOG_2": mpmath.log(2),
            "_EXP_MINUS_64_LN2_LO": mpmath.exp(-64 * ln2_lo),
        }
        for name, exact in correctly_rounded.items():
            assert getattr(noise_models, name) == float(exact), name
        # fdlibm's split: ln2_hi + ln2_lo = ln 2 to 80+ bits, ln2_hi has 32 significant bits
        # (so L − 64·ln2_hi is exact for 512 <= L < 1024).
        ln2_hi = noise_models._LN2_HI
        assert abs(mpmath.mpf(ln2_hi) + ln2_lo - mpmath.log(2)) < mpmath.mpf(2) ** -80
        assert math.ldexp(ln2_hi, 32).is_integer()


# ---------------------------------------------------------------- meta-tests


def naive_softplus(y: float, z: float) -> float:
    with np.errstate(all="ignore"):
        return float(np.log1p(np.exp(z)) - y * z)


def naive_poisson(y: float, lam: float) -> float:
    with np.errstate(all="ignore"):
        return float(lam - special.xlogy(y, lam) + math.lgamma(y + 1.0))


def naive_gaussian(y, f, sigma) -> float:
    with np.errstate(all="ignore"):
        r = (np.asarray(y, dtype=float) - f) / sigma
        return float(np.sum(0.5 * r * r + np.log(sigma) + 0.5 * np.log(2 * np.pi)))


def float32_sum_gaussian(y, f, sigma) -> float:
    r = (y - f) / sigma
    return float(np.sum((0.5 * r * r + np.log(sigma * np.sqrt(2 * np.pi))).astype(np.float32)))


@pytest.mark.parametrize(
    ("check", "broken"),
    [
        pytest.param(check_bernoulli_logits, naive_softplus, id="log1p(exp(z)) - y*z rejected"),
        pytest.param(check_poisson_rate, naive_poisson, id="lam - y log lam + lgamma rejected"),
        pytest.param(check_gaussian, naive_gaussian, id="log(sigma) + log(2 pi)/2 rejected"),
        pytest.param(check_gaussian_sum, float32_sum_gaussian, id="float32 summation rejected"),
    ],
)
def test_accuracy_checks_reject_naive_implementations(check, broken):
    with pytest.raises(AssertionError):
        check(broken)


# ---------------------------------------------------------------- scipy agreement

finite = st.floats(-1e3, 1e3, allow_nan=False)
positive = st.floats(1e-3, 1e3)


def small_arrays(elements, shape=None):
    """Element-wise arrays of up to 3×3 entries (0-d included), or of a given shape."""
    if shape is None:
        shape = hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)
    return hnp.arrays(np.float64, shape, elements=elements)


def assert_sum_matches(call: str, got: float, terms: np.ndarray, rtol: float = 1e-13):
    """got ≈ Σ terms within rtol·Σ|terms| (scipy's own terms carry a few ulps each)."""
    __tracebackhide__ = True
    expected = math.fsum(terms.ravel().tolist())
    scale = math.fsum(np.abs(terms).ravel().tolist())
    assert abs(got - expected) <= rtol * scale, f"{call}={got!r}, but should be {expected!r}"


# Each property is built from the implementation it checks, so that a meta-test can
# show it rejects a broken one (test_properties_reject_broken_implementations).


def gaussian_matches_scipy(impl):
    @given(st.data())
    def check(data):
        y = data.draw(small_arrays(finite), label="y")
        f = data.draw(small_arrays(finite, y.shape), label="f")
        sigma = data.draw(st.one_of(positive, small_arrays(positive, y.shape)), label="sigma")
        terms = -stats.norm.logpdf(y, loc=f, scale=sigma)
        assert_sum_matches("gaussian_nll(y, f, sigma)", impl(y, f, sigma), terms)

    return check


def laplace_matches_scipy(impl):
    @given(st.data())
    def check(data):
        y = data.draw(small_arrays(finite), label="y")
        f = data.draw(small_arrays(finite, y.shape), label="f")
        b = data.draw(st.one_of(positive, small_arrays(positive, y.shape)), label="b")
        # scipy's laplace.logpdf is log(pdf): pdf underflows (and loses digits) past ~700.
        assume((np.abs(y - f) / b < 700).all())
        terms = -stats.laplace.logpdf(y, loc=f, scale=b)
        assert_sum_matches("laplace_nll(y, f, b)", impl(y, f, b), terms)

    return check


def bernoulli_matches_scipy(impl):
    @given(st.data())
    def check(data):
        hard = small_arrays(st.sampled_from([0.0, 1.0]))
        y = data.draw(st.one_of(hard, small_arrays(st.floats(0, 1))), label="y")
        p = data.draw(small_arrays(st.floats(0, 1), y.shape), label="p")
        if np.isin(y, (0.0, 1.0)).all():
            terms = -stats.bernoulli.logpmf(y, p)
        else:  # soft labels: −[y log p + (1 − y) log(1 − p)] with 0·log 0 = 0
            terms = -(special.xlogy(y, p) + special.xlog1py(1 - y, -p))
        got = impl(y, p)
        if np.isinf(terms).any():
            assert got == math.inf, f"bernoulli_nll(y, p)={got!r}, but should be inf"
        else:
            assert_sum_matches("bernoulli_nll(y, p)", got, terms)

    return check


def logits_match_scipy(impl):
    @given(st.data())
    def check(data):
        y = data.draw(small_arrays(st.floats(0, 1)), label="y")
        z = data.draw(small_arrays(st.floats(-1e6, 1e6), y.shape), label="logits")
        terms = -(y * special.log_expit(z) + (1 - y) * special.log_expit(-z))
        assert_sum_matches("bernoulli_nll(y, logits=z)", impl(y, z), terms)

    return check


def poisson_matches_scipy(impl):
    @given(st.data())
    def check(data):
        y = data.draw(small_arrays(st.integers(0, 10_000).map(float)), label="y")
        rate = data.draw(small_arrays(st.floats(1e-3, 1e4), y.shape), label="rate")
        terms = -stats.poisson.logpmf(y, rate)
        # scipy forms λ − y log λ + log y! directly: its error is a few ulps of the parts.
        parts = rate + y * np.abs(np.log(rate)) + special.gammaln(y + 1)
        got = impl(y, rate)
        expected = math.fsum(terms.ravel().tolist())
        assert abs(got - expected) <= 1e-13 * parts.sum(), (
            f"poisson_nll(y, rate)={got!r}, but should be {expected!r}"
        )

    return check


def gaussian_is_the_closed_form(impl):
    @given(st.data())
    def check(data):
        y = data.draw(small_arrays(finite), label="y")
        f = data.draw(small_arrays(finite, y.shape), label="f")
        sigma = data.draw(st.floats(1e-3, 1e3), label="sigma")
        n = y.size
        sse = math.fsum(((y - f) ** 2).ravel().tolist())
        quad, const = sse / (2 * sigma**2), n / 2 * math.log(2 * math.pi * sigma**2)
        got = impl(y, f, sigma)
        # SSE/(2σ²) + (n/2) log(2πσ²), each part to a few ulps.
        assert abs(got - (quad + const)) <= 1e-14 * (abs(quad) + abs(const)), (
            f"gaussian_nll(y, f, {sigma!r})={got!r}, but should be {quad + const!r}"
        )

    return check


def means_are_sums_over_n(mse_impl):
    @given(st.data())
    def check(data):
        y = data.draw(small_arrays(finite), label="y")
        f = data.draw(small_arrays(finite, y.shape), label="f")
        n = y.size
        d = (y - f).ravel()
        assert mse_impl(y, f) == math.fsum((d * d).tolist()) / n
        assert mae(y, f) == math.fsum(np.abs(d).tolist()) / n
        # The Gaussian and Laplace NLLs at σ = b = 1 are affine in mse and mae.
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        assert gaussian_nll(y, f, 1.0) == pytest.approx(n / 2 * mse_impl(y, f) + n * half_log_2pi)
        assert laplace_nll(y, f, 1.0) == pytest.approx(n * mae(y, f) + n * math.log(2))
        labels = (y > 0).astype(float)
        total = bernoulli_nll(labels, logits=f)
        assert binary_cross_entropy(labels, logits=f) == pytest.approx(total / n, rel=1e-15)

    return check


test_gaussian_nll_matches_scipy_norm_logpdf = gaussian_matches_scipy(gaussian_nll)
test_laplace_nll_matches_scipy_laplace_logpdf = laplace_matches_scipy(laplace_nll)
test_bernoulli_nll_matches_scipy_logpmf_and_xlogy = bernoulli_matches_scipy(bernoulli_nll)
test_logits_form_matches_scipy_log_expit = logits_match_scipy(
    lambda y, z: bernoulli_nll(y, logits=z)
)
test_poisson_nll_matches_scipy_poisson_logpmf = poisson_matches_scipy(poisson_nll)
test_gaussian_nll_with_one_sigma_is_the_closed_form = gaussian_is_the_closed_form(gaussian_nll)
test_means_are_the_sums_divided_by_n = means_are_sums_over_n(mse)


def test_log_rate_and_rate_forms_agree():
    rng = np.random.default_rng(0)
    y = rng.poisson(50.0, 200).astype(float)
    rate = rng.uniform(1.0, 100.0, 200)
    # The rounding of e^{log λ} costs ε·|λ − y| per term (see the module docstring).
    tolerance = 4 * EPS * math.fsum((np.abs(rate - y) + 1).tolist())
    assert abs(poisson_nll(y, log_rate=np.log(rate)) - poisson_nll(y, rate)) <= tolerance


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(lambda: bernoulli_nll(1, 1.0), 0.0, id="bernoulli_nll(y=1, p=1) -> 0"),
        pytest.param(lambda: bernoulli_nll(0, 0.0), 0.0, id="bernoulli_nll(y=0, p=0) -> 0"),
        pytest.param(lambda: bernoulli_nll(1, 0.0), math.inf, id="bernoulli_nll(y=1, p=0) -> inf"),
        pytest.param(lambda: bernoulli_nll(0, 1.0), math.inf, id="bernoulli_nll(y=0, p=1) -> inf"),
        pytest.param(
            lambda: bernoulli_nll(0.3, 0.0), math.inf, id="bernoulli_nll(y=0.3, p=0) -> inf"
        ),
        pytest.param(lambda: binary_cross_entropy([1, 0], [1.0, 0.0]), 0.0, id="bce(perfect) -> 0"),
        pytest.param(lambda: poisson_nll(0, 0.0), 0.0, id="poisson_nll(y=0, rate=0) -> 0"),
        pytest.param(lambda: poisson_nll(3, 0.0), math.inf, id="poisson_nll(y=3, rate=0) -> inf"),
        pytest.param(lambda: poisson_nll(0, 2.5), 2.5, id="poisson_nll(y=0, rate) -> rate"),
        pytest.param(lambda: mse([1, 2], [1, 2]), 0.0, id="mse(y, y) -> 0"),
        pytest.param(
            lambda: binary_cross_entropy([0, 0], logits=[1e308, 1e308]),
            1e308,
            id="bce mean of two 1e308 terms -> 1e308 (the sum overflows)",
        ),
        pytest.param(
            lambda: mse([1.5e154, 0.0], [0.0, 0.0]),
            float(Fraction(1.5e154) ** 2 / 2),
            id="mse whose squares overflow",
        ),
        pytest.param(lambda: mae([1e308, 0], [-1e308, 0]), 1e308, id="mae where y - f overflows"),
    ],
)
def test_conventions_and_special_values(value, expected):
    got = value()
    assert isinstance(got, np.float64)
    assert got == expected


# ---------------------------------------------------------------- stability


def extreme_logits_give_finite_accurate_terms(impl):
    @given(
        y=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)),
        z=st.floats(allow_nan=False, allow_infinity=False),
    )
    def check(y, z):
        # BOUND: <= 3ε per term, as on the fixed grid above; never inf or NaN.
        got = impl(y, z)
        call = f"bernoulli_nll({y!r}, logits={z!r})"
        assert math.isfinite(got), f"{call}={got!r}, but should be finite"
        assert_accurate(call, got, exact_bernoulli_logit_term(y, z), 3)

    return check


def bce_from_extreme_logits_is_finite(impl):
    @given(
        y=hnp.arrays(np.float64, st.integers(1, 8), elements=st.sampled_from([0.0, 1.0])),
        z=st.floats(allow_nan=False, allow_infinity=False),
    )
    def check(y, z):
        got = impl(y, np.full(y.shape, z))
        assert math.isfinite(got), f"binary_cross_entropy(y, logits=full({z!r}))={got!r}"
        assert got >= 0

    return check


# Counts and log rates drawn from the hard regions on purpose: e^L past overflow,
# y·L past overflow, L near log y (where λ − y log λ + log y! cancels).
HARD_LOG_RATES = [-1e308, -800.0, 0.0, 690.0, 709.5, 709.9, 710.3, 760.0, 1e308]


def poisson_from_any_log_rate_is_not_nan(impl):
    @given(
        y=st.integers(0, 2**53).map(float) | st.sampled_from([1e300, 1.7e308, MAX]),
        log_rate=st.sampled_from(HARD_LOG_RATES) | st.floats(allow_nan=False, allow_infinity=False),
    )
    def check(y, log_rate):
        got = impl(y, log_rate)
        assert got >= 0, f"poisson_nll({y!r}, log_rate={log_rate!r})={got!r}, but should be >= 0"

    return check


test_extreme_logits_give_finite_accurate_terms = extreme_logits_give_finite_accurate_terms(
    lambda y, z: bernoulli_nll(y, logits=z)
)
test_bce_from_extreme_logits_is_finite = bce_from_extreme_logits_is_finite(
    lambda y, z: binary_cross_entropy(y, logits=z)
)
test_poisson_from_any_log_rate_is_not_nan = poisson_from_any_log_rate_is_not_nan(
    lambda y, log_rate: poisson_nll(y, log_rate=log_rate)
)


def naive_bce(y, z) -> float:
    with np.errstate(all="ignore"):
        return float(np.mean(np.log1p(np.exp(z)) - y * z))


def naive_poisson_log(y, log_rate) -> float:
    with np.errstate(all="ignore"):
        return float(np.exp(log_rate) - y * log_rate + special.gammaln(y + 1.0))


def n_of(*arrays) -> int:
    return np.broadcast(*arrays).size


@pytest.mark.parametrize(
    ("prop", "broken"),
    [
        pytest.param(
            gaussian_matches_scipy,
            lambda y, f, s: gaussian_nll(y, f, s) - n_of(y, f) * 0.5 * math.log(2 * math.pi),
            id="gaussian without the ½ log 2π constant (torch full=False) rejected",
        ),
        pytest.param(
            laplace_matches_scipy,
            lambda y, f, b: laplace_nll(y, f, b) - n_of(y, f) * math.log(2),
            id="laplace with log b for log 2b rejected",
        ),
        pytest.param(
            bernoulli_matches_scipy,
            lambda y, p: bernoulli_nll(1 - y, p),
            id="bernoulli with labels swapped rejected",
        ),
        pytest.param(
            logits_match_scipy,
            lambda y, z: naive_bce(y, z) * np.size(z),
            id="log1p(exp(z)) - y z from logits rejected",
        ),
        pytest.param(
            poisson_matches_scipy,
            lambda y, r: poisson_nll(y, r) - special.gammaln(y + 1).sum(),
            id="poisson without log y! (torch full=False) rejected",
        ),
        pytest.param(
            gaussian_is_the_closed_form,
            lambda y, f, s: gaussian_nll(y, f, s) - n_of(y, f) / 2 * math.log(s),
            id="closed form with log(2πσ) for log(2πσ²) rejected",
        ),
        pytest.param(
            means_are_sums_over_n,
            lambda y, f: mse(y, f) * n_of(y, f),
            id="mse as a sum rejected",
        ),
        pytest.param(
            extreme_logits_give_finite_accurate_terms,
            naive_softplus,
            id="extreme logits: log1p(exp(z)) - y z rejected",
        ),
        pytest.param(
            bce_from_extreme_logits_is_finite, naive_bce, id="bce: mean of naive softplus rejected"
        ),
        pytest.param(
            poisson_from_any_log_rate_is_not_nan,
            naive_poisson_log,
            id="poisson: exp(L) - y L + lgamma(y + 1) rejected",
        ),
    ],
)
def test_properties_reject_broken_implementations(prop, broken):
    # Generation alone finds the bug; shrinking would only slow the suite down.
    quick = settings(database=None, phases=[Phase.generate], report_multiple_bugs=False)
    with pytest.raises(AssertionError):
        quick(prop(broken))()


# ---------------------------------------------------------------- validation

ZEROS3 = np.zeros(3)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(
            lambda: gaussian_nll([1 + 0j], [0.0], 1.0),
            TypeError,
            "y has dtype complex128; y must be real numbers",
            id="complex y",
        ),
        pytest.param(
            lambda: mse([1.0], ["a"]),
            TypeError,
            "f has dtype <U1 (text); f must be real numbers",
            id="text f",
        ),
        pytest.param(
            lambda: gaussian_nll([1.0], [0.0], None),
            TypeError,
            "sigma has type NoneType; sigma must be an array of real numbers",
            id="sigma None",
        ),
        pytest.param(
            lambda: bernoulli_nll([1.0, 0.0], np.array([True, False])),
            TypeError,
            "p has dtype bool (a boolean mask?); probabilities must be real numbers",
            id="bool p (labels may be bool, probabilities not)",
        ),
        pytest.param(
            lambda: gaussian_nll(np.array([True, False]), [0.5, 0.5], 1.0),
            TypeError,
            "y has dtype bool (a boolean mask?); y must be real numbers",
            id="bool gaussian y",
        ),
        pytest.param(
            lambda: bernoulli_nll([1.0], logits=np.array([True])),
            TypeError,
            "logits has dtype bool (a boolean mask?); logits must be real numbers",
            id="bool logits",
        ),
        pytest.param(
            lambda: mae([[1.0, 2.0], [3.0]], [0.0]),
            ValueError,
            "y is a ragged nested sequence: every row must have the same length",
            id="ragged y",
        ),
        pytest.param(
            lambda: gaussian_nll(np.zeros(4), [0, 0, 0, np.nan], 1.0),
            ValueError,
            "f[3] is NaN; f must be finite",
            id="f[3] NaN",
        ),
        pytest.param(
            lambda: mse(np.array([[0, 1, np.inf], [np.nan, 0, -np.inf]]), 0.0),
            ValueError,
            "y[1, 0] is NaN; y must be finite",
            id="NaN reported before inf",
        ),
        pytest.param(
            lambda: mae(np.array([[0, 1, np.inf], [0, 0, -np.inf]]), 0.0),
            ValueError,
            "y[0, 2] is inf (and 1 more); y must be finite",
            id="y[0, 2] inf and 1 more",
        ),
        pytest.param(
            lambda: gaussian_nll(ZEROS3, ZEROS3, [1.0, 1.0, 0.0]),
            ValueError,
            "sigma[2] is 0; sigma must be > 0",
            id="sigma[2] is 0",
        ),
        pytest.param(
            lambda: laplace_nll(ZEROS3, ZEROS3, -1),
            ValueError,
            "b is -1; b must be > 0",
            id="scalar b negative",
        ),
        pytest.param(
            lambda: gaussian_nll(ZEROS3, ZEROS3, np.inf),
            ValueError,
            "sigma is inf; sigma must be finite",
            id="sigma inf",
        ),
        pytest.param(
            lambda: gaussian_nll(ZEROS3, np.zeros(4), 1.0),
            ValueError,
            "the shapes of y (3,) and f (4,) do not broadcast",
            id="y, f shapes",
        ),
        pytest.param(
            lambda: gaussian_nll(ZEROS3, ZEROS3, np.ones((2, 1))),
            ValueError,
            "sigma has shape (2, 1), which does not broadcast to (3,), the shape of y and f",
            id="sigma enlarges the shape",
        ),
        pytest.param(
            lambda: mse([], []),
            ValueError,
            "y is empty (shape (0,)); the loss needs at least one observation",
            id="empty",
        ),
        pytest.param(
            lambda: bernoulli_nll([0, 2, 1], [0.5, 0.5, 0.5]),
            ValueError,
            "y[1] is 2; y must be in [0, 1] (0/1 labels, or soft labels)",
            id="label 2",
        ),
        pytest.param(
            lambda: binary_cross_entropy([0.0], np.array([1.5], dtype=np.float32)),
            ValueError,
            "p[0] is 1.5; p must be in [0, 1]",
            id="p above 1",
        ),
        pytest.param(
            lambda: bernoulli_nll([0.0], [0.5], logits=[0.0]),
            TypeError,
            "bernoulli_nll needs exactly one of p or logits, got both",
            id="p and logits",
        ),
        pytest.param(
            lambda: binary_cross_entropy([0.0]),
            TypeError,
            "binary_cross_entropy needs exactly one of p or logits, got neither",
            id="neither p nor logits",
        ),
        pytest.param(
            lambda: poisson_nll([1.0], [1.0], log_rate=[0.0]),
            TypeError,
            "poisson_nll needs exactly one of rate or log_rate, got both",
            id="rate and log_rate",
        ),
        pytest.param(
            lambda: poisson_nll([-1, 2], [1.0, 1.0]),
            ValueError,
            "y[0] is -1; y must be counts (integers >= 0)",
            id="negative count",
        ),
        pytest.param(
            lambda: poisson_nll([1.0, 2.0, 2.5], 1.0),
            ValueError,
            "y[2] is 2.5; y must be counts (integers >= 0)",
            id="fractional count",
        ),
        pytest.param(
            lambda: poisson_nll([1, 2], [1.0, -0.5]),
            ValueError,
            "rate[1] is -0.5; rate must be >= 0",
            id="negative rate",
        ),
        pytest.param(
            lambda: poisson_nll([1, 2], log_rate=[np.inf, 0.0]),
            ValueError,
            "log_rate[0] is inf; log_rate must be finite",
            id="log_rate inf",
        ),
    ],
)
def test_bad_input_names_argument_problem_and_position(call, error, message):
    with pytest.raises(error, match=exactly(message)):
        call()


BOOL_LABELS = np.array([[True, False, True], [False, False, True]])


@pytest.mark.parametrize(
    "call",
    [
        lambda y: bernoulli_nll(y, [0.25, 0.5, 1 - 1e-12]),
        lambda y: bernoulli_nll(y, logits=[[-3.0, 0.0, 40.0], [1e-300, -700.0, 2.5]]),
        lambda y: binary_cross_entropy(y, [[0.1, 0.9, 0.5], [0.0, 0.3, 1.0]]),
        lambda y: binary_cross_entropy(y, logits=-1.5),
    ],
    ids=["bernoulli_nll(p)", "bernoulli_nll(logits)", "bce(p)", "bce(logits)"],
)
def test_bool_labels_equal_the_0_1_float_labels_bit_for_bit(call):
    # bernoulli_mle accepts bool observations; the NLL must read them the same way.
    labels = BOOL_LABELS.copy()
    got = call(labels)
    want = call(BOOL_LABELS.astype(np.float64))
    assert isinstance(got, np.float64)
    assert got.tobytes() == want.tobytes()
    np.testing.assert_array_equal(labels, BOOL_LABELS)  # not modified
    assert labels.dtype == np.bool_
    assert call(labels.tolist()) == want  # nested Python bools too


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= MAX, reason="longdouble is float64 on this platform"
)
def test_longdouble_beyond_float64_is_reported_as_such():
    message = "y[1] is 1e+400 (beyond the float64 range); y must be finite"
    with pytest.raises(ValueError, match=exactly(message)):
        mse(np.array([1, 10], dtype=np.longdouble) ** 400, 0.0)


JUNK = [None, "abc", b"x", object(), {"a": 1}, [1, None], [[1], [1, 2]], 1 + 2j, [2**70]]


@pytest.mark.parametrize(
    "junk", JUNK, ids=lambda j: "object()" if type(j) is object else repr(j)
)  # ids stable across processes (pytest-xdist collects in each worker)
@pytest.mark.parametrize(
    "call",
    [
        lambda j: gaussian_nll(j, 0.0, 1.0),
        lambda j: gaussian_nll(0.0, 0.0, j),
        lambda j: laplace_nll(0.0, j, 1.0),
        lambda j: bernoulli_nll(0.0, j),
        lambda j: binary_cross_entropy(j, logits=0.0),
        lambda j: poisson_nll(1.0, log_rate=j),
        lambda j: poisson_nll(j, 1.0),
    ],
    ids=[
        "gaussian y",
        "gaussian sigma",
        "laplace f",
        "bernoulli p",
        "bce y",
        "log_rate",
        "poisson y",
    ],
)
def test_junk_input_raises_our_errors_never_numpys(call, junk):
    with pytest.raises((TypeError, ValueError)) as info:
        call(junk)
    # None for p or log_rate means "not given": the error is then about the pair.
    first_word = str(info.value).split()[0]
    assert first_word in {"y", "f", "sigma", "b", "p", "log_rate", "bernoulli_nll", "poisson_nll"}


# ---------------------------------------------------------------- inputs, dtypes

CALLS = {
    "gaussian_nll": lambda y, f, s: gaussian_nll(y, f, s),
    "laplace_nll": lambda y, f, s: laplace_nll(y, f, s),
    "mse": lambda y, f, s: mse(y, f),
    "mae": lambda y, f, s: mae(y, f),
    "bernoulli_nll(p)": lambda y, f, s: bernoulli_nll(y, s / 2),
    "bernoulli_nll(logits)": lambda y, f, s: bernoulli_nll(y, logits=f),
    "binary_cross_entropy(p)": lambda y, f, s: binary_cross_entropy(y, s / 2),
    "poisson_nll(rate)": lambda y, f, s: poisson_nll(y * 7, s),
    "poisson_nll(log_rate)": lambda y, f, s: poisson_nll(y * 7, log_rate=f),
}


def labelled_inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (3, 4)).astype(dtype)
    f = rng.normal(size=(3, 4)).astype(dtype)
    s = rng.uniform(0.1, 1.9, (1, 4)).astype(dtype)
    return y, f, s


@pytest.mark.parametrize("name", CALLS)
def test_inputs_are_not_modified(name):
    y, f, s = labelled_inputs(np.float64)
    before = [a.tobytes() for a in (y, f, s)]
    CALLS[name](y, f, s)
    assert [a.tobytes() for a in (y, f, s)] == before
    for a in (y, f, s):
        a.setflags(write=False)  # a write would raise
    CALLS[name](y, f, s)
    assert [a.tobytes() for a in (y, f, s)] == before


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=str)
def test_narrow_float_inputs_are_accepted_and_computed_in_float64(name, dtype):
    narrow = [a.astype(dtype) for a in labelled_inputs(np.float64)]
    got = CALLS[name](*narrow)
    assert isinstance(got, np.float64)
    assert got == CALLS[name](*(a.astype(np.float64) for a in narrow))


@pytest.mark.parametrize("name", CALLS)
def test_integer_inputs_are_accepted(name):
    y, f, s = labelled_inputs(np.float64)
    whole = [y.astype(np.int64), np.round(3 * f).astype(np.int64), np.ones(s.shape, np.int64)]
    assert CALLS[name](*whole) == CALLS[name](*(a.astype(np.float64) for a in whole))
