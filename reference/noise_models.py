r"""Losses from noise models: each loss is a negative log-likelihood.

A regression or classification loss is −log p(y | f) for a model of how the
observations y scatter around the prediction f, summed over independent
observations (each "term" below is one observation's −log p):

``gaussian_nll(y, f, sigma)``: y_i ~ N(f_i, σ_i²)
    term = (y − f)²/(2σ²) + log σ + ½ log 2π. With one σ the sum is
    SSE/(2σ²) + (n/2) log(2πσ²), so ``mse(y, f)`` = SSE/n is the Gaussian NLL
    at fixed σ up to a positive scale and a constant: they have the same
    minimiser.

``laplace_nll(y, f, b)``: y_i ~ Laplace(f_i, b_i), density e^{−|y−f|/b}/(2b)
    term = |y − f|/b + log 2b. ``mae(y, f)`` = Σ|y − f|/n plays the part of
    ``mse``.

``bernoulli_nll(y, p)`` or ``bernoulli_nll(y, logits=z)``: y_i ~ Bernoulli(p_i)
    term = −[y log p + (1 − y) log(1 − p)], and with p = 1/(1 + e^{−z})
    term = softplus(z) − y·z = log(1 + e^z) − y·z. Soft labels y in [0, 1]
    give the cross-entropy of Bernoulli(y) against Bernoulli(p).
    ``binary_cross_entropy`` is the mean of the same terms (what torch and
    keras call BCE). Conventions: 0·log 0 = 0, so y = 1, p = 1 gives 0 and
    y = 0, p = 0 gives 0; y > 0 with p = 0 (or y < 1 with p = 1) is an
    impossible observation and gives +inf.

``poisson_nll(y, rate)`` or ``poisson_nll(y, log_rate=η)``: y_i ~ Poisson(λ_i)
    term = λ − y log λ + log y!, the full likelihood, log y! included (torch's
    ``PoissonNLLLoss`` leaves it out by default). λ = 0 gives 0 for y = 0 and
    +inf for y > 0.

Every function returns a numpy float64. Inputs are validated as in
:mod:`klspec.reference.validation`: the error names the argument, the problem
and the first bad position in the caller's coordinates, e.g.
``sigma[2] is 0; sigma must be > 0``. Nothing the caller passed is modified.
float16/float32/integer input is accepted and computed in float64.

Accuracy
--------
Each term is computed in float64 to within a few ulps of its exact value for
the float64 inputs. Tested against mpmath at 50+ digits on hard inputs
(tests/test_noise_models.py states each bound, in units of ε = 2**-52):
Bernoulli from logits <= 3ε for |z| from 5e-324 to 1.8e308; Gaussian and
Laplace <= 4ε·κ for σ, b from 5e-324 to 1.7e308, where κ = Σ|parts|/|term|
is 1 unless the quadratic (or absolute) part and the log part cancel;
Poisson from rates <= 4ε for counts up to 1.8e308. From ``log_rate`` the
rounding of e^{log λ} costs ε·|λ − y| more (the term's own conditioning in
log λ), so the bound is 4ε·(1 + |λ − y|/term).

The terms are summed with ``math.fsum``, which returns the correctly rounded
sum of the float64 terms: the summation adds no error of its own however many
terms there are, so the sum is within a few ulps of the truth when the terms
do not cancel (Poisson and Bernoulli terms are >= 0; a Gaussian or Laplace
term is negative when σ or b is small, and then the bound is a few ulps of
Σ|term|). A pairwise sum (numpy's) would add up to log2(n)·ε·Σ|term|, which
grows with n; fsum costs a Python-level pass (~0.1 s per 10^6 terms), which a
reference can afford. The means divide the fsum by n (within 1 ulp); where a
squared residual or the sum overflows although the mean does not, they fall
back to exact rational arithmetic.

How
---
* Bernoulli from logits: term = max(z, 0) − y·z + log1p(e^{−|z|}), written
  as (1 − y)·z (z >= 0) or y·|z| (z < 0) plus log1p(e^{−|z|}): two
  non-negative parts, so nothing overflows or cancels for |z| up to 1e308.
* Poisson: term = bd0(y, λ) + ½ log(2πy) + δ(y) (Loader's saddle-point form),
  with bd0 = y log(y/λ) + λ − y >= 0 and δ(y) = log y! − (y log y − y +
  ½ log 2πy) the Stirling error. All three parts are >= 0, so a large count
  (y log λ ≈ log y! ≈ 7e302 for y = 1e300) does not cancel to the answer ≈ 346.
* Gaussian: log(σ√(2π)) is formed in double-double near σ = 1/√(2π), where
  it passes through 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference.exact_arithmetic import two_prod
from klspec.reference.validation import _as_real_array, _raise_at_first, _shown, own_error_state

__all__ = [
    "bernoulli_nll",
    "binary_cross_entropy",
    "gaussian_nll",
    "laplace_nll",
    "mae",
    "mse",
    "poisson_nll",
]

# √(2π) = _SQRT_2PI_HI + _SQRT_2PI_LO to about 106 bits, and ½ log 2π, 2π: correctly
# rounded (from mpmath at 60 digits; tests/test_noise_models.py checks them).
_SQRT_2PI_HI = 2.5066282746310007
_SQRT_2PI_LO = -1.8328579980459167e-16
_LOG_SQRT_2PI = 0.9189385332046728
_LOG_2PI = 1.8378770664093456
_LOG_2 = math.log(2.0)  # correctly rounded in every libm we know of; checked too

# ln 2 = _LN2_HI + _LN2_LO (fdlibm's split: _LN2_HI has 32 significant bits, so
# L − 64·_LN2_HI is exact for 512 <= L < 1024), and e^{−64·_LN2_LO}.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_MINUS_64_LN2_LO = 0.9999999877874245
# exp(L) overflows float64 for L > 709.78; above this, Poisson works at scale 2**-64.
_LARGE_LOG_RATE = 709.0

# δ(n) = log n! − (n log n − n + ½ log 2πn) for n = 1..15 (index 0 unused), from
# mpmath at 60 digits: computing it from lgamma would cancel 3-4 digits away.
_STIRLING_ERROR_TABLE = np.array(
    [
        0.0,
        0.08106146679532726,
        0.0413406959554093,
        0.02767792568499834,
        0.020790672103765093,
        0.016644691189821193,
        0.013876128823070748,
        0.01189670994589177,
        0.010411265261972096,
        0.009255462182712733,
        0.00833056343336287,
        0.007573675487951841,
        0.00694284010720953,
        0.006408994188004207,
        0.0059513701127588475,
        0.005554733551962801,
    ]
)
# δ(x) = Σ_k B_2k / (2k(2k − 1) x^{2k−1}) for x > 15: 1/12, −1/360, 1/1260, ...
# Eight terms leave a tail below 1e-19 relative at x = 16.
_STIRLING_SERIES = (
    1 / 12,
    -1 / 360,
    1 / 1260,
    -1 / 1680,
    1 / 1188,
    -691 / 360360,
    1 / 156,
    -3617 / 122400,
)

# bd0 = y log(y/λ) + λ − y comes from the atanh series in v = (y − λ)/(y + λ)
# where |v| <= 1/2 (it is a difference of near-equal numbers there).
_BD0_SERIES_LIMIT = 0.5


# ------------------------------------------------------------------ Gaussian, MSE


@own_error_state
def gaussian_nll(y: ArrayLike, f: ArrayLike, sigma: ArrayLike) -> np.float64:
    """−Σ_i log N(y_i; f_i, σ_i²): the Gaussian negative log-likelihood, in nats.

    ``y`` (observations) and ``f`` (predictions, the means) broadcast together;
    ``sigma`` (standard deviations, > 0) is a scalar or broadcasts to their
    shape without enlarging it. The sum runs over every entry of the broadcast
    shape. For a scalar σ this is SSE/(2σ²) + (n/2) log(2πσ²).
    """
    y_, f_, s = _with_scale(y, f, "sigma", sigma)
    with np.errstate(over="ignore"):
        z = _standardised(y_, f_, s)
        # (z/2)·z, not z²/2: z² overflows for |z| > 1.3e154 where z²/2 does not, and
        # z/2 is exact, so the quadratic part keeps one rounding.
        terms = 0.5 * z * z + _log_sqrt_2pi_times(s)
    return _sum(terms)


@own_error_state
def mse(y: ArrayLike, f: ArrayLike) -> np.float64:
    """Mean of (y_i − f_i)² over every entry of the broadcast shape of ``y`` and ``f``."""
    (_, y64), (_, f64) = _checked("y", y), _checked("f", f)
    y_, f_ = _broadcast({"y": y64, "f": f64})
    with np.errstate(over="ignore"):
        d = y_ - f_
        terms = d * d
    return _mean(terms, lambda: ((Fraction(a) - Fraction(b)) ** 2 for a, b in _pairs(y_, f_)))


def _log_sqrt_2pi_times(s: np.ndarray) -> np.ndarray:
    """log(σ√(2π)) = log σ + ½ log 2π, accurate where it is near 0 (σ ≈ 0.399)."""
    near = (s >= 0.25) & (s <= 0.75)
    sn = np.where(near, s, 0.5)
    # σ·√(2π) ∈ [0.63, 1.88] there: formed exactly in double-double, so the rounding
    # of √(2π) and of the product does not become a large relative error of the log.
    p, e = two_prod(sn, _SQRT_2PI_HI)
    t = (p - 1.0) + (e + sn * _SQRT_2PI_LO)
    return np.where(near, np.log1p(t), np.log(s) + _LOG_SQRT_2PI)


# ------------------------------------------------------------------ Laplace, MAE


@own_error_state
def laplace_nll(y: ArrayLike, f: ArrayLike, b: ArrayLike) -> np.float64:
    """−Σ_i log Laplace(y_i; f_i, b_i) = Σ_i |y_i − f_i|/b_i + log(2 b_i), in nats.

    ``y`` and ``f`` broadcast together; ``b`` (scales, > 0) is a scalar or
    broadcasts to their shape without enlarging it.
    """
    y_, f_, b_ = _with_scale(y, f, "b", b)
    with np.errstate(over="ignore"):
        # 2b is exact (one rounding in the log, accurate near b = 1/2) unless it
        # overflows; then log 2 + log b, which cannot cancel for b > 8.9e307.
        twice = 2.0 * b_
        log_2b = np.where(np.isfinite(twice), np.log(twice), _LOG_2 + np.log(b_))
        terms = np.abs(_standardised(y_, f_, b_)) + log_2b
    return _sum(terms)


@own_error_state
def mae(y: ArrayLike, f: ArrayLike) -> np.float64:
    """Mean of |y_i − f_i| over every entry of the broadcast shape of ``y`` and ``f``."""
    (_, y64), (_, f64) = _checked("y", y), _checked("f", f)
    y_, f_ = _broadcast({"y": y64, "f": f64})
    with np.errstate(over="ignore"):
        terms = np.abs(y_ - f_)
    return _mean(terms, lambda: (abs(Fraction(a) - Fraction(b)) for a, b in _pairs(y_, f_)))


def _standardised(y: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(y − f)/s, also where y − f overflows (|y − f| > 1.8e308) but the quotient does not."""
    d = y - f
    # There 2·((y/2 − f/2)/s): the halves are exact (|y| or |f| > 8.9e307), and the
    # final ×2 overflows only where the true quotient does.
    return np.where(np.isfinite(d), d / s, 2.0 * ((0.5 * y - 0.5 * f) / s))


