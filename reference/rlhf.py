r"""The KL-regularised RLHF objective over a finite set of responses, and its optimum.

For one prompt with responses y = 1..n, a reference policy π_ref (``ref_probs``),
rewards r(y) (``rewards``) and a KL coefficient β > 0 (``beta``):

``rlhf_objective(policy, ref_probs, rewards, beta)``
    J(π) = E_π[r] − β KL(π‖π_ref); −inf when π puts mass where π_ref has none.
``rlhf_optimal_policy(ref_probs, rewards, beta)``
    π*(y) = π_ref(y) e^{r(y)/β} / Z, with Z = Σ_y π_ref(y) e^{r(y)/β}.
``rlhf_optimal_value(ref_probs, rewards, beta)``
    β log Z, the largest value of J.

π* is the maximiser because J(π) = β log Z − β KL(π‖π*) (write log π* out), and
KL(π‖π*) ≥ 0 with equality only at π = π* (Gibbs): docs/proofs/rlhf_optimum.md.
Responses with π_ref(y) = 0 get π*(y) = 0 exactly, whatever their reward. As
β → ∞, π* → π_ref; as β → 0, π* → π_ref restricted to the responses of largest
reward within its support, so tied responses share the mass in proportion to
π_ref (uniformly only where π_ref is equal on them).

Inputs
------
Responses are on the last axis; every other axis is a batch (prompts).
``ref_probs`` and ``policy`` are validated like every distribution of
:mod:`klspec.reference` (:func:`klspec.reference.validation.validate_distributions`:
non-negative, finite, summing to 1 within ``sum_tolerance``) and are treated as
P/ΣP. ``rewards`` are finite real numbers of shape (..., n): their batch axes
broadcast against those of the distributions by numpy's rules, the response
axis never broadcasts (a 1-D ``rewards`` serves every row of a batch of
``ref_probs``). ``beta`` is one finite real number > 0.

Accuracy (tests/test_rlhf.py, against mpmath; u = 2**-53)
--------------------------------------------------------
π*(y) within 6u relative per entry; β log Z within 6u·M, where
M = |β log Z| + Σ π*|r| + β Σ|π* − π_ref| is what perturbing the inputs by one
ulp can change (a few ulps relative unless β log Z nearly cancels); J(π) within
8u·(|E_π[r]| + β KL(π‖π_ref)).

How (numerics)
--------------
Everything is centred on the response j with the largest log-weight
L_y = log π_ref(y) + r(y)/β (over the support of π_ref), so no exponential can
overflow however large r/β is (r = 1e4 with β = 1e-3 gives r/β = 1e7). The
offsets x_y = L_y − L_j are formed with an absolute error near u however large
they are, as log(π_ref(y)/π_ref(j)) (the exponent difference times ln 2
exactly, plus log1p of the mantissa ratio) plus δ_y = (r(y) − r(j))/β (an exact
difference, divided in double-double). So π*(y) = e^{x_y}/Σ e^x is within a few
ulps even when r/β is 1e7 and only the last digits of r differ. β log Z is
computed as r(j) + β log A with A = Σ_y π_ref(y) e^{δ_y}: near A = 1 from
log1p(Σ π_ref(y)(e^{δ_y} − 1)), elsewhere as A = m·2^k (m in [1/2, 1)) with
r(j) + β·k·ln 2 formed exactly, so rewards that are all equal give exactly that
reward and nothing cancels that the inputs did not ask for.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference import _chunked
from klspec.reference.divergences import _evaluate, _kl_long, _kl_nats
from klspec.reference.exact_arithmetic import dd_sum, two_prod, two_sum
from klspec.reference.validation import (
    _as_real_array,
    _first_clash,
    _raise_at_first,
    own_error_state,
    real_scalar,
    validate_distributions,
)

__all__ = ["rlhf_objective", "rlhf_optimal_policy", "rlhf_optimal_value"]

# ln 2 = _LN2_HI + _LN2_LO (fdlibm's split): _LN2_HI has 33 significant bits, so
# k·_LN2_HI is exact for every difference k of float64 exponents (|k| < 2**11).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Above this β, two_prod(β, ·) would overflow in Dekker's split: scale β and r by 2**-200.
_HUGE_BETA = 2.0**900


@own_error_state
def rlhf_optimal_policy(ref_probs: ArrayLike, rewards: ArrayLike, beta: float) -> np.ndarray:
    """The policy maximising E_π[r] − β KL(π‖π_ref): π*(y) = π_ref(y) e^{r(y)/β} / Z.

    Parameters
    ----------
    ref_probs : array_like, shape (..., n)
        The reference policy π_ref over n responses (last axis); other axes are a
        batch. Validated like every distribution of :mod:`klspec.reference` and
        treated as ``ref_probs / ref_probs.sum(-1)``.
    rewards : array_like, shape (..., n)
        Finite real rewards, one per response; batch axes broadcast against those
        of ``ref_probs``, the response axis must match.
    beta : float
        The KL coefficient, finite and > 0. Small β tilts π* towards the
        highest reward, large β keeps it close to π_ref.

    Returns
    -------
    numpy.ndarray
        float64 of shape (*batch, n) (the broadcast batch shape), summing to 1
        along the last axis. π*(y) = 0 exactly wherever π_ref(y) = 0, whatever
        r(y). Each entry within a few ulps of the exact value (see the module
        docs); entries below ~1e-308 are subnormal or 0.

    Raises
    ------
    TypeError, ValueError
        For invalid input, naming the argument (``ref_probs``, ``rewards`` or
        ``beta``) and the problem. The arguments are never modified.
    """
    (p,), batch = validate_distributions({"ref_probs": ref_probs}, axis=-1)
    b = _validate_beta(beta)
    p, r = _with_rewards(rewards, (p,), batch, "ref_probs")
    tilt = _Tilt(p, r, b)
    s_hi, s_lo = dd_sum(tilt.weights)
    return tilt.weights / s_hi[..., None] / (1.0 + s_lo / s_hi)[..., None] + 0.0


@own_error_state
def rlhf_objective(
    policy: ArrayLike, ref_probs: ArrayLike, rewards: ArrayLike, beta: float
) -> np.float64 | np.ndarray:
    """The KL-regularised objective J(π) = E_π[r] − β KL(π‖π_ref).

    ``policy`` and ``ref_probs`` are distributions over the n responses (last
    axis, validated, treated as normalised; their batch axes broadcast);
    ``rewards`` and ``beta`` as for :func:`rlhf_optimal_policy`. E_π[r] is
    summed from error-free products (Dekker) in double-double, KL is
    :func:`klspec.reference.kl_divergence` (exact to a few ulps), and the
    difference is rounded once, so J is within a few ulps of
    |E_π[r]| + β KL(π‖π_ref), the size of the two terms it subtracts.

    Returns float64: a scalar for 1-D input, else an array of the batch shape.
    ``-inf`` when π puts mass where π_ref has none (KL = +inf), and when
    β KL overflows. J(π) ≤ :func:`rlhf_optimal_value`, with equality at π*.
    """
    named = {"policy": policy, "ref_probs": ref_probs}
    (pi, p), batch = validate_distributions(named, axis=-1)
    b = _validate_beta(beta)
    pi, p, r = _with_rewards(rewards, (pi, p), batch, "policy and ref_probs")
    if pi.size == 0:  # an empty batch, e.g. (0, n): no rows, an empty result
        return np.zeros(pi.shape[:-1])
    e_hi, e_lo = _expected_reward(pi, r)
    # KL of the arguments as given, so that each keeps the sum tolerance of its own
    # dtype (a float32 policy is not judged as float64) and errors name them.
    kl = np.broadcast_to(_kl_of(named), pi.shape[:-1])
    with np.errstate(over="ignore", invalid="ignore"):
        # β·KL and E − β·KL error-free as far as float64 allows: J is rounded once.
        c_hi, c_lo = two_prod(np.full_like(kl, b), kl)
        c_lo = np.where(np.isfinite(c_lo), c_lo, 0.0)
        s, err = two_sum(e_hi, -c_hi)
        value = np.where(np.isfinite(s), s + ((err + e_lo) - c_lo), s)
    return _scalar(np.where(np.isinf(kl), -np.inf, value))


@own_error_state
def rlhf_optimal_value(
    ref_probs: ArrayLike, rewards: ArrayLike, beta: float
) -> np.float64 | np.ndarray:
    """The optimal objective β log Z = β log Σ_y π_ref(y) e^{r(y)/β} = max_π J(π) = J(π*).

    Arguments as for :func:`rlhf_optimal_policy`. Returns float64: a scalar for
    1-D input, else an array of the batch shape. Computed as a log-sum-exp
    centred on the largest log-weight (no overflow, whatever r/β), with the
    power-of-two part of log A carried exactly. The error is within 6 ulps of
    M = |β log Z| + Σ π*|r| + β Σ|π* − π_ref|, what perturbing the inputs by one
    ulp can change (tests/test_rlhf.py, against mpmath): a few ulps relative
    unless β log Z is much smaller than its parts (rewards of both signs with
    log Z ≈ 0), where no float64 evaluation keeps relative digits. Equal rewards
    c on the support give exactly c. In math, always between E_{π_ref}[r] and
    max r over the support of π_ref.
    """
    (p,), batch = validate_distributions({"ref_probs": ref_probs}, axis=-1)
    b = _validate_beta(beta)
    p, r = _with_rewards(rewards, (p,), batch, "ref_probs")
    tilt = _Tilt(p, r, b)
    w = tilt.weights
    w_hi, w_lo = dd_sum(w)  # Σ e^x >= 1: the term at j is exactly 1
    sig_hi, sig_lo = dd_sum(p)  # Σ p, ≈ 1: π_ref = p / Σp
    p_j, r_j = tilt.p_j[..., 0], tilt.r_j[..., 0]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        # A = Σ π_ref e^δ = π_ref(j)·Σ e^x, and log Z = r(j)/β + log A.
        a = (p_j / sig_hi) * w_hi
        near_one = (a >= 0.5) & (a <= 2.0)

        # Near A = 1: log A = log1p(Σ π_ref(y)(e^{δ_y} − 1)), each term formed without
        # cancellation, so nearly equal rewards keep their tiny log Z [rlhf.optimal_policy].
        d_hi, d_lo = tilt.delta_hi, tilt.delta_lo
        small = np.abs(d_hi) <= 1.0
        ds = np.where(small, d_hi, 0.0)
        em1 = np.expm1(ds) + np.exp(ds) * np.where(small, d_lo, 0.0)
        # |δ| > 1: p(e^δ − 1) = p_j e^x − p, a difference that cannot cancel badly.
        terms = np.where(small, p * em1, tilt.p_j * w - p)
        u_hi, u_lo = dd_sum(np.where(tilt.support, terms, 0.0))
        t = (u_hi + u_lo) / sig_hi / (1.0 + sig_lo / sig_hi)
        v_near = r_j + b * np.log1p(t)

        # Elsewhere: A = m·2^k with m in [1/2, 1), so log A = k ln 2 + log m with
        # |log m| < 0.7, and r(j) + β·k·_LN2_HI formed exactly: r(j) + β log A then
        # cancels only as much as the value itself does. A = π_ref(j)·Σ e^x is
        # formed in double-double from p_j's mantissa (p_j may be subnormal).
        m_j, e_j = np.frexp(p_j)
        b1, b2 = two_prod(m_j, w_hi)  # m_j·Σe^x = b1 + b2 + m_j·w_lo, in [1/2, n)
        b2 = b2 + m_j * w_lo
        q = b1 / sig_hi  # (b1 + b2)/Σp = q + q_lo
        qh, ql = two_prod(q, sig_hi)
        q_lo = (((b1 - qh) - ql) + (b2 - q * sig_lo)) / sig_hi
        m_a, e_a = np.frexp(q)
        k_a = (e_j + e_a).astype(np.float64)
        c_hi = k_a * _LN2_HI
        c_lo = k_a * _LN2_LO + np.log1p((m_a - 1.0) + np.ldexp(q_lo, -e_a))
        k = 200 if b > _HUGE_BETA else 0
        b_s, r_s = math.ldexp(b, -k), np.ldexp(r_j, -k)
        ph, pl = two_prod(np.full_like(c_hi, b_s), c_hi)
        s, err = two_sum(r_s, ph)
        v_far = np.ldexp(s + (err + (pl + b_s * c_lo)), k)
    return _scalar(np.where(near_one, v_near, v_far))


class _Tilt:
    """π_ref·e^{r/β} of validated float64 rows (..., n), centred on its largest entry j.

    Attributes: ``support`` (π_ref > 0); ``p_j``, ``r_j`` (shape (..., 1));
    ``x_hi + x_lo`` = x_y = L_y − L_j with L_y = log p_y + r_y/β (−inf off the
    support, <= 0 up to rounding); ``delta_hi + delta_lo`` = δ_y = (r_y − r_j)/β;
    ``weights`` = e^{x_y}, 1 at j and in [0, 1] elsewhere (up to rounding).
    """

    def __init__(self, p: np.ndarray, r: np.ndarray, beta: float) -> None:
        self.p, self.r, self.beta = p, r, beta
        self.support = p > 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # A first guess at j from the rounded log-weight, scaled so that it cannot
            # overflow: β·L for β < 1 (r/β may exceed 1.8e308), L itself otherwise.
            log_p = np.log(p)
            key = r + beta * log_p if beta < 1 else log_p + r / beta
        self._centre(np.argmax(np.where(self.support, key, -np.inf), axis=-1)[..., None])
        if (self.x_hi > 0).any():
            # The rounded keys can tie or misorder responses whose rewards agree to the
            # last digits (β log p absorbed into r): recentre on the accurate maximum.
            self._centre(np.argmax(self.x_hi, axis=-1)[..., None])
        with np.errstate(under="ignore"):
            self.weights = np.exp(self.x_hi) * (1.0 + self.x_lo)

    def _centre(self, j: np.ndarray) -> None:
        p, r = self.p, self.r
        self.p_j, self.r_j = np.take_along_axis(p, j, -1), np.take_along_axis(r, j, -1)
        self.delta_hi, self.delta_lo = _reward_offsets(r, self.r_j, self.beta)
        # log(p_y/p_j) = k·ln 2 + log1p((m_y − m_j)/m_j) with p = m·2^e, k = e_y − e_j:
        # m_y − m_j is exact (Sterbenz, both in [1/2, 1)) and k·_LN2_HI is exact, so
        # subnormal probabilities and ratios beyond the float64 range lose nothing.
        m, e = np.frexp(p)
        m_j, e_j = np.frexp(self.p_j)
        k = (e - e_j).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_m = np.log1p((m - m_j) / m_j)
            s, s_err = two_sum(k * _LN2_HI, self.delta_hi)
            x_hi, x_lo = two_sum(s, s_err + ((k * _LN2_LO + log_m) + self.delta_lo))
        ok = self.support & np.isfinite(s)
        self.x_hi = np.where(ok, x_hi, np.where(self.support, s, -np.inf))
        self.x_lo = np.where(ok, x_lo, 0.0)


def _reward_offsets(r: np.ndarray, r_j: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """δ = (r − r_j)/β as hi + lo, to about 2**-100 relative; ±inf where it overflows.

    The difference is exact (TwoSum; by halves where it would overflow). The
    division is done on mantissas, so neither a huge β nor a huge difference can
    make Dekker's product overflow: d = m_d·2^e_d, β = m_b·2^e_b and
    d/β = (m_d/m_b)·2^(e_d − e_b), the quotient's remainder formed exactly.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        d_hi, d_lo = two_sum(r, -r_j)
        overflow = ~np.isfinite(d_hi)  # |r − r_j| > 1.8e308: both rewards are huge
        if overflow.any():
            h_hi, h_lo = two_sum(0.5 * r, -0.5 * r_j)  # halving such rewards is exact
            d_hi, d_lo = np.where(overflow, h_hi, d_hi), np.where(overflow, h_lo, d_lo)
    shift = overflow.astype(np.int64)  # r − r_j = (d_hi + d_lo)·2**shift
    m_d, e_d = np.frexp(d_hi)
    m_b, e_b = math.frexp(beta)
    q = m_d / m_b
    ph, pl = two_prod(q, np.full_like(q, m_b))
    q_lo = ((m_d - ph) - pl) / m_b
    scale = e_d + shift - e_b
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        hi = np.ldexp(q, scale)
        lo = np.ldexp(q_lo, scale) + np.ldexp(d_lo / m_b, shift - e_b)
    return hi, np.where(np.isfinite(hi), lo, 0.0)


