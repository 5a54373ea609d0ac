r"""Forward and reverse KL fits of one Gaussian to a 1-D Gaussian mixture.

P = Σ_k w_k N(μ_k, σ_k²) is the mixture, Q = N(m, s²) the single Gaussian.

``mixture_gaussian_kl(weights, means, sds, mean, sd, *, direction)``
    KL(P‖Q) for ``direction="forward"``, KL(Q‖P) for ``"reverse"``, in nats.

``fit_gaussian_to_mixture(weights, means, sds, *, direction, start=None)``
    The Q minimising that divergence, as ``GaussianFit(mean, sd, kl)``.

    * forward (mass-covering): closed form, moment matching,
      m = Σ w_k μ_k, s² = Σ w_k σ_k² + Σ w_k (μ_k − m)².
    * reverse (mode-seeking): Newton's method. From ``start`` it returns the
      stationary point it reaches; by default it runs from every component and
      from the forward fit and returns the best of those fits.

The bimodal example ½N(−3, 1) + ½N(3, 1) (measured; mpmath agrees to 1 ulp)
---------------------------------------------------------------------------
* forward: mean 0, sd √10 (variance exactly 10), kl 0.461994613467945.
* reverse from start=(2.5, 1.0): mean 2.98430598783574, sd 1.02336855966120,
  kl 0.688768995854964. It locks onto the mode at 3; the other mode pulls the
  mean in by 0.0157 and lowers kl by 0.00438 below log 2 (Q's left tail sits in
  the other mode's mass). From (−2.5, 1.0): the mirror image. For modes at ±10
  the pull is below float64 resolution: mean 10, sd 1, kl log 2 (measured to
  the last bit).
* reverse from a start with mean exactly 0: the gradient in m vanishes by
  symmetry and Newton stays on m = 0, at mean 0, sd 2.74376930909121,
  kl 0.840621431278903. That point is a *local minimum*, not a saddle: the
  Hessian of KL(Q‖P) in (m, log s) is diag(0.132832642445, 8.45052164291)
  (mpmath agrees to 12 digits; the off-diagonal is 0 by symmetry), positive in
  m too. One broad Q straddling both modes is thus a third local minimum, worse
  than either mode (0.8406 > 0.6888). It stays one for every separation tried
  (±1 to ±30); the curvature in m shrinks like ~1.5/d² for modes at ±d. For
  modes at ±2.5 it is the *global* minimum (kl 0.481 against 0.666 at a mode),
  which is why the default runs from several starts.

How (the integrals)
-------------------
Both divergences are expectations under a Gaussian of the log-density ratio:

    KL(Q‖P) = E_{z~N(0,1)}[log q(x) − log p(x)],         x = m + s z,
    KL(P‖Q) = Σ_k w_k E_{z~N(0,1)}[log p(x) − log q(x)], x = μ_k + σ_k z.

log p − log q is formed pointwise as the log-sum-exp of
c_k = log w_k + log(s/σ_k) + ½(v − u_k)(v + u_k), with u_k = (x − μ_k)/σ_k and
v = (x − m)/s, both taken from offsets (the centre minus μ_k or m) so that no
digit is lost forming x. This difference never cancels two large log-densities,
and it is exactly 0 when P is a single component equal to Q.

Gauss–Hermite quadrature alone is not accurate enough here: log p has kinks where
the dominant component changes (width σ²/|μ_j − μ_k|) and spikes where a narrow
component pokes out (width σ_k), both far narrower than Q on hard mixtures. With
200 nodes, KL(Q‖P) is off by 1.7e-3 for ½N(±3, 1) at its forward fit, by 1.5
for ½N(±30, 1) at Q = N(0, 30²), and by 0.039 at any node count for a σ = 1e-3
component under Q = N(0, 1). So the expectation is integrated in z over
[−40, 40] (exp(−800) is 0 in float64: nothing is lost outside) by adaptive
Gauss–Legendre: each panel is integrated with 10 and 20 nodes and is accepted
when the two agree to 1e-13 of the panel's absolute mass, or to 16 eps times the
rounding noise of the integrand there, or to 1e-18 of the whole integral's size;
else it is bisected, and the 20-node value of an accepted panel is kept. The
initial panels are broken at a fixed grid and, around every component narrower
than the Gaussian being integrated over, at its mean ± σ_k·2^j: a spike inside a
wide panel could otherwise go unseen by both rules and be accepted. Where many
narrow components crowd together their gradings overlap, and a point is dropped
when every panel stays at most max(σ_k/r, its distance from μ_k) wide for every
component (a 50-component comb: 169 panels instead of 675). A component more
than 1.8e308 times narrower than that Gaussian (e.g. a subnormal σ_k under
N(0, 1)) is a spike of width < 5.6e-309 in z, whose share of the integral is
below 1e-300: it is left out of that integrand (its own expectation, over
N(μ_k, σ_k²), is computed in full). ½N(0, (5e-324)²) + ½N(0, 1) against N(0, 1)
gives KL(P‖Q) = 371.27688878013 (mpmath: 1.5e-16 relative) and KL(Q‖P) = log 2.
So is a component narrower than half an ulp of its offset from the centre
(σ_k < 2^-53·|μ_k − c|, e.g. σ_k = 1e-17 at distance 1): no float64 z falls inside
its spike, so no quadrature could see it (bisecting would go on forever), and its
share of the integral is below 2^-53·|t|φ(t) <= 2.7e-17 times the log-density
ratio at its centre t.

Accuracy: against mpmath (30 digits) on well-separated modes (±3, ±10, ±30),
weights 1e-6, widths 1e-3 next to 1e3, means at 1e6, and Q from 1e-5 to 1e5
times P's scale, in both directions, the error is below 1e-15·KL + 1e-16
(measured worst: relative 2.5e-16 over 64 such cases, absolute 2.9e-17 where
KL < 1e-3; tests/test_fitting.py keeps 18 of them). So a KL of order 1 is right
to ~1e-16 and a KL of 2.5e15 to ~0.4. It takes about 1 ms per evaluation.

How (the reverse fit)
---------------------
Newton's method in (m, log s) with the analytic gradient and Hessian,

    ∂/∂m  = −E[L'(x)],            ∂/∂log s = −1 − s E[z L'(x)],
    ∂²/∂m² = −E[L''],  ∂²/∂m∂log s = −s E[z L''],
    ∂²/∂(log s)² = −s E[z L'] − s² E[z² L''],

where L = log p and L', L'' come from the component responsibilities; the
expectations use the adaptive quadrature above, with every one of the six
integrands held to its tolerance. Negative curvature is replaced by its absolute
value (every step is a descent direction). Steps are held to a trust region in
y = (m/s, log s): Newton's step when it is no longer than the radius, else the
Levenberg–Marquardt step −(H + μI)⁻¹g of that length, which turns toward
steepest descent along directions too flat to trust (a near-zero curvature in m
with a small gradient would otherwise ask for a 1e9-long step). The radius starts
at 2, doubles (up to 64) after a step that reached it and went at least 3/4 as
far downhill as the quadratic model promised, and shrinks to a quarter of a
step that fails sufficient decrease (up to the objective's quadrature error
bound), which is then retried; a start 1e-200 times too narrow reaches P's scale
in about 12 steps. It stops when the gradient in (m/s, log s) has norm <= 1e-10
(or 100 times its own quadrature error bound, if larger), then takes one last
plain Newton step when the Hessian is positive definite; it raises
``RuntimeError`` after 100 iterations or 60 refused steps in a row. A
stationary point is accepted as found: from a start on a symmetry axis of P,
the gradient across the axis is 0 and the fit stays on it. With the default
starts, a run that comes within 1e-2 (in m/s and log s) of a fit found from an
earlier start stops there, and a start whose run fails is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference.validation import (
    _as_real_array,
    _check_float64_range,
    _format_sum,
    _raise_at_first,
    _shown,
    own_error_state,
    real_scalar,
    sum_tolerance,
)

__all__ = ["DIRECTIONS", "GaussianFit", "fit_gaussian_to_mixture", "mixture_gaussian_kl"]

DIRECTIONS = ("forward", "reverse")

_EPS = float(np.finfo(np.float64).eps)
_F64_MAX = float(np.finfo(np.float64).max)
_HALF_ULP = 2.0**-53  # a component narrower than this times |μ_k − c| is unresolvable
_SQRT_2PI = math.sqrt(2.0 * math.pi)

# Quadrature in z ~ N(0, 1): [−40, 40] loses nothing (exp(−800) is 0 in float64).
_Z_MAX = 40.0
_BASE_GRID = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 40.0])
_BASE_GRID = np.unique(np.concatenate((-_BASE_GRID, _BASE_GRID)))
_X20, _W20 = np.polynomial.legendre.leggauss(20)
_X10, _W10 = np.polynomial.legendre.leggauss(10)
_RTOL = 1e-13  # per panel, of the panel's absolute mass
_NOISE = 16.0 * _EPS  # per panel, of the integrand's rounding-noise magnitude
_FLOOR = 1e-18  # per panel, of the whole integral's absolute mass
_MAX_PANELS = 200_000

_MAX_ITERATIONS = 100
_GTOL = 1e-10
_MAX_LOG_SD_STEP = 2.0  # the first trust radius, in (m/s, log s)
_MAX_RADIUS = 64.0  # the largest: s changes by at most e^64 per step
#: A run from one start that comes this close (in m/s and log s) to a fit found
#: from an earlier start converges to it: it stops there.
_SAME_FIT = 1e-2
#: A final Newton step (in units of s and log s) at or below this is rounding noise.
_NOISE_STEP = 4 * 2.0**-53

_TOO_FAR = (
    "the means and sds of P and Q span too many orders of magnitude for float64 "
    "(a standardised distance or a variance overflows); KL is unchanged by x -> a x + b, "
    "so rescale the means and sds"
)


class GaussianFit(NamedTuple):
    """The fitted Q = N(mean, sd²) and the divergence it attains (in nats)."""

    mean: float
    sd: float
    kl: float


class _Mixture(NamedTuple):
    """A validated mixture: components with weight 0 are dropped, weights sum to 1."""

    weights: np.ndarray
    log_weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray


@own_error_state
def fit_gaussian_to_mixture(
    weights: ArrayLike,
    means: ArrayLike,
    sds: ArrayLike,
    *,
    direction: str,
    start: tuple[float, float] | None = None,
) -> GaussianFit:
    """The Gaussian Q = N(mean, sd²) closest to P = Σ_k w_k N(μ_k, σ_k²) in KL.

    Parameters
    ----------
    weights, means, sds : array_like of real numbers, 1-D, same length >= 1
        The mixture. Weights must be finite, >= 0 and sum to 1 within
        :func:`klspec.reference.validation.sum_tolerance` of their dtype (they are
        then divided by their sum); means finite; sds finite and > 0.
    direction : {"forward", "reverse"}
        ``"forward"`` minimises KL(P‖Q) (mass-covering): closed form, Q has P's
        mean and variance, m = Σ w_k μ_k and s² = Σ w_k σ_k² + Σ w_k (μ_k − m)²
        (the variance as a sum of non-negative terms, not E[x²] − m², which
        cancels when |m| >> s).
        ``"reverse"`` minimises KL(Q‖P) (mode-seeking) by Newton's method in
        (m, log s) (see the module docs) and returns the stationary point it
        reaches. KL(Q‖P) can have several local minima: one per well-separated
        mode and one broad Q straddling them. For ½N(−3, 1) + ½N(3, 1), a start
        with mean exactly 0 stays on the symmetry axis and returns that broad
        local minimum (mean 0, sd 2.7437693091, kl 0.8406214313; the Hessian in
        (m, log s) is diag(0.1328, 8.4505): a minimum in m too, not a saddle),
        while a start near a mode returns that mode (from (2.5, 1.0): mean
        2.9843059878, sd 1.0233685597, kl 0.6887689959).
    start : (mean, sd), optional
        Where the reverse fit starts (mean finite, sd finite and > 0; any
        scale: from (0, 1e-200) on ½N(±3, 1) it converges in ~0.2 s). Default:
        run from every component (μ_k, σ_k) in order, then from the forward fit,
        and return the fit with the smallest kl (the first of those within
        1e-12, relative, of the smallest: mirror-image modes resolve to the
        earlier component). A start whose run fails (no convergence, or a point
        beyond float64) is skipped, and a run that reaches a fit found from an
        earlier start stops there. That costs one Newton run per start, about
        5 ms each for two components; a 50-component comb (means −50..50, sds 1)
        takes about 10 Newton steps per start, 525 quadratures of the six
        integrands in all (tens of seconds). Passing ``start`` with
        ``direction="forward"`` is an error.

    Returns
    -------
    GaussianFit
        ``(mean, sd, kl)`` as floats; ``kl`` is :func:`mixture_gaussian_kl` at
        (mean, sd) in the same direction, in nats. A single-component mixture is
        fitted exactly (kl 0) in both directions.

    Raises
    ------
    TypeError, ValueError
        For invalid input, naming the argument, the problem and the position
        (e.g. ``sds[2] is 0.0; standard deviations must be finite numbers > 0``);
        ``ValueError`` also when the scales of P and Q are so far apart (a ratio
        beyond ~1e150) that the integrand overflows float64; with the default
        starts, only when that happens from every start.
    RuntimeError
        When the reverse fit from ``start`` does not converge within 100 Newton
        iterations (or its step is refused 60 times in a row); with the default
        starts, only when every start fails (the message names the first).
    """
    _check_direction(direction)
    mix = _validate_mixture(weights, means, sds)
    if direction == "reverse":
        if start is None:
            return _best_reverse_fit(mix)
        mean, sd = _reverse_newton(mix, *_validate_start(start))
    elif start is not None:
        raise ValueError(
            "start applies only to direction='reverse'; the forward fit is closed form"
        )
    else:
        mean, sd = _moment_match(mix)
    return GaussianFit(mean, sd, _kl(mix, mean, sd, direction))


@own_error_state
def mixture_gaussian_kl(
    weights: ArrayLike,
    means: ArrayLike,
    sds: ArrayLike,
    mean: float,
    sd: float,
    *,
    direction: str,
) -> float:
    """KL between P = Σ_k w_k N(μ_k, σ_k²) and Q = N(mean, sd²), in nats.

    ``direction="forward"`` gives KL(P‖Q), ``"reverse"`` gives KL(Q‖P). The
    mixture is validated as in :func:`fit_gaussian_to_mixture`; ``mean`` must be
    a finite real number and ``sd`` a finite real number > 0. The integral is
    computed by adaptive Gauss–Legendre quadrature in the standardised variable
    (see the module docs); the result is never negative and is exactly 0 when P
    is a single component equal to Q. Errors are those of
    :func:`fit_gaussian_to_mixture`, e.g. ``sd=0 is not > 0; the sd of Q must be
    a finite number > 0``.
    """
    _check_direction(direction)
    mix = _validate_mixture(weights, means, sds)
    m = _real_scalar("mean", mean, "the mean of Q must be a finite number")
    s = _real_scalar("sd", sd, "the sd of Q must be a finite number > 0")
    if not s > 0:
        raise ValueError(f"sd={sd} is not > 0; the sd of Q must be a finite number > 0")
    return _kl(mix, m, s, direction)


# --- the divergences -------------------------------------------------------------


def _kl(mix: _Mixture, m: float, s: float, direction: str) -> float:
    if direction == "forward":
        # KL(P‖Q) = Σ_k w_k E_{x~N(μ_k, σ_k²)}[log p(x) − log q(x)].
        parts = []
        for w_k, mu_k, sd_k in zip(mix.weights, mix.means, mix.sds, strict=True):
            c, r = float(mu_k), float(sd_k)
            value = _expect(lambda z, c=c, r=r: _log_ratio(mix, m, s, c, r, z), mix, c, r)
            parts.append(float(w_k) * float(value[0]))
        kl = math.fsum(parts)
    else:
        # KL(Q‖P) = E_{x~Q}[log q(x) − log p(x)].
        kl = -float(_expect(lambda z: _log_ratio(mix, m, s, m, s, z), mix, m, s)[0])
    if not math.isfinite(kl):
        raise ValueError(_TOO_FAR)
    # Quadrature rounding can leave −1e-17 (or −0.0) where the true value is 0.
    return kl if kl > 0 else 0.0


def _log_ratio(
    mix: _Mixture, m: float, s: float, c: float, r: float, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log p(x) − log q(x) at x = c + r z, with a bound on its rounding noise / eps."""
    lse, magnitude, _, _, _ = _components(mix, m, s, c, r, z)
    return lse[None, :], magnitude[None, :]