# ------------------------------------------------------------------ Bernoulli, BCE


@own_error_state
def bernoulli_nll(
    y: ArrayLike, p: ArrayLike | None = None, *, logits: ArrayLike | None = None
) -> np.float64:
    """−Σ_i [y_i log p_i + (1 − y_i) log(1 − p_i)]: the Bernoulli negative log-likelihood.

    Pass exactly one of ``p`` (probabilities in [0, 1]) or ``logits``
    (p = 1/(1 + e^{−logits}), any finite real). ``y`` holds labels in [0, 1]:
    0/1 (ints, floats or booleans, True read as 1), or soft labels. ``y`` and
    ``p``/``logits`` broadcast together. With 0·log 0 = 0, y = 1 with p = 1
    (or y = 0 with p = 0) contributes 0, and
    y > 0 with p = 0 (or y < 1 with p = 1) gives +inf. From logits every term
    is finite and accurate for |logits| up to 1.8e308; prefer logits when p is
    near 0 or 1, where a float64 probability has already lost the digits.
    """
    return _sum(_bernoulli_terms("bernoulli_nll", y, p, logits))


@own_error_state
def binary_cross_entropy(
    y: ArrayLike, p: ArrayLike | None = None, *, logits: ArrayLike | None = None
) -> np.float64:
    """Mean of −[y_i log p_i + (1 − y_i) log(1 − p_i)]: the mean of the Bernoulli NLL terms.

    The same arguments and conventions as :func:`bernoulli_nll`; this is what
    torch (``binary_cross_entropy``, ``..._with_logits``) and keras
    (``BinaryCrossentropy``) compute with mean reduction.
    """
    terms = _bernoulli_terms("binary_cross_entropy", y, p, logits)
    if np.isposinf(terms).any():
        return np.float64(np.inf)
    return _mean(terms, lambda: map(Fraction, terms.ravel().tolist()))