def _expected_reward(pi: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E_π[r] = Σ π_y r_y / Σ π_y as hi + lo, from error-free products summed in double-double.

    Rows are scaled by powers of two (π by 2**600, r so that its largest entry
    under π is below 2**300) so that Dekker's products neither overflow nor
    underflow; rewards where π = 0 are left out, however large.
    """
    r = np.where(pi > 0, r, 0.0)
    _, e_r = np.frexp(np.abs(r).max(axis=-1, keepdims=True))
    r_s = np.ldexp(r, 300 - e_r)
    pi_s = np.ldexp(pi, 600)
    prod_hi, prod_lo = two_prod(pi_s, r_s)
    t_hi, t_lo = dd_sum(np.concatenate((prod_hi, prod_lo), axis=-1))
    s_hi, s_lo = dd_sum(pi_s)
    q = t_hi / s_hi
    ph, pl = two_prod(q, s_hi)
    q_lo = (((t_hi - ph) - pl) + (t_lo - q * s_lo)) / s_hi
    e = e_r[..., 0] - 300
    with np.errstate(under="ignore"):
        return np.ldexp(q, e), np.ldexp(q_lo, e)


def _kl_of(named: dict[str, ArrayLike]) -> np.ndarray:
    """KL(policy‖ref_probs) as :func:`klspec.reference.kl_divergence`, with these names."""
    kl = _evaluate(named, -1, None, _chunked.kl_divergence_rows, _kl_nats, _kl_long)
    return np.asarray(kl, dtype=np.float64)


def _validate_beta(beta: float) -> float:
    """β: a real number (not bool), finite and > 0; returned as a float."""
    value = real_scalar(beta, f"beta must be a real number (the KL coefficient), got {beta!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"beta={beta} is not a valid KL coefficient; use a finite beta > 0 "
            "(small beta chases the reward, large beta stays near ref_probs)"
        )
    return value


def _with_rewards(
    rewards: ArrayLike, dists: tuple[np.ndarray, ...], batch: tuple[int, ...], names: str
) -> tuple[np.ndarray, ...]:
    """Validate ``rewards`` against validated distributions (..., n); broadcast all of them.

    Returns the distributions, then the rewards, as float64 arrays of one shape
    (*batch, n), batch being the broadcast of theirs and the rewards' batch shapes.
    """
    n = dists[0].shape[-1]
    arr = _as_real_array("rewards", rewards, what="rewards")
    if arr.ndim == 0:
        raise ValueError(
            f"rewards is 0-d (a single number); give one reward per response, shape (..., {n})"
        )
    if arr.shape[-1] != n:
        raise ValueError(
            f"rewards has {arr.shape[-1]} responses on its last axis but {names} "
            f"{'has' if ' and ' not in names else 'have'} {n}; give one reward per response"
        )
    with np.errstate(over="ignore"):
        r = np.asarray(arr, dtype=np.float64)  # a longdouble beyond 1.8e308 becomes inf
    rule = "rewards must be finite numbers"
    _raise_at_first("rewards", arr, np.isnan(r), lambda v: "NaN", rule)
    _raise_at_first("rewards", arr, np.isinf(r), str, rule)
    shapes = {"rewards": r.shape[:-1], names: batch}
    try:
        common = np.broadcast_shapes(*shapes.values())
    except ValueError:
        a, b = _first_clash(shapes)
        raise ValueError(
            f"the batch shapes of {a} {shapes[a]} and {b} {shapes[b]} do not broadcast"
        ) from None
    return tuple(np.broadcast_to(x, (*common, n)) for x in (*dists, r))


def _scalar(x: np.ndarray) -> np.float64 | np.ndarray:
    x = np.asarray(x, dtype=np.float64) + 0.0
    return x[()] if x.ndim == 0 else x
