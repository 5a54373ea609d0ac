r"""Preference losses: DPO, the loss that the RLHF optimum gives a pair of responses.

For a prompt x, a chosen response y_w and a rejected one y_l, the policy π and the
reference policy π_ref give log-probabilities of the whole responses (sums over
their tokens, e.g. from :func:`klspec.reference.sequence_log_prob`):

``dpo_implicit_reward(logp, ref_logp, *, beta)``
    r̂(y) = β·(log π(y) − log π_ref(y)): the reward for which π is the optimum of
    the KL-regularised objective, up to β log Z(x) (:mod:`klspec.reference.rlhf`).
``dpo_loss(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, *, beta,
label_smoothing=0.0)``
    With the margin m = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))
    and z = β·m = r̂(y_w) − r̂(y_l):
    loss = −(1 − ε) log σ(z) − ε log σ(−z) = (1 − ε)·softplus(−z) + ε·softplus(z),
    the negative log-likelihood of the preference under Bradley–Terry
    (P(y_w ≻ y_l) = σ(r̂(y_w) − r̂(y_l))), in which Z(x) cancels. With label
    smoothing ε ∈ [0, ½) the label is flipped with probability ε (conservative
    DPO, TRL's ``loss_type="sigmoid"`` with ``label_smoothing``); ε = 0 is
    −log σ(z) = softplus(−z).

Inputs
------
Each log-probability argument is an array of log-probabilities (<= 0; positive
values up to :func:`klspec.reference.validation.sum_tolerance` of its dtype are
accepted as rounding), one per pair; the four broadcast by numpy's rules and the
result has the broadcast shape (a numpy float64 for 0-d). NaN and +inf are
errors. −inf is a response of probability 0, and the loss is its limit: z = −inf
(log π(y_w) = −inf or log π_ref(y_l) = −inf) gives +inf; z = +inf
(log π(y_l) = −inf or log π_ref(y_w) = −inf) gives 0, or +inf for ε > 0. A pair
with −inf on both sides (e.g. log π(y_w) = log π(y_l) = −inf) has no margin
(∞ − ∞) and is an error naming both arguments and the position. ``beta`` is one
finite real number > 0, ``label_smoothing`` one real number in [0, ½).
float16/float32/integer input is computed in float64 from its exact values;
the result is float64. Inputs are never modified.

Accuracy (tests/test_preference.py, against mpmath at 60 digits; ε_64 = 2**-52)
---------------------------------------------------------------------------------
The truth is the loss of the exact real margin of the four float64 inputs and the
exact β and ε given. The relative error is at most 4·ε_64 (8.9e-16) for every
margin, β and ε, or one unit 2**-1074 where the loss is below the normal range
(z > 708 with ε = 0: e^{−z} is subnormal, and 0 beyond 745.1 where the
truth is below half the smallest subnormal). No condition number enters: the
loss's sensitivity to z is |z| for large z (e^{−z}), so z is formed to ~2**-100
relative, never rounded to float64 before the loss is taken. The 4·ε_64 is exp
and log1p (<= 1 ulp each) and the first-order correction, the product w·|z| and
the final sum (<= 1.5·ε_64 together), rounded up. The worst measured
error over the test sweeps is 0.79 ε_64 (``python tests/test_preference.py``).
``dpo_implicit_reward`` is within half an ulp plus 2**-100 relative (correctly
rounded but for near-ties; a subnormal reward within one unit 2**-1074).

How (numerics)
--------------
* The margin. m = (lc − rc) + (rr − lr) is formed exactly with TwoSum: each
  difference (its parts have opposite signs: no overflow), then their sum, then
  the rounding errors; where a sum cancels it is exact (Sterbenz), so the
  double-double m_hi + m_lo is within 2**-100·|m| of m even when the sums of
  hundreds of log-probabilities agree to the last digits. Where (lc − rc) + (rr − lr)
  overflows, the four inputs are scaled by ¼ (exact at that size).
* z = β·m by Dekker's TwoProduct, directly where β and every nonzero |m| of a
  block lie in [2**-300, 2**300] (and ε = 0 or ε >= 2**-300). Elsewhere ("careful"
  blocks) on mantissas: β = b·2^e, m_hi = a·2^f and the product b·a, so neither a
  huge β or margin nor a tiny one overflows or underflows; |z| is carried as
  (A_hi + A_lo)·2^E with A in [¼, 1), and w·|z| likewise with w's mantissa.
* The loss is written as two non-negative parts, w·|z| + log1p(e^{−|z|}) with
  w = ε for z >= 0 and w = 1 − ε (double-double) for z < 0: nothing cancels and
  nothing overflows (|z| = 1e4 or 1e300 gives w·|z|, never inf where it is finite).
  log1p(e^{−|z|}) is taken at the high part and corrected to first order by
  −σ(−|z|)·(low part): for |z| = 700 the low part is ~1e-14, a relative change the
  loss would otherwise lose. Above |z| = 700, e^{−|z|} is computed as
  e^{−(|z| − 200 ln 2)}·2^-200 (200·ln 2 split exactly), so a subnormal result is
  rounded once, in the last step.
* Arrays are processed in blocks of 2**13 pairs (numpy's buffered iterator: other
  dtypes and broadcast or strided layouts are converted block by block), so a call
  holds about 1.3 MB beyond its result however many pairs it has (no float64 copy of
  a float32 input either). 10^7 pairs take ~2.2× a naive
  ``np.logaddexp(0, -beta * m)`` on the 2-core test machine (careful blocks ~2.5×).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference.exact_arithmetic import two_prod, two_sum
from klspec.reference.validation import (
    _as_real_array,
    _check_float64_range,
    _first_clash,
    _position,
    _raise_at_first,
    own_error_state,
    real_scalar,
    sum_tolerance,
)

__all__ = ["dpo_implicit_reward", "dpo_loss"]

#: Pairs per block: 64 KiB per float64 temporary. Measured on the 2-core test machine
#: (10^7 pairs): ~2× a naive ``np.logaddexp(0, -beta*m)`` at 2**13, 3.4× at 2**16,
#: where each of the kernel's ~40 temporaries is a fresh mmap of 512 KiB, page faults
#: and all (glibc hands out blocks above 128 KiB that way).
CHUNK = 1 << 13

# ln 2 = _LN2_HI + _LN2_LO (fdlibm's split): _LN2_HI has 32 significant bits, so
# 200·_LN2_HI is exact.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# 2**27 + 1: Dekker's splitting constant.
_SPLITTER = 134217729.0
# Above this |z|, e^{-|z|} is near or below the normal range: computed at scale 2**200.
_SCALED_EXP = 700.0
_SCALE_EXP = 200

_NAMES = ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected")


@own_error_state
def dpo_loss(
    logp_chosen: ArrayLike,
    logp_rejected: ArrayLike,
    ref_logp_chosen: ArrayLike,
    ref_logp_rejected: ArrayLike,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> np.float64 | np.ndarray:
    """The DPO loss per preference pair: −(1 − ε) log σ(β·m) − ε log σ(−β·m).

    m = (logp_chosen − ref_logp_chosen) − (logp_rejected − ref_logp_rejected) is the
    margin of implicit rewards over β, and ε = ``label_smoothing``.

    Parameters
    ----------
    logp_chosen, logp_rejected : array_like
        log π(y_w | x), log π(y_l | x): the policy's log-probabilities of the whole
        chosen and rejected responses (sums over their tokens), <= 0.
    ref_logp_chosen, ref_logp_rejected : array_like
        The same under the reference policy π_ref. The four arrays broadcast.
    beta : float
        The KL coefficient β, finite and > 0 (DPO's usual 0.1 to 0.5).
    label_smoothing : float
        ε in [0, ½): the probability that a preference label is flipped (cDPO).

    Returns
    -------
    numpy.float64 or numpy.ndarray
        One loss per pair, float64 of the broadcast shape (a scalar for 0-d input):
        > 0, log 2 at m = 0, → 0 (ε = 0) or ≈ ε·β·m (ε > 0) as m → +∞, ≈ (1 − ε)·β·|m|
        as m → −∞; +inf only where a log-probability of −inf makes it so (module
        docs) or the loss exceeds 1.8e308. Within 4 units of 2**-52 relative of the
        exact loss of the inputs (module docs).

    Raises
    ------
    TypeError, ValueError
        Naming the argument, the problem and the position: a log-probability that
        is NaN, +inf or > 0, a non-numeric argument, shapes that do not broadcast,
        −inf on both sides of a pair, β not finite and > 0, ε outside [0, ½).
    """
    arrays = [
        _log_probs(name, value)
        for name, value in zip(
            _NAMES, (logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected), strict=True
        )
    ]
    b = _positive_scalar("beta", beta)
    eps = _label_smoothing(label_smoothing)
    shape = _broadcast_shape(dict(zip(_NAMES, arrays, strict=True)))
    weights = _Weights(eps)

    def block(lc, lr, rc, rr, flat_index):
        return _loss_block(lc, lr, rc, rr, b, weights, flat_index, shape)

    return _scalar(_by_blocks(arrays, block))


@own_error_state
def dpo_implicit_reward(
    logp: ArrayLike, ref_logp: ArrayLike, *, beta: float
) -> np.float64 | np.ndarray:
    """DPO's implicit reward β·(log π(y) − log π_ref(y)), per response.

    ``logp`` and ``ref_logp`` are log-probabilities of whole responses (<= 0,
    broadcasting); ``beta`` is finite and > 0. The difference is formed exactly
    and multiplied by β in double-double, so the result is the exact value
    rounded once (within half an ulp, but for near-ties, and within one unit
    2**-1074 where the reward is subnormal): large nearly equal
    log-probabilities lose nothing. −inf in ``logp`` gives −inf, in ``ref_logp``
    +inf; in both at one position it is an error (∞ − ∞). Returns float64 of the
    broadcast shape (a scalar for 0-d input). The reward margin of a pair,
    ``reward(chosen) − reward(rejected)``, is the z of :func:`dpo_loss` (but
    rounded: :func:`dpo_loss` forms it exactly).
    """
    lp, rp = _log_probs("logp", logp), _log_probs("ref_logp", ref_logp)
    b = _positive_scalar("beta", beta)
    shape = _broadcast_shape({"logp": lp, "ref_logp": rp})

    def block(lp, rp, flat_index):
        return _reward_block(lp, rp, b, flat_index, shape)

    return _scalar(_by_blocks((lp, rp), block))


def _by_blocks(arrays, block) -> np.ndarray:
    """``block(*float64 pieces, flat_index)`` over the broadcast arrays, in C order.

    numpy's buffered iterator hands out pieces of at most CHUNK elements of each
    argument, converted to float64 (other dtypes, broadcast or strided layouts are
    copied piece by piece), and ``flat_index(j)`` is the C-order index in the
    broadcast shape of a piece's j-th element, for errors. Returns the new result.
    """
    n = len(arrays)
    it = np.nditer(
        [*arrays, None],
        flags=["external_loop", "buffered", "zerosize_ok"],
        op_flags=[["readonly"]] * n + [["writeonly", "allocate"]],
        op_dtypes=[np.float64] * (n + 1),
        order="C",
        casting="unsafe",  # longdouble: checked to be within the float64 range
        buffersize=CHUNK,
    )
    with it:
        for pieces in it:
            start = it.iterindex
            pieces[-1][...] = block(*pieces[:-1], lambda j, s=start: s + j)
        return it.operands[n]


def _reward_block(lp, rp, beta, flat_index, shape) -> np.ndarray:
    """β·(lp − rp) for one block: the exact difference times β in double-double."""
    lo_inf, ref_inf = np.isneginf(lp), np.isneginf(rp)
    infinite = lo_inf | ref_inf
    if infinite.any():
        both = lo_inf & ref_inf
        if both.any():
            index = np.unravel_index(flat_index(int(np.argmax(both))), shape)
            _raise_undefined_at(["logp", "ref_logp"], index, "log-ratio log π − log π_ref")
        lp, rp = np.where(infinite, 0.0, lp), np.where(infinite, 0.0, rp)
    d_hi, d_lo = two_sum(lp, -rp)
    if _moderate(np.abs(d_hi), beta):
        p, p_lo = _times_scalar(d_hi, beta)
        value = p + (p_lo + beta * d_lo)
    else:
        sign = np.where(d_hi < 0, -1.0, 1.0)
        a_hi, a_lo, e = _times_beta(sign * d_hi, sign * d_lo, beta)
        with np.errstate(over="ignore", under="ignore"):
            value = sign * np.ldexp(a_hi + a_lo, e)
    if infinite.any():
        value = np.where(lo_inf, -np.inf, np.where(ref_inf, np.inf, value))
    return value


# ------------------------------------------------------------------ the loss


class _Weights:
    """The weights of |z| by the sign of z: ε for z >= 0, 1 − ε (double-double) for z < 0.

    Each as a value with its low part, and as mantissa, exponent and the low part
    over 2**exponent, so that a tiny ε (even subnormal) multiplies |z| without
    underflow on the careful path.
    """

    def __init__(self, eps: float) -> None:
        self.eps = eps
        one_minus, one_minus_lo = (float(x) for x in two_sum(np.float64(1.0), np.float64(-eps)))
        self.pos, self.neg = (eps, 0.0), (one_minus, one_minus_lo)
        self.pos_m = (*math.frexp(eps), 0.0)
        m, e = math.frexp(one_minus)
        self.neg_m = (m, e, math.ldexp(one_minus_lo, -e))
        # The fast path multiplies by w directly (Dekker), which needs w = 0 or w >= 2**-300.
        self.moderate = eps == 0 or eps >= _MODERATE_LOW


# Where every nonzero |m|, β and ε is in [2**-300, 2**300], β·m and ε·β·|m| are
# computed by Dekker's product directly: nothing overflows or underflows.
_MODERATE_LOW, _MODERATE_HIGH = 2.0**-300, 2.0**300


def _loss_block(lc, lr, rc, rr, beta, weights, flat_index, shape) -> np.ndarray:
    """The loss of one block of pairs (float64 arrays of one length)."""
    m_hi, m_lo = _margin(lc, lr, rc, rr)
    k = None  # the margin is (m_hi + m_lo)·2**k where the plain sum overflowed
    infinite = None  # +1 / −1 where a −inf input makes z = ±inf
    bad = ~np.isfinite(m_hi)
    if bad.any():
        plus = np.isneginf(rc) | np.isneginf(lr)
        minus = np.isneginf(lc) | np.isneginf(rr)
        both = plus & minus
        if both.any():
            j = int(np.argmax(both))
            names = [n for n, x in zip(_NAMES, (lc, lr, rc, rr), strict=True) if np.isneginf(x[j])]
            index = np.unravel_index(flat_index(j), shape)
            _raise_undefined_at(names, index, "margin")
        infinite = np.where(plus, 1.0, np.where(minus, -1.0, 0.0))
        overflow = bad & ~plus & ~minus
        k = np.zeros(m_hi.shape, dtype=np.int64)
        if overflow.any():
            s_hi, s_lo = _margin(*(np.where(overflow, 0.25 * x, 0.0) for x in (lc, lr, rc, rr)))
            m_hi = np.where(overflow, s_hi, m_hi)
            m_lo = np.where(overflow, s_lo, m_lo)
            k = np.where(overflow, 2, 0)
        m_hi = np.where(infinite != 0, 0.0, m_hi)
        m_lo = np.where(infinite != 0, 0.0, m_lo)

    negative = m_hi < 0
    x_hi = np.abs(m_hi)
    x_lo = np.where(negative, -m_lo, m_lo)  # |m| = x_hi + x_lo
    moderate = k is None and weights.moderate and _moderate(x_hi, beta)
    if moderate:
        # |z| = β·|m| and t = w·|z| by Dekker's product, each to ~2**-104 relative.
        z_hi, z_lo = _times_scalar(x_hi, beta)
        z_lo = z_lo + beta * x_lo
        if weights.eps == 0:  # w = 1 for z < 0, 0 otherwise: t is |z| or 0, exactly
            t_hi = np.where(negative, z_hi, 0.0)
            t_lo = np.where(negative, z_lo, 0.0)
        else:
            w_hi = np.where(negative, weights.neg[0], weights.pos[0])
            w_lo = np.where(negative, weights.neg[1], weights.pos[1])
            t_hi, t_lo = two_prod(w_hi, z_hi)
            t_lo = t_lo + (w_hi * z_lo + w_lo * z_hi)
    else:
        z_hi, z_lo, t_hi, t_lo = _careful_products(x_hi, x_lo, negative, beta, weights, k)
    g = _log1p_exp_neg(z_hi, z_lo, far=float(z_hi.max(initial=0.0)) > _SCALED_EXP)

    with np.errstate(invalid="ignore"):  # t_hi = inf (the loss overflows): set below
        s, err = two_sum(t_hi, g)
        loss = s + (err + t_lo)
    if not moderate:
        loss = np.where(np.isinf(t_hi), t_hi, loss)
    if infinite is not None:
        at_plus = np.inf if weights.eps > 0 else 0.0
        loss = np.where(infinite > 0, at_plus, np.where(infinite < 0, np.inf, loss))
    return loss


def _moderate(x: np.ndarray, beta: float) -> bool:
    """Whether β and every nonzero entry of x >= 0 are within [2**-300, 2**300]."""
    if not _MODERATE_LOW <= beta <= _MODERATE_HIGH:
        return False
    if float(x.max(initial=0.0)) > _MODERATE_HIGH:
        return False
    return float(x.min(initial=1.0)) >= _MODERATE_LOW or not bool(
        ((x < _MODERATE_LOW) & (x > 0)).any()
    )


def _careful_products(x_hi, x_lo, negative, beta, weights, k):
    """|z| = β·|m| and t = w·|z| on mantissas, for β, m or ε anywhere in the float64 range.

    Returns z_hi, z_lo (|z| beyond 1.8e308 is given as 1e6, where log1p(e^{−|z|})
    is 0) and t_hi, t_lo (t_hi = inf where w·|z| overflows).
    """
    a_hi, a_lo, e = _times_beta(x_hi, x_lo, beta)  # |z| = (a_hi + a_lo)·2**e
    if k is not None:
        e = e + k
    w_m = np.where(negative, weights.neg_m[0], weights.pos_m[0])
    w_e = np.where(negative, weights.neg_m[1], weights.pos_m[1])
    w_lo = np.where(negative, weights.neg_m[2], weights.pos_m[2])
    p_hi, p_lo = two_prod(w_m, a_hi)
    p_lo = p_lo + (w_m * a_lo + w_lo * a_hi)
    with np.errstate(over="ignore", under="ignore"):
        t_hi = np.ldexp(p_hi, e + w_e)
        t_lo = np.where(np.isfinite(t_hi), np.ldexp(p_lo, e + w_e), 0.0)
        z_hi = np.ldexp(a_hi, e)
        z_lo = np.ldexp(a_lo, e)
    finite = np.isfinite(z_hi)
    return np.where(finite, z_hi, 1e6), np.where(finite, z_lo, 0.0), t_hi, t_lo


def _times_scalar(x: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct x·b with the scalar b split once."""
    c = _SPLITTER * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    p = x * b
    c = _SPLITTER * x
    x_hi = c - (c - x)
    x_lo = x - x_hi
    return p, ((x_hi * b_hi - p) + x_hi * b_lo + x_lo * b_hi) + x_lo * b_lo


def _margin(lc, lr, rc, rr) -> tuple[np.ndarray, np.ndarray]:
    """m = (lc − rc) + (rr − lr) as hi + lo, within ~2**-100·|m| (module docs).

    Each TwoSum below is exact; where a sum cancels its operands are within a
    factor 2 of each other and it is exact (Sterbenz), so its error term is 0 and
    the next level starts from exact values: the neglected roundings are always
    of order u² times the result, never u² times the inputs.
    """
    # Overflow and inf − inf (−inf inputs) give non-finite results: the caller redoes them.
    with np.errstate(over="ignore", invalid="ignore"):
        a1, e1 = two_sum(lc, -rc)
        a2, e2 = two_sum(rr, -lr)
        s, e3 = two_sum(a1, a2)
        t, e4 = two_sum(e1, e2)
        t2, e5 = two_sum(t, e3)
        h, h_lo = two_sum(s, t2)
        return two_sum(h, h_lo + (e4 + e5))


def _times_beta(x_hi, x_lo, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """β·(x_hi + x_lo) for x_hi >= 0 as (a_hi + a_lo)·2**e, a_hi in [1/4, 1) or 0.

    On mantissas (x_hi = m·2^f, β = b·2^g): Dekker's product b·m cannot overflow
    or underflow, so β and x may each be anywhere in the float64 range.
    """
    b_m, b_e = math.frexp(beta)
    x_m, x_e = np.frexp(x_hi)
    with np.errstate(under="ignore"):
        lo_scaled = np.ldexp(x_lo, -x_e)
    p, p_err = two_prod(x_m, np.full_like(x_m, b_m))
    q = p_err + b_m * lo_scaled
    a_hi = p + q
    a_lo = q - (a_hi - p)  # FastTwoSum: |p| >= |q|
    return a_hi, a_lo, x_e.astype(np.int64) + b_e


def _log1p_exp_neg(a_hi: np.ndarray, a_lo: np.ndarray, *, far: bool) -> np.ndarray:
    """log1p(e^{−a}) for a = a_hi + a_lo >= 0 (finite), to a few ulps; subnormal when tiny.

    At a_hi, corrected to first order by −σ(−a)·a_lo. Above _SCALED_EXP, where
    log1p(e^{−a}) = e^{−a} to 1e-300 relative, e^{−a} is e^{−(a − 200 ln 2)}·2^-200
    (the shift exact in double-double), so that it is rounded to the subnormal grid
    once, by ldexp. ``far=False`` promises that no a_hi is above _SCALED_EXP.
    """
    if not far:
        t = np.exp(-a_hi)
        return np.log1p(t) - (t / (1.0 + t)) * a_lo
    shift = np.where(a_hi > _SCALED_EXP, float(_SCALE_EXP), 0.0)
    d_hi, d_lo = two_sum(a_hi, -shift * _LN2_HI)
    # 200·ln2_lo is 3.8e-8: fold it into d_hi, so that the first-order correction
    # below only ever sees a low part below one ulp of d_hi.
    d_hi, d_lo = two_sum(d_hi, d_lo + (a_lo - shift * _LN2_LO))
    with np.errstate(under="ignore"):
        t = np.exp(-d_hi)
        near = np.log1p(t) - (t / (1.0 + t)) * d_lo
        return np.where(shift > 0, np.ldexp(t - t * d_lo, -_SCALE_EXP), near)


# ------------------------------------------------------------------ validation


def _log_probs(name: str, value: ArrayLike) -> np.ndarray:
    """The log-probabilities as an array, validated: NaN, +inf and values > 0 (beyond
    rounding) refused, −inf allowed (probability 0).

    The array keeps its dtype (blocks are converted to float64 as they are read) and
    may be the caller's own: it is never written to.
    """
    arr = _as_real_array(name, value, what="log-probabilities")
    tol = sum_tolerance(arr.dtype)
    top = arr.max() if arr.size else -np.inf  # NaN if any entry is NaN
    if not top <= tol:
        with np.errstate(over="ignore"):  # longdouble beyond 1.8e308: reported as such
            x = np.asarray(arr, dtype=np.float64)
        if arr.dtype.kind == "f":
            rule = "log-probabilities must be numbers <= 0"
            _raise_at_first(name, arr, np.isnan(arr), lambda v: "NaN", rule)
            _raise_at_first(name, arr, np.isposinf(arr), lambda v: "+inf", rule)
        _raise_at_first(
            name,
            arr,
            x > tol,
            lambda v: f"positive ({_shown_number(v)})",
            "log-probabilities must be <= 0 (were probabilities or logits passed?)",
        )
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        with np.errstate(over="ignore"):
            x = np.asarray(arr, dtype=np.float64)
        _check_float64_range(name, arr, x, "log-probabilities must be within the float64 range")
    return arr


def _shown_number(v: object) -> str:
    text = str(v)
    return text[:-2] if text.endswith(".0") else text


def _positive_scalar(name: str, value: object) -> float:
    """β: a real number (not bool), finite and > 0; returned as a float."""
    x = real_scalar(
        value, f"{name} must be a real number (the KL coefficient of DPO), got {value!r}"
    )
    if not (math.isfinite(x) and x > 0):
        raise ValueError(
            f"{name}={value} is not a valid KL coefficient; use a finite {name} > 0 "
            "(DPO commonly uses 0.1 to 0.5)"
        )
    return x


def _label_smoothing(value: object) -> float:
    """ε: a real number (not bool) in [0, 1/2); returned as a float (−0 as 0)."""
    x = real_scalar(
        value,
        "label_smoothing must be a real number in [0, 0.5) (the probability that "
        f"a preference label is flipped), got {value!r}",
    )
    if not 0 <= x < 0.5:
        raise ValueError(
            f"label_smoothing={value} is outside [0, 0.5); it is the probability that a "
            "preference label is flipped (0 for plain DPO; at 0.5 the loss ignores the labels)"
        )
    return x + 0.0


def _broadcast_shape(named: dict[str, np.ndarray]) -> tuple[int, ...]:
    shapes = {name: x.shape for name, x in named.items()}
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        a, b = _first_clash(shapes)
        raise ValueError(
            f"the shapes of {a} {shapes[a]} and {b} {shapes[b]} do not broadcast"
        ) from None


def _raise_undefined_at(names: list[str], index: tuple, what: str) -> None:
    where = "" if not index else f" at {_position('', index)} of the broadcast shape"
    every = "both" if len(names) == 2 else "all"
    raise ValueError(
        f"{', '.join(names[:-1])} and {names[-1]} are {every} -inf{where}: "
        f"the {what} is inf − inf, undefined (it has no limit there); "
        "drop the pair, or check how its log-probabilities were computed"
    )


def _scalar(x: np.ndarray) -> np.float64 | np.ndarray:
    """A float64 array the caller owns, −0 made +0 in place; a numpy float64 for 0-d."""
    x += 0.0
    return x[()] if x.ndim == 0 else x