def _bernoulli_terms(
    func: str, y: ArrayLike, p: ArrayLike | None, logits: ArrayLike | None
) -> np.ndarray:
    """Validated −[y log p + (1 − y) log(1 − p)] per entry, from p or from logits."""
    name, value = _exactly_one(func, "p", p, "logits", logits)
    y_arr, y64 = _checked("y", y, allow_bool=True)  # True/False are the labels 1/0
    _raise_at(
        "y",
        y_arr,
        (y64 < 0) | (y64 > 1),
        _shown,
        "y must be in [0, 1] (0/1 labels, or soft labels)",
    )
    v_arr, v64 = _checked(name, value, what="probabilities" if name == "p" else "logits")
    if name == "p":
        _raise_at("p", v_arr, (v64 < 0) | (v64 > 1), _shown, "p must be in [0, 1]")
    y_, v = _broadcast({"y": y64, name: v64})
    one_minus_y = 1.0 - y_  # exact for y >= 1/2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if name == "p":
            # 0·log 0 = 0: a term is dropped where its weight is 0, never multiplied
            # by 0 (0·(−inf) is NaN); log1p(−p) keeps log(1 − p) accurate for tiny p.
            hit = np.where(y_ > 0, -y_ * np.log(v), 0.0)
            miss = np.where(y_ < 1, -one_minus_y * np.log1p(-v), 0.0)
            return hit + miss
        # softplus(z) − y·z = max(z, 0) − y·z + log1p(e^{−|z|}), with max(z, 0) − y·z
        # as (1 − y)·z or y·|z| (>= 0, no overflow or cancellation for |z| <= 1.8e308).
        linear = np.where(v >= 0, one_minus_y * v, y_ * -v)
        return linear + np.log1p(np.exp(-np.abs(v)))