def _components(
    mix: _Mixture, m: float, s: float, c: float, r: float, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """log p − log q at x = c + r z, its noise magnitude, and per component the
    responsibilities w_k φ_k / p and u_k = (x − μ_k)/σ_k (shape (K, n))."""
    sds = mix.sds[:, None]
    # Overflow (standardised distances beyond 1e154) surfaces as a non-finite
    # value, which _expect_with_bound turns into an error.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # Offsets first, then the scaled z: forming x = c + r z would round away
        # r z when |c| >> r (a narrow Q far from 0).
        ratio = r / sds
        u = (c - mix.means)[:, None] / sds + ratio * z
        v = (c - m) / s + (r / s) * z
        log_scale = (math.log(s) - np.log(mix.sds) + mix.log_weights)[:, None]
        terms = log_scale + 0.5 * (v - u) * (v + u)
        # A component more than 1.8e308 times narrower than r (e.g. a subnormal σ_k),
        # or narrower than half an ulp of its centre in z, is a spike no float64 z
        # resolves, whose share of the expectation is negligible (see _lost): it is
        # left out (density 0) rather than turned into inf − inf. If every component
        # is left out, log p is −inf and the caller reports the scales as beyond float64.
        lost = _lost(mix, c, r)
        if lost.any():
            terms[lost] = -np.inf
            u[lost] = 0.0
        top = np.argmax(terms, axis=0)
        cols = np.arange(terms.shape[1])
        peak = terms[top, cols]
        shifted = np.exp(terms - peak)
        shifted[top, cols] = 0.0
        # log Σ exp = peak + log1p(Σ_{k≠top} e^{c_k − peak}): log1p keeps the small
        # contributions of the other components that log(1 + ...) would round away.
        lse = peak + np.log1p(shifted.sum(axis=0))
        resp = np.exp(terms - lse)
        u_top = u[top, cols]
        magnitude = 1.0 + np.abs(log_scale[top, 0]) + (np.abs(v) + np.abs(u_top)) ** 2
    return lse, magnitude, resp, u, v


def _lost(mix: _Mixture, c: float, r: float) -> np.ndarray:
    """The components left out of an integrand over N(c, r²) (a boolean per component).

    A component is a spike of width w_k = σ_k/r in z, centred at (μ_k − c)/r. It is
    left out when it is more than 1.8e308 times narrower than r (r/σ_k overflows),
    or narrower than half an ulp of its centre (σ_k < 2^-53·|μ_k − c|): no z in
    float64 falls inside it, so no quadrature can see it (one would bisect in vain).
    Its share of the expectation, about w_k·φ(centre) times the log-density ratio
    there, is then below 2^-53·|t|φ(t) <= 2.7e-17 times that ratio (t the centre),
    and below 1e-300 for a subnormal σ_k.
    """
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        ratio = r / mix.sds
    return ~np.isfinite(ratio) | (mix.sds < _HALF_ULP * np.abs(mix.means - c))


def _expect(
    integrand: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    mix: _Mixture,
    c: float,
    r: float,
) -> np.ndarray:
    """E_{z~N(0,1)}[F(z)] for each row of F, by adaptive Gauss–Legendre on [−40, 40].

    ``integrand(z)`` returns F (rows of values) and M (same shape, a bound on each
    value's rounding error in units of eps). A panel is accepted when, for every
    row, the 10- and 20-node rules agree to _RTOL of ∫|F|φ plus _NOISE of ∫Mφ over
    it, or to _FLOOR of ∫(|F| + M)φ over the initial panels; the 20-node value is
    kept. The Gaussian integrated over is N(c, r²): x = c + r z.
    """
    total, _ = _expect_with_bound(integrand, mix, c, r)
    return total


def _expect_with_bound(
    integrand: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    mix: _Mixture,
    c: float,
    r: float,
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_expect`, also returning the sum of the acceptance tolerances."""
    points = _breakpoints(mix, c, r)
    a, b = points[:-1], points[1:]
    accepted: list[np.ndarray] = []
    bounds: list[np.ndarray] = []
    evaluated = 0
    floor = None
    while a.size:
        evaluated += a.size
        if evaluated > _MAX_PANELS:
            raise RuntimeError(
                f"the quadrature did not converge within {_MAX_PANELS} panels; "
                "the mixture's scales are too far apart to integrate in float64"
            )
        mid, half = 0.5 * (a + b), 0.5 * (b - a)
        z = mid[:, None] + half[:, None] * np.concatenate((_X20, _X10))
        weight = np.exp(-0.5 * z * z) / _SQRT_2PI * half[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            values, noise = integrand(z.ravel())
            values = values.reshape(len(values), *z.shape) * weight
            noise = noise.reshape(values.shape) * weight
            g20 = values[..., :20] @ _W20
            g10 = values[..., 20:] @ _W10
            tol = _RTOL * (np.abs(values[..., :20]) @ _W20) + _NOISE * (noise[..., :20] @ _W20)
        if not (np.isfinite(g20).all() and np.isfinite(tol).all()):
            raise ValueError(_TOO_FAR)
        if floor is None:
            # Far tails hold ~1e-200 of the mass: accept a panel whose disagreement
            # is below _FLOOR of the whole integral's size (from the initial panels).
            floor = _FLOOR * ((np.abs(values[..., :20]) + noise[..., :20]) @ _W20).sum(axis=1)
        tol = np.maximum(tol, floor[:, None])
        good = (np.abs(g20 - g10) <= tol).all(axis=0)
        accepted.append(g20[:, good])
        bounds.append(tol[:, good])
        bad = ~good
        a, b, mid = a[bad], b[bad], mid[bad]
        a, b = np.concatenate((a, mid)), np.concatenate((mid, b))
    total = np.concatenate(accepted, axis=1)
    bound = np.concatenate(bounds, axis=1)
    return (
        np.array([math.fsum(row) for row in total]),
        np.array([math.fsum(row) for row in bound]),
    )


def _breakpoints(mix: _Mixture, c: float, r: float) -> np.ndarray:
    """Initial panel ends in z for a Gaussian weight N(c, r²).

    A component narrower than r makes log p spike over a width w_k = σ_k/r in z,
    which a wide panel can miss entirely (both rules see nothing there). Grade the
    panels toward its mean c_k: c_k ± w_k·2^j, up to the scale of r, so that every
    panel is at most max(w_k, its distance from c_k) wide. Where many narrow
    components crowd together, their gradings overlap: a point is then dropped
    when the panel that results still keeps that rule for every component (the
    fixed grid is always kept). A width below the smallest normal float64 (a
    subnormal σ_k, or σ_k/r underflowing) is graded with exact powers of two.
    """
    pieces = [_BASE_GRID]
    centres, widths = [], []
    for mu_k, sd_k in zip(mix.means, mix.sds, strict=True):
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            width, centre, ratio = sd_k / r, (mu_k - c) / r, r / sd_k
        if width >= 0.5 or not abs(centre) < _Z_MAX + 1.0:
            continue  # smooth on the scale of r, or beyond the range integrated
        if not np.isfinite(ratio) or sd_k < _HALF_ULP * abs(mu_k - c):
            continue  # left out of the integrand (see _lost)
        # log2 of the width itself, not of 1/width: 1/5e-324 overflows.
        steps = np.ldexp(width, np.arange(0, math.ceil(-math.log2(width)) + 1))
        pieces.append(np.concatenate(([centre], centre - steps, centre + steps)))
        centres.append(centre)
        widths.append(width)
    points = np.unique(np.concatenate(pieces))
    points = points[(points >= -_Z_MAX) & (points <= _Z_MAX)]
    if len(centres) < 2:
        return points  # one grading alone is already as coarse as the rule allows
    return _thin(points, np.array(centres), np.array(widths))


def _thin(points: np.ndarray, centres: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Drop points of overlapping gradings: keep a point only where the panel
    from the last kept point to the next would be wider than some component
    allows (max(w_k, the panel's distance from c_k)); fixed-grid points stay."""
    fixed = np.isin(points, _BASE_GRID)
    kept = [points[0]]
    for i in range(1, len(points) - 1):
        if fixed[i]:
            kept.append(points[i])
            continue
        a, b = kept[-1], points[i + 1]
        distance = np.maximum(np.maximum(a - centres, centres - b), 0.0)
        if b - a > float(np.min(np.maximum(widths, distance))):
            kept.append(points[i])
    kept.append(points[-1])
    return np.array(kept)


# --- the fits --------------------------------------------------------------------


def _moment_match(mix: _Mixture) -> tuple[float, float]:
    """P's mean and sd: the minimiser of KL(P‖Q) over Gaussians Q."""
    w, mu, sd = mix.weights, mix.means, mix.sds
    try:
        m = math.fsum(w * mu)
    except OverflowError:  # means near ±1.8e308 whose mean is beyond float64
        raise ValueError(_TOO_FAR) from None
    # Law of total variance as non-negative terms: Σw(σ² + μ²) − m² would cancel
    # catastrophically when |m| >> s. Scaled by a power of two (exact) so that an
    # sd of 1e200 does not overflow its square.
    # (ldexp, not a division by 2**e: 2**1024 itself is beyond float64).
    offsets = mu - m
    exponent = math.frexp(max(float(sd.max()), float(np.abs(offsets).max())))[1]
    sd, offsets = np.ldexp(sd, -exponent), np.ldexp(offsets, -exponent)
    variance = math.fsum(w * sd * sd) + math.fsum(w * offsets * offsets)
    if not variance > 0:  # sds below 1e-154 times the spread of the means
        raise ValueError(_TOO_FAR)
    try:
        return m, math.ldexp(math.sqrt(variance), exponent)
    except OverflowError:  # P's sd is beyond float64
        raise ValueError(_TOO_FAR) from None


def _reverse_newton(
    mix: _Mixture, mean: float, sd: float, known: tuple[GaussianFit, ...] = ()
) -> tuple[float, float]:
    """A stationary point of KL(Q‖P) over (m, log s), by trust-region Newton from (mean, sd).

    ``known``: fits already found from other starts. A run that comes within
    _SAME_FIT (in m/s and log s) of one of them returns that fit's (mean, sd): it
    would converge there, and repeating the last iterations changes nothing.
    """
    # s is updated multiplicatively (s·e^{Δ log s}), never as exp(log s): a start
    # or a step of 0 then leaves s exactly as it was.
    m, s = mean, sd
    norm = math.inf
    # The trust radius, in y = (m/s, log s). It starts at the old cap on log s (2)
    # and doubles after each step that reached it and went as far downhill as the
    # model promised (a start 1e-200 times too narrow gets there in ~12 steps);
    # a refused step shrinks it to a quarter of its length.
    radius = _MAX_LOG_SD_STEP
    # Work in y = (m/s, log s): scale-free, so the tolerance and step caps mean
    # the same for every mixture. A trial point gets its derivatives along with its
    # value (one quadrature): they are the next iteration's when it is accepted.
    at = _reverse_derivatives(mix, m, s)
    for _ in range(_MAX_ITERATIONS):
        f, f_bound, g, h, gtol = at
        norm = float(np.hypot(*g))
        lam, vec = np.linalg.eigh(h)
        if norm <= gtol:
            # Converged. One last plain Newton step (quadratic convergence takes the
            # error from ~|g| to the quadrature noise) costs nothing more; only
            # where the Hessian is positive definite and the step is tiny.
            # A step below a few units of roundoff is the quadrature's rounding noise,
            # not information: taking it would move an exact fit by an ulp.
            if lam[0] > 0:
                step = -vec @ ((vec.T @ g) / lam)
                if _NOISE_STEP < float(np.abs(step).max()) <= 1e-6:
                    return float(m + step[0] * s), float(s * math.exp(step[1]))
            return m, s
        # Negative curvature by its absolute value: every step is a descent direction.
        curv = np.maximum(np.abs(lam), max(1e-8 * float(np.abs(lam).max()), 1e-300))
        coef = vec.T @ g
        # The objective is known to its quadrature bound; allow that much rise so
        # the last, tiny Newton steps are not refused for rounding.
        allowance = 4.0 * f_bound
        for _ in range(60):
            along = _trust_step(coef, curv, radius)  # in the eigenbasis
            step = vec @ along
            length = float(np.hypot(*along))
            slope = float(g @ step)
            m_new, s_new = m + step[0] * s, s * math.exp(step[1])
            try:
                at = _reverse_derivatives(mix, m_new, s_new)
                f_new = at[0]
            except ValueError:  # the trial point is beyond float64: step shorter
                f_new = math.inf
            if f_new <= f + 1e-4 * slope + allowance:
                promised = -(slope + 0.5 * float(along @ (curv * along)))
                if length >= 0.99 * radius and f - f_new >= 0.75 * promised:
                    radius = min(2.0 * radius, _MAX_RADIUS)
                break
            radius = 0.25 * length
        else:
            raise RuntimeError(
                f"the reverse fit's line search failed at mean={m!r}, sd={s!r} "
                f"(gradient norm {norm:.3g}); try another start"
            )
        m, s = float(m_new), float(s_new)
        for fit in known:
            if abs(m - fit.mean) <= _SAME_FIT * fit.sd and abs(math.log(s / fit.sd)) <= _SAME_FIT:
                return fit.mean, fit.sd
    raise RuntimeError(
        f"the reverse fit did not converge in {_MAX_ITERATIONS} Newton iterations "
        f"(last mean={m!r}, sd={s!r}, gradient norm {norm:.3g}); "
        "try another start"
    )


def _trust_step(coef: np.ndarray, curv: np.ndarray, radius: float) -> np.ndarray:
    """The step −coef/(curv + μ) (eigenbasis of the Hessian, curvatures > 0) with the
    smallest μ >= 0 whose length is <= radius: Newton's step if it is short enough,
    else the Levenberg–Marquardt step of length ``radius``, which turns toward
    steepest descent where the curvature is too small to trust (a flat direction
    would otherwise get a huge step)."""
    newton = -coef / curv
    if float(np.hypot(*newton)) <= radius:
        return newton
    lo, hi = 0.0, float(np.hypot(*coef)) / radius  # the length is <= radius at hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if float(np.hypot(*(coef / (curv + mid)))) > radius:
            lo = mid
        else:
            hi = mid
    return -coef / (curv + hi)


def _best_reverse_fit(mix: _Mixture) -> GaussianFit:
    """Newton from every component (in order), then from the forward fit; the best wins.

    KL(Q‖P) has a local minimum at each well-separated mode and possibly a broad
    one covering several; which is lowest depends on the mixture, so each start
    is tried. Fits whose kl is within 1e-12 (relative) of the best count as ties
    and the first in that order is returned, so mirror-image modes resolve the
    same way on every machine. A start whose run fails (RuntimeError: no
    convergence; ValueError: a point beyond float64) is skipped; if every start
    fails, the first ValueError is raised (the mixture cannot be integrated in
    float64), else a RuntimeError naming the first failure.
    """
    starts = [(float(mu), float(sd)) for mu, sd in zip(mix.means, mix.sds, strict=True)]
    starts.append(_moment_match(mix))
    fits: list[GaussianFit] = []
    failures: list[tuple[tuple[float, float], Exception]] = []
    for start in dict.fromkeys(starts):  # distinct starts, in order
        try:
            mean, sd = _reverse_newton(mix, *start, known=tuple(fits))
            same = [fit for fit in fits if (fit.mean, fit.sd) == (mean, sd)]
            # A run that stopped at an earlier fit: its kl is known already.
            fits.append(same[0] if same else GaussianFit(mean, sd, _kl(mix, mean, sd, "reverse")))
        except (RuntimeError, ValueError) as exc:
            failures.append((start, exc))
    if not fits:
        for _, exc in failures:
            if isinstance(exc, ValueError):
                raise exc
        (mean, sd), exc = failures[0]
        raise RuntimeError(
            f"the reverse fit failed from every one of the {len(failures)} default starts; "
            f"from (mean={mean!r}, sd={sd!r}): {exc}"
        ) from exc
    best = min(fit.kl for fit in fits)
    return next(fit for fit in fits if fit.kl <= best + 1e-12 * max(best, 1.0))


def _reverse_value(mix: _Mixture, m: float, s: float) -> float:
    return -float(_expect(lambda z: _log_ratio(mix, m, s, m, s, z), mix, m, s)[0])


def _reverse_derivatives(
    mix: _Mixture, m: float, s: float
) -> tuple[float, float, np.ndarray, np.ndarray, float]:
    """KL(Q‖P), its quadrature error bound, its gradient and Hessian in the scaled
    coordinates y = (m/s, log s) at the point (multiply row/column 0 by 1/s for
    (m, log s)), and the gradient tolerance.

    With a_k = s/σ_k and responsibilities ρ_k: s L' = −Σ ρ_k a_k u_k and
    s² L'' = Σ ρ_k a_k² (u_k² − 1) − (Σ ρ_k a_k u_k)².
    """

    def integrand(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lse, magnitude, resp, u, _ = _components(mix, m, s, m, s, z)
        with np.errstate(over="ignore"):
            a = (s / mix.sds)[:, None]
        a = np.where(np.isfinite(a), a, 0.0)  # a component left out (see _components)
        au = a * u
        first = -(resp * au).sum(axis=0)  # s L'
        second = (resp * a * a * (u * u - 1.0)).sum(axis=0) - first * first  # s² L''
        # Rounding noise: each term's size, times the noise of the log-ratio that
        # sets the responsibilities.
        size1 = (resp * (a + np.abs(au))).sum(axis=0)
        m1 = magnitude * size1
        m2 = magnitude * ((resp * a * a * (u * u + 1.0)).sum(axis=0) + size1 * size1)
        values = np.stack((-lse, first, z * first, second, z * second, z * z * second))
        noise = np.stack((magnitude, m1, np.abs(z) * m1, m2, np.abs(z) * m2, z * z * m2))
        return values, noise

    e, bound = _expect_with_bound(integrand, mix, m, s)
    f = float(e[0])
    # The module docs' derivatives, times s per m: s ∂f/∂m = −E[sL'],
    # ∂f/∂log s = −1 − E[z sL'], s² ∂²f/∂m² = −E[s²L''], s ∂²f/∂m∂log s = −E[z s²L''],
    # ∂²f/∂(log s)² = −E[z sL'] − E[z² s²L''].
    grad = np.array([-e[1], -1.0 - e[2]])
    hess = np.array([[-e[3], -e[4]], [-e[4], -e[2] - e[5]]])
    gtol = max(_GTOL, 100.0 * float(np.hypot(bound[1], bound[2])))
    return f, float(bound[0]), grad, hess, gtol


# --- validation ------------------------------------------------------------------


def _check_direction(direction: object) -> None:
    if not (isinstance(direction, str) and direction in DIRECTIONS):
        raise ValueError(
            f"direction={direction!r} is not one of 'forward' (KL(P‖Q)) or 'reverse' (KL(Q‖P))"
        )


def _validate_mixture(weights: ArrayLike, means: ArrayLike, sds: ArrayLike) -> _Mixture:
    """Check the three parameter arrays; the caller's arrays are never modified."""
    named = {"weights": weights, "means": means, "sds": sds}
    arrays = {}
    for name, value in named.items():
        arr = _as_real_array(name, value)
        if arr.ndim != 1:
            what = "0-d (a single number)" if arr.ndim == 0 else f"{arr.ndim}-d, shape {arr.shape}"
            raise ValueError(
                f"{name} is {what}; the mixture's parameters are 1-D, one entry per component"
            )
        if arr.size == 0:
            raise ValueError(f"{name} is empty; a mixture needs at least one component")
        arrays[name] = arr
    lengths = [arr.size for arr in arrays.values()]
    if len(set(lengths)) > 1:
        raise ValueError(
            "weights, means and sds must have the same length (one entry per component), "
            f"got {lengths[0]}, {lengths[1]} and {lengths[2]}"
        )

    w_arr, mu_arr, sd_arr = arrays["weights"], arrays["means"], arrays["sds"]
    finite = "must be finite numbers"
    if w_arr.dtype.kind == "f":
        _raise_at_first("weights", w_arr, np.isnan(w_arr), lambda v: "NaN", f"weights {finite}")
        _raise_at_first("weights", w_arr, np.isinf(w_arr), str, f"weights {finite}")
    _raise_at_first(
        "weights", w_arr, w_arr < 0, lambda v: f"negative ({v!s})", "weights must be >= 0"
    )
    if mu_arr.dtype.kind == "f":
        _raise_at_first("means", mu_arr, np.isnan(mu_arr), lambda v: "NaN", f"means {finite}")
        _raise_at_first("means", mu_arr, np.isinf(mu_arr), str, f"means {finite}")
    sd_rule = "standard deviations must be finite numbers > 0"
    if sd_arr.dtype.kind == "f":
        _raise_at_first("sds", sd_arr, np.isnan(sd_arr), lambda v: "NaN", sd_rule)
        _raise_at_first("sds", sd_arr, np.isinf(sd_arr), str, sd_rule)
    _raise_at_first("sds", sd_arr, ~(sd_arr > 0), str, sd_rule)
    # A longdouble entry beyond the float64 range (e.g. 1e400) would become inf.
    with np.errstate(over="ignore", under="ignore"):
        w, mu64, sd64 = (np.asarray(a, dtype=np.float64) for a in (w_arr, mu_arr, sd_arr))
    _check_float64_range("weights", w_arr, w, f"weights {finite}")
    _check_float64_range("means", mu_arr, mu64, f"means {finite}")
    _check_float64_range("sds", sd_arr, sd64, sd_rule)

    try:
        total = math.fsum(w)
    except OverflowError:  # e.g. [1.8e308, 1.8e308]: certainly not normalised
        raise ValueError(
            f"weights sums to more than the float64 maximum {_F64_MAX:.3g}; pass "
            "normalised weights (summing to 1), e.g. weights / weights.sum()"
        ) from None
    tol = sum_tolerance(w_arr.dtype)
    if total == 0:
        raise ValueError("weights sums to 0 (every weight is 0); a mixture needs positive weight")
    if abs(total - 1.0) > tol:
        off = abs(total - 1.0)
        raise ValueError(
            f"weights sums to {_format_sum(total, off)}, off from 1 by {off:.2g} (more than "
            f"the {w_arr.dtype} tolerance {tol:.2g}); pass normalised weights, "
            "e.g. weights / weights.sum()"
        )
    # A longdouble sd below the float64 range (e.g. 1e-4900) has become 0.
    _raise_at_first("sds", sd_arr, sd64 == 0, _shown, sd_rule)
    keep = w > 0
    w = w[keep] / total
    return _Mixture(
        weights=w,
        log_weights=np.log(w),
        means=mu64[keep],
        sds=sd64[keep],
    )


def _real_scalar(name: str, value: object, rule: str) -> float:
    """A finite real number (Python or numpy int/float; bool refused) as a float."""
    out = real_scalar(value, f"{name} must be a real number, got {value!r}; {rule}")
    if not math.isfinite(out):
        raise ValueError(f"{name}={value} is not finite; {rule}")
    return out


def _validate_start(start: object) -> tuple[float, float]:
    if isinstance(start, (AbstractSet, Mapping)):
        raise TypeError(
            f"start is a {type(start).__name__}, which does not say which entry is the mean "
            f"and which the sd; pass a tuple (mean, sd), e.g. start=(0.0, 1.0)"
        )
    try:
        pair = tuple(start)  # type: ignore[arg-type]
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"start must be a pair (mean, sd), got {start!r}")
    mean = _real_scalar("start[0]", pair[0], "the start's mean must be a finite number")
    sd = _real_scalar("start[1]", pair[1], "the start's sd must be a finite number > 0")
    if not sd > 0:
        raise ValueError(
            f"start[1]={pair[1]} is not > 0; the start's sd must be a finite number > 0"
        )
    return mean, sd
