r"""Entropy, cross-entropy and KL divergence, exact in every numerical regime.

What is computed
----------------
Floating-point probability vectors sum to 1 only up to rounding, so the
reference treats validated inputs ``p`` and ``q`` as the distributions
``P = p / Σp`` and ``Q = q / Σq`` (see docs/design.md) and returns

* ``entropy(p)``           H(P)    = −Σ P_i log P_i
* ``cross_entropy(p, q)``  H(P, Q) = −Σ P_i log Q_i
* ``kl_divergence(p, q)``  KL(P‖Q) = Σ P_i log(P_i / Q_i)

with the conventions 0·log(0/q) = 0 for every q ≥ 0 and p·log(p/0) = +∞ for p > 0.
Results are in nats; ``base=b`` divides by ln b (``base=2`` gives bits).

Accuracy
--------
The result is within a few units in the last place of the exact value for the
normalised inputs: below 1e-15 relative error in every regime we test against
mpmath at 50+ digits (nearly equal distributions down to KL ≈ 1e-30, zeros,
subnormal probabilities, 300 decades of dynamic range, supports of 10^6
outcomes). KL is never negative and is exactly 0 when p ∝ q. Results that
underflow (KL below ~1e-308) lose relative accuracy like any float64 value.

Speed and memory
----------------
All three functions make one pass over their inputs in cache-sized blocks, on
every core, with a few MB of memory whatever the input size, and
check the values (rule 6-7 of :mod:`klspec.reference.validation`) on the way:
see :mod:`klspec.reference._chunked` for the identities that pass uses and the
certificate with which each row either vouches for its accuracy or is recomputed
by a second pass at about the same cost, or, where that cannot vouch for it
either, by the exact method described next (in groups of 2^14 elements, rows over
2^14 outcomes in two passes over pieces, so memory stays bounded). Beyond the
result itself (8 bytes a row) memory is a few MB for any batch shape.
``docs/performance.md`` has the numbers.

How (KL, the exact path)
------------------------
Write r_i = P_i/Q_i = (p_i Σq)/(q_i Σp) and s_i = (r_i − 1)/(r_i + 1), i.e.

    s_i = (p_i Σq − q_i Σp) / (p_i Σq + q_i Σp)   ∈ [−1, 1].

Each term of KL, after adding 0 = Σ (Q_i − P_i), is non-negative:

    P_i log r_i − P_i + Q_i = (P_i − Q_i) · s_i · (1 + s_i (1 + s_i) B(s_i)),
    B(s) = (atanh s − s)/s³ = Σ_k s^{2k}/(2k+3).

The numerator p_i Σq − q_i Σp is computed exactly (Dekker products against the
double-double sums) — that is where every literal implementation loses all its
digits once KL < 1e-14 — and B comes from its series for |s| ≤ 1/2 (no
cancellation at all) or from atanh s = ½ log r beyond. Summing non-negative
terms in double-double then cannot lose accuracy.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference import _chunked
from klspec.reference.exact_arithmetic import dd_sum, two_prod, two_sum
from klspec.reference.validation import (
    own_error_state,
    prepare_distributions,
    sum_tolerance,
    validate_base,
    validate_distributions,
)

# Scale inputs by 2**600 before forming products: subnormal probabilities become
# normal numbers and Dekker's TwoProduct stays exact (p <= 1 + tol, so no overflow).
_SCALE_EXP = 600
# B(s) = Σ_k s^{2k}/(2k+3) is summed from its series where |s| <= 1/2.
_SERIES_LIMIT = 0.5
_MAX_TERMS = 28  # enough for s² = 1/4 (tail < 2**-60)


@own_error_state
def entropy(p: ArrayLike, *, axis: int = -1, base: float | None = None) -> np.float64 | np.ndarray:
    """Shannon entropy H(P) = −Σ P_i log P_i of the distribution along ``axis``.

    Parameters
    ----------
    p : array_like of real numbers
        Probabilities along ``axis``; every other axis is a batch. Must be
        non-negative and finite, and sum to 1 within
        :func:`klspec.reference.validation.sum_tolerance` of its dtype. It is
        treated as the distribution ``p / p.sum(axis)``. Outcomes with
        p_i = 0 contribute 0.
    axis : int
        The axis holding the outcomes.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits, any finite base > 0
        and != 1.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        float64 whatever the input dtype (float16/float32 are computed in
        float64); a scalar for 1-D input, else an array of the batch shape.
        Always ``0 <= H <= log(n)``.

    Raises
    ------
    TypeError, ValueError
        For invalid input, naming the argument, the problem and the position.
    """
    return _evaluate(
        {"p": p},
        axis,
        base,
        _chunked.plogx_groups,
        _entropy_nats,
        _entropy_long,
        again=_chunked.plogx_again,
    )


@own_error_state
def cross_entropy(
    p: ArrayLike, q: ArrayLike, *, axis: int = -1, base: float | None = None
) -> np.float64 | np.ndarray:
    """Cross-entropy H(P, Q) = −Σ P_i log Q_i = H(P) + KL(P‖Q).

    ``+inf`` when some q_i = 0 < p_i. Parameters, validation and result type as
    for :func:`kl_divergence`. Computed as C/Σp + log Σq with C = −Σ p_i log q_i
    (every term non-negative) and Σq summed exactly; rows where that could lose
    digits are recomputed as H(P) + KL(P‖Q), both non-negative and exact.
    """
    return _evaluate(
        {"p": p, "q": q},
        axis,
        base,
        _chunked.plogx_groups,
        _cross_entropy_exact,
        _cross_entropy_long,
        again=_chunked.plogx_again,
    )


@own_error_state
def kl_divergence(
    p: ArrayLike, q: ArrayLike, *, axis: int = -1, base: float | None = None
) -> np.float64 | np.ndarray:
    """Kullback–Leibler divergence KL(P‖Q) = Σ P_i log(P_i / Q_i).

    P (``p``, the data / target) is the distribution the expectation is taken
    under; Q (``q``, the model) is the one being compared with it.

    Parameters
    ----------
    p, q : array_like of real numbers
        Probabilities along ``axis``; other axes are batch axes, which
        broadcast against each other by numpy's rules. The support axis never
        broadcasts: p and q must have the same number of outcomes. Each
        distribution must be non-negative, finite and sum to 1 within
        :func:`klspec.reference.validation.sum_tolerance` of its dtype; it is
        treated as ``p / p.sum(axis)`` (likewise q).
    axis : int
        The axis holding the outcomes.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits, any finite base > 0
        and != 1.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        float64 whatever the input dtype; a scalar for 1-D inputs, else an
        array of the broadcast batch shape. Never negative; exactly 0 when
        p ∝ q; ``+inf`` when some q_i = 0 < p_i. Outcomes with p_i = 0
        contribute 0 whatever q_i is. Relative error below 1e-15 against the
        exact value (see the module docs).

    Raises
    ------
    TypeError, ValueError
        For invalid input, naming the argument, the problem and the position
        (e.g. ``q[3, 17] is negative``). The arguments are never modified.
    """
    return _evaluate(
        {"p": p, "q": q},
        axis,
        base,
        _chunked.kl_divergence_groups,
        _kl_nats,
        _kl_long,
        again=_chunked.kl_again,
    )


# Rows the fast path cannot certify get the second pass in groups of about this many
# elements (gathered copies of the rows: a few MB).
_AGAIN_GROUP = 1 << 17
# Rows the second pass cannot certify either (rare: careful blocks) are recomputed
# exactly in groups of about this many elements (the exact path's temporaries peak at
# ~20 times its input: 325 MB measured for a row of 2^21 float64).
_EXACT_GROUP = 1 << 14
# How close to the sum tolerance a row sum may come before the full validator,
# which sums exactly as it documents, decides.
_SUM_MARGIN = 1e-12


def _evaluate(named, axis, base, fast, exact, exact_long, again=None) -> np.float64 | np.ndarray:
    """Validate, run the chunked fast path, redo uncertified rows, finish.

    The fast path delivers bounded groups of rows; each group is checked, and its
    uncertified rows get the second pass of :mod:`klspec.reference._chunked` (gathered
    ``_AGAIN_GROUP`` elements at a time, or a long row on its own), and rows that pass
    cannot certify get the exact path. The only array that grows with the batch is
    the result.
    """
    arrays, batch = prepare_distributions(named, axis=axis)
    try:
        log_base = validate_base(base)
    except (TypeError, ValueError):
        validate_distributions(named, axis=axis)  # errors in the data are reported first
        raise
    if 0 in batch:  # an empty batch, e.g. (0, n): no rows, an empty result
        return np.zeros(batch)
    n = arrays[0].shape[-1]
    values = np.empty(math.prod(batch))
    checked = False  # the full validator has run (and passed) already

    def rows_of(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The rows (flat indices, increasing) of every array: a copy, or a view of a run."""
        if len(batch) == 1 and rows[-1] - rows[0] + 1 == rows.size:
            return tuple(a[rows[0] : rows[-1] + 1] for a in arrays)
        index = np.unravel_index(rows, batch) if batch else (None,)
        return tuple(a[index] for a in arrays)

    def exactly(rows: np.ndarray) -> None:
        if n > _LONG_ROW:  # row by row, in pieces: memory stays bounded
            for row in rows:
                index = np.unravel_index(row, batch) if batch else ()
                values[row] = exact_long(*(a[index] for a in arrays))
            return
        step = max(1, _EXACT_GROUP // n)
        for start in range(0, rows.size, step):
            part = rows_of(rows[start : start + step])
            values[rows[start : start + step]] = exact(
                *(np.asarray(a, dtype=np.float64) for a in part)
            )

    def second_pass(rows: np.ndarray, measured: tuple[np.ndarray, ...]) -> None:
        step = max(1, _AGAIN_GROUP // n)
        for start in range(0, rows.size, step):
            some = rows[start : start + step]
            if n >= _AGAIN_GROUP:  # one long row: views, no copy
                index = np.unravel_index(some[0], batch) if batch else ()
                part = tuple(a[index] for a in arrays)
            else:
                part = rows_of(some)
            again_rows = tuple(m[start : start + step] for m in measured)
            for g0, g1, result in again(part, again_rows):
                values[some[g0:g1]] = result["value"]
                if not result["certified"].all():
                    exactly(some[g0:g1][~result["certified"]])

    outer = np.geterr()
    with np.errstate(all="ignore"):  # invalid values are reported by validation below
        for g0, g1, result in _groups(fast(arrays), values.size):
            if not checked and not _values_are_valid(arrays, result):
                with np.errstate(**outer):
                    validate_distributions(named, axis=axis)  # raises, naming the entry
                checked = True
            values[g0:g1] = result["value"]
            uncertified = ~result["certified"]
            if not uncertified.any():
                continue
            if again is None:  # a caller without a second pass: the exact path
                exactly(g0 + np.flatnonzero(uncertified))
            else:
                measured = tuple(m[uncertified] for m in result["again"])
                second_pass(g0 + np.flatnonzero(uncertified), measured)
    return _finish(values.reshape(batch), log_base)


def _groups(results, rows: int):
    """``fast``'s groups; a ``fast`` that returns one result for all rows is one group."""
    return [(0, rows, results)] if isinstance(results, dict) else results


def _values_are_valid(arrays, result) -> bool:
    """Rules 6-7 from what the pass measured: no negative or NaN entry, sums near 1."""
    if not all(lowest >= 0 for lowest in result["lowest"].values()):  # NaN fails too
        return False
    for sums, a in zip(result["sums"].values(), arrays, strict=True):
        tolerance = sum_tolerance(a.dtype) - _SUM_MARGIN
        if not np.all(np.abs(sums - 1.0) <= tolerance):  # NaN and inf fail too
            return False
    return True


def _cross_entropy_exact(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return _entropy_nats(p) + _kl_nats(p, q)


def _finish(nats: np.ndarray, log_base: float | None) -> np.float64 | np.ndarray:
    """In place (``nats`` is the result): to ``base``, and -0.0 to +0.0."""
    if log_base is not None:
        np.divide(nats, log_base, out=nats)
    np.add(nats, 0.0, out=nats)  # + 0.0 turns a -0.0 (e.g. -1 * log1p(0)) into +0.0
    return nats[()] if nats.ndim == 0 else nats


def _entropy_nats(p: np.ndarray) -> np.ndarray:
    """H(P) for float64 ``p`` of shape (..., n), validated."""
    s_hi, s_lo = dd_sum(p)
    return _entropy_finish((s_hi, s_lo), _entropy_terms(p, s_hi, s_lo))


def _entropy_terms(p: np.ndarray, s_hi: np.ndarray, s_lo: np.ndarray) -> tuple:
    """Σ −P_i log P_i · Σp · 2**600 over the last axis, as (hi, lo), given Σp = s_hi + s_lo."""
    s_hi, s_lo = s_hi[..., None], s_lo[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        # log P_i for P_i > 1/2 from log1p of P_i − 1 = (p_i − Σp)/Σp: the
        # subtraction is exact (Sterbenz), so H stays accurate when one outcome
        # carries almost all the mass [entropy.definition, entropy.special.one_hot].
        near_one = np.log1p(((p - s_hi) - s_lo) / s_hi)
        # Elsewhere |log P_i| > log 2 and log p_i − log Σp cannot cancel.
        log_sum = np.log1p((s_hi - 1.0) + s_lo)
        far = np.log(p) - log_sum
        log_P = np.where(p > 0.5 * s_hi, near_one, far)
        # Scaled by 2**600 so subnormal p_i give normal terms and an entropy that
        # underflows is rounded once, at the end [entropy.definition].
        terms = np.where(p > 0, -np.ldexp(p, _SCALE_EXP) * log_P, 0.0)
    return dd_sum(terms)


def _entropy_finish(sums: tuple, terms: tuple) -> np.ndarray:
    (s_hi, s_lo), (h_hi, h_lo) = sums, terms
    return np.ldexp((h_hi + h_lo) / (s_hi + s_lo), -_SCALE_EXP)


def _kl_nats(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(P‖Q) for float64 ``p``, ``q`` of equal shape (..., n), validated."""
    sums = _kl_row_sums(p, q)
    return _kl_finish(sums, _kl_terms(p, q, sums))


def _kl_row_sums(p: np.ndarray, q: np.ndarray) -> tuple:
    """(Σp, Σq, Σ(p−q)·2**600) over the last axis, each double-double (hi, lo)."""
    d_hi, d_lo = two_sum(np.ldexp(p, _SCALE_EXP), -np.ldexp(q, _SCALE_EXP))
    return dd_sum(p), dd_sum(q), dd_sum(np.concatenate((d_hi, d_lo), axis=-1))


def _kl_terms(p: np.ndarray, q: np.ndarray, sums: tuple) -> tuple:
    """Σ terms (hi, lo) and whether some q_i = 0 < p_i, given the rows' sums."""
    (sp_hi, sp_lo), (sq_hi, sq_lo), (big_hi, big_lo) = (
        (hi[..., None], lo[..., None]) for hi, lo in sums
    )
    ps = np.ldexp(p, _SCALE_EXP)
    qs = np.ldexp(q, _SCALE_EXP)

    # num = p_i Σq − q_i Σp, the hazard every literal Σ p log(p/q) hits on nearly
    # equal inputs [kl.nonnegative, kl.zero_iff_equal], as p_i·D + (p_i − q_i)·Σp with
    # D = Σq − Σp = −Σ(p_j − q_j): the differences are exact (hi + lo), D is summed
    # from them, and both products are exact. The error is then ~2**-106 of
    # |p_i·D| + |(p_i − q_i)·Σp|, not of p_i·Σq: that matters when p is nearly
    # proportional to q, where num is far below p_i·Σq·2**-53.
    d_hi, d_lo = two_sum(ps, -qs)
    dd_hi, dd_lo = np.ldexp(-big_hi, -_SCALE_EXP), np.ldexp(-big_lo, -_SCALE_EXP)
    u1, u2 = two_prod(ps, dd_hi)
    v1, v2 = two_prod(d_hi, sp_hi)
    h, e = two_sum(u1, v1)
    num = h + ((e + (u2 + v2)) + ((ps * dd_lo + d_hi * sp_lo) + d_lo * sp_hi))
    a1 = ps * sq_hi
    den = (a1 + qs * sp_hi) + (ps * sq_lo + qs * sp_lo)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = num / den
        one_plus_s = 2.0 * a1 / den  # 1 + s without cancellation as s → −1
        g = s * _bracket(s, one_plus_s, ps, qs, sp_hi, sp_lo, sq_hi, sq_lo)
        # p_i = 0: the term is Q_i (g = −1); p_i = q_i = 0: no term at all.
        g = np.where(p == 0, -1.0, g)
        terms = np.where((p == 0) & (q == 0), 0.0, num * g)
        infinite = ((p > 0) & (q == 0)).any(axis=-1)
        terms = np.where(np.isfinite(terms), terms, 0.0)
    return (*dd_sum(terms), infinite)


def _kl_finish(sums: tuple, terms: tuple) -> np.ndarray:
    (sp_hi, sp_lo), (sq_hi, sq_lo), _ = sums
    t_hi, t_lo, infinite = terms
    scale = (sp_hi * sq_hi) * (1.0 + (sp_lo / sp_hi + sq_lo / sq_hi))
    kl = np.ldexp((t_hi + t_lo) / scale, -_SCALE_EXP)
    return np.where(infinite, np.inf, kl)


# Rows longer than this are recomputed exactly in pieces of this many elements, in two
# passes (the rows' sums, then the terms), so the exact path's temporaries stay small.
_LONG_ROW = 1 << 14


def _pieces(*rows: np.ndarray):
    """float64 pieces of _LONG_ROW elements of 1-D rows, each shaped (1, m)."""
    n = rows[0].shape[-1]
    for c0 in range(0, n, _LONG_ROW):
        yield tuple(np.asarray(r[c0 : c0 + _LONG_ROW], dtype=np.float64)[None, :] for r in rows)


def _dd_add(acc: tuple | None, value: tuple) -> tuple:
    """Sum of double-doubles (hi, lo) of scalars/arrays; ``None`` starts a sum."""
    if acc is None:
        return value
    hi, e = two_sum(acc[0], value[0])
    return hi, acc[1] + value[1] + e


def _kl_long(p: np.ndarray, q: np.ndarray) -> float:
    """_kl_nats of one long row, two passes over pieces."""
    sums = None
    for pc, qc in _pieces(p, q):
        part = _kl_row_sums(pc, qc)
        sums = (
            part if sums is None else tuple(_dd_add(a, b) for a, b in zip(sums, part, strict=True))
        )
    total, infinite = None, False
    for pc, qc in _pieces(p, q):
        t_hi, t_lo, inf = _kl_terms(pc, qc, sums)
        total, infinite = _dd_add(total, (t_hi, t_lo)), infinite | inf
    return float(_kl_finish(sums, (*total, infinite))[0])


def _entropy_long(p: np.ndarray) -> float:
    """_entropy_nats of one long row, two passes over pieces."""
    sums = None
    for (pc,) in _pieces(p):
        sums = _dd_add(sums, dd_sum(pc))
    total = None
    for (pc,) in _pieces(p):
        total = _dd_add(total, _entropy_terms(pc, *sums))
    return float(_entropy_finish(sums, total)[0])


def _cross_entropy_long(p: np.ndarray, q: np.ndarray) -> float:
    return _entropy_long(p) + _kl_long(p, q)


def _bracket(s, one_plus_s, ps, qs, sp_hi, sp_lo, sq_hi, sq_lo) -> np.ndarray:
    """1 + s(1+s)·B(s), which lies in [0.9, ∞): no cancellation is possible."""
    x = s * s
    small = np.abs(s) <= _SERIES_LIMIT
    b = _b_series(np.where(small, x, 0.0), x_max=float(x[small].max(initial=0.0)))
    out = 1.0 + s * one_plus_s * b
    if not small.all():
        # |s| > 1/2: B(s) = (atanh s − s)/s³ with atanh s = ½ log r, r = P_i/Q_i,
        # taken from p_i/q_i directly (s has lost r's digits as |s| → 1).
        big = ~small & np.isfinite(s)
        idx = np.nonzero(big)
        pb, qb = ps[idx], qs[idx]
        ratio = pb / qb
        ok = (ratio > np.finfo(np.float64).tiny) & np.isfinite(ratio)
        log_ratio = np.where(
            ok, np.log(np.where(ok, ratio, 1.0)), np.log(pb) - np.log(np.where(qb > 0, qb, 1.0))
        )
        sp = np.broadcast_to(sp_hi, s.shape)[idx]
        delta = (
            (np.broadcast_to(sq_hi, s.shape)[idx] - sp)
            + (np.broadcast_to(sq_lo, s.shape)[idx] - np.broadcast_to(sp_lo, s.shape)[idx])
        ) / sp
        atanh = 0.5 * (log_ratio + np.log1p(delta))
        sb = s[idx]
        out[idx] = 1.0 + one_plus_s[idx] * (atanh - sb) / (sb * sb)
    return out


def _b_series(x: np.ndarray, x_max: float) -> np.ndarray:
    """B = Σ_k x^k/(2k+3), x = s² <= 1/4, by Horner with just enough terms for x_max."""
    terms = 1
    # Tail after `terms` terms is < x^terms/((2·terms+3)(1−x)); stop below 2**-60.
    while terms < _MAX_TERMS and x_max**terms / ((2 * terms + 3) * (1 - x_max)) > 2.0**-60:
        terms += 1
    b = np.full_like(x, 1.0 / (2 * terms + 1))
    for k in range(terms - 2, -1, -1):
        b = b * x + 1.0 / (2 * k + 3)
    return b