# ------------------------------------------------------------------ Poisson


@own_error_state
def poisson_nll(
    y: ArrayLike, rate: ArrayLike | None = None, *, log_rate: ArrayLike | None = None
) -> np.float64:
    """−Σ_i log Poisson(y_i; λ_i) = Σ_i λ_i − y_i log λ_i + log y_i!, in nats.

    Pass exactly one of ``rate`` (λ >= 0, finite) or ``log_rate`` (log λ,
    finite). ``y`` holds counts: integers >= 0 (integer-valued floats are
    accepted). ``y`` and the rate broadcast together. λ = 0 contributes 0 where
    y = 0 and gives +inf where y > 0. The full likelihood, log y! included.
    Accurate for large counts (y and λ up to 1e300) and, from ``log_rate``,
    for log rates beyond 709.78 where e^{log_rate} itself overflows.
    """
    name, value = _exactly_one("poisson_nll", "rate", rate, "log_rate", log_rate)
    y_arr, y64 = _checked("y", y)
    _raise_at(
        "y",
        y_arr,
        (y64 < 0) | (y64 != np.floor(y64)),
        _shown,
        "y must be counts (integers >= 0)",
    )
    r_arr, r64 = _checked(name, value, what=name)
    if name == "rate":
        _raise_at("rate", r_arr, r64 < 0, _shown, "rate must be >= 0")
    x, r = _broadcast({"y": y64, name: r64})
    return _sum(_poisson_terms(x, r, from_log=name == "log_rate"))


def _poisson_terms(x: np.ndarray, r: np.ndarray, *, from_log: bool) -> np.ndarray:
    """λ − x log λ + log x! per entry, from the rate (r = λ) or its log (r = log λ)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if from_log:
            # e^L overflows for L > 709.78 although the term may be finite: there work
            # with λ·2**-64 = e^{L − 64 ln 2} (L − 64·ln2_hi exact) and x·2**-64.
            large = r > _LARGE_LOG_RATE
            a = np.where(large, r - 64.0 * _LN2_HI, r)
            lam = np.exp(a) * np.where(large, _EXP_MINUS_64_LN2_LO, 1.0)
            log_lam = a - np.where(large, 64.0 * _LN2_LO, 0.0)
            scale = np.where(large, 64, 0)
            impossible = np.zeros(x.shape, dtype=bool)
        else:
            lam, log_lam, scale = r, np.log(r), np.zeros(x.shape, dtype=int)
            impossible = (r == 0) & (x > 0)
        xs = np.ldexp(x, -scale)
        dev = np.ldexp(_bd0(xs, lam, log_lam), scale)
        counted = dev + (0.5 * (_LOG_2PI + np.log(x)) + _stirling_error(x))
        terms = np.where(x == 0, np.ldexp(lam, scale), counted)
    terms = np.where(impossible | np.isinf(lam), np.inf, terms)
    return terms


def _bd0(x: np.ndarray, lam: np.ndarray, log_lam: np.ndarray) -> np.ndarray:
    """bd0 = x log(x/λ) + λ − x >= 0 for x >= 1, λ >= 0 (Loader 2000); log_lam = log λ.

    With v = (x − λ)/(x + λ), log(x/λ) = 2 atanh v and
    bd0 = (x − λ)·v + 2x·Σ_{j>=1} v^{2j+1}/(2j + 1), a sum without cancellation,
    used for |v| <= 1/2; beyond, bd0 = x·(log(x/λ) − 1) + λ loses at most 2 bits.
    """
    v = (0.5 * x - 0.5 * lam) / (0.5 * x + 0.5 * lam)  # halves: x + λ may overflow
    near = np.abs(v) <= _BD0_SERIES_LIMIT
    vn = np.where(near, v, 0.0)
    w = vn * vn
    # Σ_{j>=1} w^j/(2j+1) by Horner, with enough terms for w_max^j < 2**-56.
    w_max = float(w.max(initial=0.0))
    n_terms = 1
    while n_terms < 60 and w_max**n_terms > 2.0**-56:
        n_terms += 1
    series = np.zeros_like(w)
    for j in range(n_terms, 0, -1):
        series = (series + 1.0 / (2 * j + 1)) * w
    near_value = (x - lam) * vn + x * (2.0 * vn * series)

    # log(x/λ) from the quotient (error 1/2 ulp) where it is a normal number; else
    # log x − log λ, whose absolute error is then tiny next to |log(x/λ)| > 700.
    q = x / lam
    normal = (q >= np.finfo(np.float64).tiny) & np.isfinite(q) & (lam >= np.finfo(np.float64).tiny)
    log_ratio = np.where(normal, np.log(np.where(normal, q, 1.0)), np.log(x) - log_lam)
    far_value = x * (log_ratio - 1.0) + lam
    return np.where(near, near_value, far_value)


def _stirling_error(x: np.ndarray) -> np.ndarray:
    """δ(x) = log x! − (x log x − x + ½ log 2πx) for integers x >= 1: table, then series."""
    small = x <= 15
    idx = np.where(small, x, 0).astype(np.intp)
    inv = 1.0 / np.where(small, 16.0, x)
    inv2 = inv * inv
    series = np.zeros_like(inv)
    for c in reversed(_STIRLING_SERIES):
        series = series * inv2 + c
    return np.where(small, _STIRLING_ERROR_TABLE[idx], series * inv)


# ------------------------------------------------------------------ summation


def _sum(terms: np.ndarray) -> np.float64:
    """Σ terms, correctly rounded (math.fsum); +inf if a term is +inf or the sum overflows."""
    if np.isposinf(terms).any():
        return np.float64(np.inf)
    try:
        return np.float64(math.fsum(terms.ravel().tolist()))
    except OverflowError:
        # fsum's exact partial sums passed 1.8e308. Every term here is > −745 (log of
        # the smallest σ or b), so the whole sum is beyond float64 too.
        return np.float64(np.inf)


def _mean(terms: np.ndarray, exact_terms: Callable[[], Iterable[Fraction]]) -> np.float64:
    """Σ terms / n, within 1 ulp; exact rational arithmetic where float64 overflows.

    A squared residual or a sum of large terms can overflow although the mean
    does not; then the mean is recomputed from ``exact_terms()`` (slow, only then).
    """
    n = terms.size
    if np.isfinite(terms).all():
        try:
            return np.float64(math.fsum(terms.ravel().tolist()) / n)
        except OverflowError:
            pass
    try:
        return np.float64(float(sum(exact_terms(), Fraction(0)) / n))
    except OverflowError:
        return np.float64(np.inf)


def _pairs(a: np.ndarray, b: np.ndarray) -> Iterable[tuple[float, float]]:
    return zip(a.ravel().tolist(), b.ravel().tolist(), strict=True)


# ------------------------------------------------------------------ validation


def _checked(
    name: str, value: ArrayLike, *, what: str | None = None, allow_bool: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Real dtype, not empty, no NaN or ±inf; returns (the array as given, its float64 values).

    The float64 array may be the caller's own (float64 input): it is never written to.
    ``allow_bool=True`` (Bernoulli labels only) reads bool entries as 0 and 1.
    """
    arr = _as_real_array(name, value, what=what or name, allow_bool=allow_bool)
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); the loss needs at least one observation"
        )
    with np.errstate(over="ignore"):  # longdouble beyond 1.8e308: reported as such below
        x = np.asarray(arr, dtype=np.float64)
    if arr.dtype.kind == "f":
        rule = f"{name} must be finite"
        _raise_at(name, arr, np.isnan(arr), lambda v: "NaN", rule)
        _raise_at(name, arr, np.isinf(x), _shown, rule)
    return arr, x


def _raise_at(
    name: str, arr: np.ndarray, mask: np.ndarray, problem: Callable[[object], str], rule: str
) -> None:
    """``_raise_at_first``, which also reads well for 0-d input (``sigma is 0; ...``)."""
    if arr.ndim == 0:
        if mask:
            raise ValueError(f"{name} is {problem(arr[()])}; {rule}")
        return
    _raise_at_first(name, arr, mask, problem, rule)


def _exactly_one(
    func: str, name_a: str, a: ArrayLike | None, name_b: str, b: ArrayLike | None
) -> tuple[str, ArrayLike]:
    if (a is None) == (b is None):
        got = "both" if a is not None else "neither"
        raise TypeError(f"{func} needs exactly one of {name_a} or {name_b}, got {got}")
    return (name_a, a) if a is not None else (name_b, b)


def _with_scale(
    y: ArrayLike, f: ArrayLike, name: str, scale: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y, f and σ (or b) validated in argument order, then broadcast to y and f's shape.

    The scale must be finite and > 0 and may not enlarge the shape (that would
    count an observation twice).
    """
    (_, y64), (_, f64) = _checked("y", y), _checked("f", f)
    arr, s = _checked(name, scale)
    _raise_at(name, arr, ~(s > 0), _shown, f"{name} must be > 0")
    y_, f_ = _broadcast({"y": y64, "f": f64})
    try:
        fits = np.broadcast_shapes(s.shape, y_.shape) == y_.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name} has shape {s.shape}, which does not broadcast to {y_.shape}, "
            "the shape of y and f"
        )
    return y_, f_, np.broadcast_to(s, y_.shape)


def _broadcast(named: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    (a, x), (b, z) = named.items()
    try:
        return tuple(np.broadcast_arrays(x, z))
    except ValueError:
        raise ValueError(
            f"the shapes of {a} {x.shape} and {b} {z.shape} do not broadcast"
        ) from None
