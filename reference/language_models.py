r"""KL for language models: per-token KL from logits and the sampled-token estimators.

``token_kl(logits_p, logits_q)``
    KL(softmax(logits_p) ‖ softmax(logits_q)) at every position, over the
    vocabulary axis. Exact (relative error of a few ulps, like
    :func:`klspec.reference.kl_divergence`), never negative, exactly 0 for equal
    logits, unchanged by adding a constant to a row of logits, accurate for
    nearly equal logits (where float32 log_softmax + kl_div returns negative
    values). A logit of −inf is a token with probability 0: its term is 0 in P
    whatever Q gives it, and KL is +inf where Q bans a token P allows. Any finite
    logits, up to ±1.8e308 (where their differences overflow float64), give
    the exact value, overflowing only where it exceeds float64.

``sequence_log_prob(token_logprobs, mask)``, ``sequence_log_ratio(logp, ref_logp, mask)``
    The per-token sums behind log π(y|x) and log π(y|x)/π_ref(y|x), with padding
    selected out (never multiplied by 0, which turns a −inf into NaN) and summed
    exactly.

``kl_estimate(logp, ref_logp, estimator)``
    Schulman's per-sample estimators of KL(π‖π_ref) from the log-probabilities of
    tokens *sampled from π*: with d = ref_logp − logp = log r,
    k1 = −d, k2 = d²/2, k3 = (r − 1) − log r. k3 is evaluated without
    cancellation for tiny d and overflows only where its true value does.

How (token_kl)
--------------
With t_i = log(P_i/Q_i) the per-token term is, as in ``kl_divergence``,

    P_i log r_i − P_i + Q_i = (P_i − Q_i) · s_i · (1 + s_i (1 + s_i) B(s_i)) >= 0,

with r_i = e^{t_i} and s_i = tanh(t_i/2). Here t_i comes straight from the logits:
t_i = d_i − c with d_i = (a_i − b_i) − (a_j − b_j) centred on the most likely token
j of Q (so a constant added to a row cancels exactly) and
c = log Σ_i Q_i e^{d_i} = log1p(Σ Q_i expm1(d_i)), a sum of terms of size |d|,
so t_i keeps its relative accuracy however close the distributions are.
Where P bans Q's most likely token, d is centred on Q's most likely token among
those P allows. Rows far apart, and rows with a logit beyond 2**1020, take the
methods of :func:`_log_ratio_apart` and :func:`_token_kl_huge_rows`.

That is the whole-row method. Most rows, near or far apart, first take the one-pass
method of :mod:`klspec.reference._token_kl` (KL = Σ P·h(log P/Q), h(t) = t − 1 + e^{−t},
two exponentials per logit, its error bound proved there); the rows it cannot certify
(KL below about 1e-11, logits beyond 2**500) come here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference import _chunked, _token_kl
from klspec.reference.divergences import _b_series
from klspec.reference.exact_arithmetic import dd_sum, two_sum
from klspec.reference.validation import (
    _as_real_array,
    _check_float64_range,
    _first_clash,
    _normalise_axis,
    _raise_at_first,
    own_error_state,
    refuse_masked,
    sum_tolerance,
)

ESTIMATORS = ("k1", "k2", "k3")


@own_error_state
def token_kl(
    logits_p: ArrayLike, logits_q: ArrayLike, *, axis: int = -1
) -> np.float64 | np.ndarray:
    """Per-position KL(softmax(logits_p) ‖ softmax(logits_q)) over the vocabulary ``axis``.

    Parameters
    ----------
    logits_p, logits_q : array_like of real numbers
        Unnormalised log-probabilities; ``axis`` is the vocabulary, every other
        axis a batch (e.g. (batch, time, vocab)). Batch axes broadcast; the
        vocabulary axis must match. Entries may be −inf (a token with
        probability 0); NaN and +inf are errors, as is a row that is all −inf.
        float16/float32 input is computed in float64.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        In nats, float64, of the batch shape (a scalar for 1-D input). ``+inf``
        where logits_q is −inf at a token logits_p gives positive probability.
    """
    named = {"logits_p": logits_p, "logits_q": logits_q}
    a, b = _prepare_logits(named, axis)
    if a.size == 0:  # an empty batch, e.g. (0, n): no rows, an empty result
        return np.zeros(a.shape[:-1])
    # Blocks of whole rows, on every core: memory is a few blocks, whatever the batch.
    # float16/float32 logits are exact in float64 and so are their differences.
    narrow = all(x.dtype.kind in "iu" or x.dtype.itemsize <= 4 for x in (a, b))
    if a.shape[-1] > _token_kl.LONG_ROW:  # a whole row per block would not stay small
        return _token_kl_long_rows(named, axis, a, b)
    kernel = _token_kl_kernel_narrow if narrow else _token_kl_kernel
    # float32 blocks reach the kernel unconverted: maxima and checks at half the cost.
    totals = _chunked.run(
        (a, b), kernel, whole_rows=True, keep_float32=narrow, chunk=_token_kl.BLOCK
    )
    if totals.flagged is not None:
        _validate_logits(named, axis)  # raises, naming the entry or row
    kl_hi, kl_lo = totals.total("kl")
    kl = (kl_hi + kl_lo).reshape(a.shape[:-1])
    return kl[()] if kl.ndim == 0 else kl


def _token_kl_long_rows(
    named: dict[str, ArrayLike], axis: int, a: np.ndarray, b: np.ndarray
) -> np.float64 | np.ndarray:
    """token_kl row by row, each in pieces (:func:`klspec.reference._token_kl.long_row`)."""
    kl = np.empty(a.shape[:-1])
    for index in np.ndindex(*a.shape[:-1]):
        with np.errstate(all="ignore"):  # −inf logits: inf − inf in the error terms
            value, accepted, valid = _token_kl.long_row(a[index], b[index])
        if not valid:
            _validate_logits(named, axis)  # raises, naming the entry or row
        if not accepted:  # the whole-row method (memory grows with the row here)
            row_a, row_b = (np.asarray(x[index], dtype=np.float64)[None, :] for x in (a, b))
            with np.errstate(all="ignore"):
                value = _token_kl_rows(row_a, row_b)[0]
        kl[index] = value
    kl = kl + 0.0
    return kl[()] if kl.ndim == 0 else kl


def _token_kl_kernel(blocks: list, work: object, narrow: bool = False) -> _chunked._Record:
    """token_kl of a block of whole rows; flags the block if a value is invalid."""
    a, b = blocks
    # A row maximum is finite exactly when the row has no NaN, no +inf and is not all −inf.
    a_max, b_max = a.max(axis=-1), b.max(axis=-1)
    if not (np.isfinite(a_max).all() and np.isfinite(b_max).all()):
        return _chunked._Record(flag=True)
    kl, accepted = _token_kl.block_rows(a, b, a_max, b_max, work, narrow)
    if not accepted.all():
        rest = ~accepted
        a, b = _token_kl.as_float64(a, work, "in0"), _token_kl.as_float64(b, work, "in1")
        kl[rest] = _token_kl_whole_row_kernel([a[rest], b[rest]], work, narrow).sums["kl"]
    return _chunked._Record(sums={"kl": kl})


def _token_kl_whole_row_kernel(
    blocks: list, work: object, narrow: bool = False
) -> _chunked._Record:
    """token_kl of a block of whole rows by the methods below (rows the one-pass
    method of :mod:`klspec.reference._token_kl` leaves)."""
    a, b = blocks
    a_max, b_max = a.max(axis=-1), b.max(axis=-1)
    if not narrow:
        return _chunked._Record(sums={"kl": _token_kl_rows(a, b, a_max, b_max)})
    return _chunked._Record(sums={"kl": _token_kl_fast_rows(a, b, work)})


def _token_kl_kernel_narrow(blocks: list, work: object) -> _chunked._Record:
    return _token_kl_kernel(blocks, work, narrow=True)


def _token_kl_fast_rows(a: np.ndarray, b: np.ndarray, work) -> np.ndarray:
    """token_kl of rows of float32-valued logits, one ufunc pass per operation.

    The quantities of the module docs, with fewer passes because differences of
    float32 values of similar magnitude are exact in float64: d_i = (a_i − b_i) −
    (a_j − b_j) is rounded once, β_i = b_i − b_j and w_i = e^{β_i} need no
    double-double. With
    t = d − c (c = log1p(Σ w expm1(d) / Σ w)) the term is w·expm1(t)·s·(1 + s(1+s)B(s²)),
    s = tanh(t/2) = expm1(t)/(expm1(t) + 2), B by the polynomials of
    :mod:`klspec.reference._chunked`. Rows with a −inf logit, rows far apart (some
    |d| > 1) and rows with some |s| > 1/2 are left to :func:`_token_kl_rows_in_range`, the
    whole-row method.
    """
    shape = a.shape
    # Differences of float32 values are exact in float64 only if their exponents are
    # within 29 of each other: a block with logits of very different magnitudes (a
    # logit of 1e-9 next to one of 80), or with −inf, takes the whole-row method.
    scratch = work("d", shape)
    largest = max(-a.min(), a.max(), -b.min(), b.max())
    smallest = min(np.abs(a, out=scratch).min(), np.abs(b, out=scratch).min())
    if not smallest >= largest * 2.0**-28:
        return _token_kl_rows_in_range(a, b)  # float32 logits are never huge (< 3.5e38)
    j = np.argmax(b, axis=-1)[:, None]
    e_j = np.take_along_axis(a, j, -1) - np.take_along_axis(b, j, -1)
    d = np.subtract(a, b, out=work("d", shape))
    np.subtract(d, e_j, out=d)
    w = np.subtract(b, np.take_along_axis(b, j, -1), out=work("w", shape))
    np.exp(w, out=w)
    # Z = Σw >= 1 summed exactly: with a float64 pairwise sum token_kl was up to 8 ulps
    # off in 400 random nearly-equal rows, 5 with Z exact.
    z_hi, z_lo = _chunked._exact_row_sums(w, work, "z", levels=1)
    z = z_hi + z_lo
    t = np.expm1(d, out=work("t", shape))
    np.multiply(t, w, out=t)
    c = np.log1p(t.sum(axis=-1) / z)
    # Rows the whole-row method takes: −inf logits (d is ±inf or NaN there), rows apart.
    redo = ~(np.abs(d, out=t).max(axis=-1) <= 1.0)
    np.subtract(d, c[:, None], out=t)  # t = log(P/Q)
    em = np.expm1(t, out=work("em", shape))
    # s = tanh(t/2) = expm1(t)/(expm1(t) + 2), cheaper than np.tanh.
    s = np.add(em, 2.0, out=t)
    np.divide(em, s, out=s)
    x = np.multiply(s, s, out=work("x", shape))
    row_x_max = x.max(axis=-1)
    redo |= ~(row_x_max <= _chunked._SERIES_LIMIT_X)
    x_max = float(np.max(row_x_max, where=~redo, initial=0.0))
    bpoly = _chunked.horner(_chunked.b_coefficients(x_max), x, work("b", shape))
    # Z·(P log r − P + Q) = w·expm1(t)·s·(1 + (s + s²)·B)
    np.multiply(em, w, out=em)
    np.multiply(em, s, out=em)  # ds = Z·(P − Q)·s
    np.add(x, s, out=x)
    np.multiply(x, bpoly, out=x)
    np.multiply(x, em, out=x)
    np.add(x, em, out=x)
    kl = x.sum(axis=-1) / z
    if redo.any():
        kl[redo] = _token_kl_rows_in_range(a[redo], b[redo])
    return kl


#: Rows with a finite logit this large (in magnitude) take :func:`_token_kl_huge_rows`:
#: below it, differences of up to four logits stay below 2**1023 and cannot overflow.
_HUGE = 2.0**1020


def _token_kl_rows(
    a: np.ndarray, b: np.ndarray, a_max: np.ndarray | None = None, b_max: np.ndarray | None = None
) -> np.ndarray:
    """token_kl of float64 rows (..., V) of valid logits, as set out in the module docs.

    ``a_max``, ``b_max``: the row maxima, if the caller has them.
    """
    fa, fb = np.isfinite(a), np.isfinite(b)
    a_max = a.max(axis=-1) if a_max is None else a_max
    b_max = b.max(axis=-1) if b_max is None else b_max
    huge = (a_max >= _HUGE) | (b_max >= _HUGE)
    for x, finite in ((a, fa), (b, fb)):
        if finite.all():
            huge |= x.min(axis=-1) <= -_HUGE
        else:  # masked tokens: the lowest finite logit
            huge |= np.min(x, axis=-1, where=finite, initial=np.inf) <= -_HUGE
    if not huge.any():
        return _token_kl_rows_in_range(a, b, fa, fb)
    kl = np.empty(a.shape[:-1])
    kl[~huge] = _token_kl_rows_in_range(a[~huge], b[~huge])
    kl[huge] = _token_kl_huge_rows(a[huge], b[huge])
    return kl


def _token_kl_rows_in_range(
    a: np.ndarray, b: np.ndarray, fa: np.ndarray | None = None, fb: np.ndarray | None = None
) -> np.ndarray:
    """token_kl of rows whose finite logits are below 2**1021 in magnitude (module docs).

    ``fa``, ``fb``: np.isfinite(a), np.isfinite(b) if the caller has them.
    """
    if fa is None or fb is None:
        fa, fb = np.isfinite(a), np.isfinite(b)
    infinite = (fa & ~fb).any(axis=-1)

    # Centre Q on j = argmax of Q: β_i = b_i − b_j <= 0.
    j = np.argmax(b, axis=-1)[..., None]
    b_j = np.take_along_axis(b, j, -1)
    # Centre d on a token both give positive probability: j, or where P bans j
    # (a_j = −inf: every d_i would be NaN), Q's most likely token among those P allows.
    k = j
    a_k = np.take_along_axis(a, j, -1)
    banned = np.isneginf(a_k)
    if banned.any():
        allowed_max = np.argmax(np.where(fa, b, -np.inf), axis=-1)[..., None]
        k = np.where(banned, allowed_max, j)
        a_k = np.take_along_axis(a, k, -1)
    b_k = np.take_along_axis(b, k, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        # β_i exactly, as β_hi + β_lo: a rounded β_i = −30 would put 30 ulps of
        # error into Q_i = e^{β_i}/Z.
        beta_hi, beta_lo = two_sum(b, -b_j)
        beta_lo = np.where(fb, beta_lo, 0.0)
        # d_i = (a_i − b_i) − (a_k − b_k) to ~1 ulp: the differences of the logits
        # are formed error-free, so nearly equal rows keep their tiny d_i.
        e_hi, e_lo = two_sum(a, -b)
        ek_hi, ek_lo = two_sum(a_k, -b_k)
        h, h_err = two_sum(e_hi, -ek_hi)
        d = np.where(fa & fb, h + (h_err + (e_lo - ek_lo)), np.where(fb, -np.inf, 0.0))

        # Unnormalised Q: w_i = e^{β_i}, Z = Σ w in double-double; no log of Z is
        # ever rounded, KL is divided by Z once at the end.
        w = np.where(fb, np.exp(beta_hi) * (1.0 + beta_lo), 0.0)
        z_hi, z_lo = dd_sum(w)
        c_hi, c_lo = dd_sum(np.where(fb, w * np.expm1(d), 0.0))
        # c = log Σ Q_i e^{d_i} = LSE(α) − LSE(β); t_i = log(P_i/Q_i) = d_i − c.
        c = np.log1p((c_hi + c_lo) / z_hi)[..., None]
        t = np.where(fb, d - c, 0.0)
        # Rows far apart (some |d_i| > 1): c is large and its rounding, u·|c|, would
        # move every t_i (and P_i = Q_i e^{t_i}) by as much. There nothing is tiny, so
        # t_i = log_softmax(a)_i − log_softmax(b)_i from exact differences of the logits
        # centred on each row's own maximum is accurate to u·|t_i| [token_kl.definition].
        # With every |d_i| <= 1, |c| > 1 only where P bans tokens holding most of Q's
        # mass (c = −log(1 − that mass) for P ∝ Q elsewhere): log1p of a sum near −1
        # would lose the digits of t_i, so these rows count as apart too.
        apart = (np.abs(np.where(fa & fb, d, 0.0)) > 1.0).any(axis=-1)[..., None]
        apart |= ~(np.abs(c) <= 1.0)
        if apart.any():
            t_apart, g, g_lo = _log_ratio_apart(a, beta_hi, beta_lo, fa, z_hi, z_lo)
            t = np.where(apart, t_apart, t)
        terms = np.where(fb, _terms_from_log_ratio(t, beta_hi, beta_lo, w), 0.0)
        if apart.any():
            # Z·(P t − P + Q) = e^g (t − 1) + w with e^g = Z·P from the logits of P (not
            # from t, whose rounding u·|t| would move P by as much): no cancellation
            # beyond a factor 4 for |t| > 1 (w·(1 − 2/e) <= the term for t < −1).
            # g is kept as g + g_lo: rounded, it put u·|g| into P (1e-14 for a token
            # with P ~ e^-100 and t ~ 1e100, whose term is the whole KL).
            direct = np.where(fa, np.exp(g) * (1.0 + g_lo) * (t - 1.0), 0.0) + w
            use_g = apart & fb & (np.abs(t) > 1.0)
            # Where e^g underflows (P_i < e^-700) and t > 1, P_i·t_i can still be a normal
            # number (P_i = e^-800, t_i = 1e100): scaled by a power of two, nothing
            # underflows before the product does.
            faint = g < _FAINT_G
            if faint.any():
                faint &= use_g & fa & (t > 1.0)
                direct[faint] = _exp_times(g[faint], g_lo[faint], t[faint] - 1.0) + w[faint]
            terms = np.where(use_g, direct, terms)
    k_hi, k_lo = dd_sum(terms)
    kl = (k_hi + k_lo) / z_hi / (1.0 + z_lo / z_hi)
    return np.where(infinite, np.inf, kl) + 0.0


#: Below this g = log(Z·P_i), e^g is within 2**-50 of float64's subnormal range.
_FAINT_G = -700.0


def _token_kl_huge_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """token_kl of rows with a logit of magnitude >= 2**1020, where differences overflow.

    A token more than 2**1000 below its row's maximum has probability below
    e^{−2**1000}. In P it is a token of probability 0: its term P_i(t_i − 1) + Q_i
    moves by less than e^{−2**1000}·2**1026, far below 2**-1074. In Q it is not
    (P_i log(P_i/Q_i) can be as large as 1e308), but there t_i = −β_i up to a
    relative 2**-988 (|α_i| <= 1500 wherever P_i·|β_i| is above 2**-1074). With D
    those tokens and m = Σ_D P_i,

        KL = (1 − m)·KL(P'‖Q') + (1 − m)·log(1 − m) + Σ_D P_i t_i,

    P', Q' the distributions without D; the middle term is at most m, below
    2**-998 of the last, and is left out. The rest are rows in range: each row is
    moved by its own maximum where that is huge (exact by Sterbenz for the tokens
    that remain).
    """
    fa, fb = np.isfinite(a), np.isfinite(b)
    infinite = (fa & ~fb).any(axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        reduced = []
        for x in (a, b):
            top = x.max(axis=-1, keepdims=True)
            # (x − top)/2 cannot overflow; −inf counts as dead.
            dead = 0.5 * x - 0.5 * top < -(2.0**999)
            shift = np.where(np.abs(top) >= _HUGE, top, 0.0)
            reduced.append((np.where(dead, -np.inf, x - shift), dead, top))
        (a2, dead_a, _), (b2, dead_b, top_b) = reduced
        only_p = dead_b & ~dead_a
        # P from a2 (its live values within 2**1000 of each other): α = a2 − max exact
        # as hi + lo, S = Σ e^α in [1, n], P_i = e^{α_i}/S.
        alpha_hi, alpha_lo = two_sum(a2, -a2.max(axis=-1, keepdims=True))
        alpha_lo = np.where(dead_a, 0.0, alpha_lo)
        p_unnormalised = np.where(dead_a, 0.0, np.exp(alpha_hi) * (1.0 + alpha_lo))
        s_hi, s_lo = dd_sum(p_unnormalised)
        s = (s_hi + s_lo)[..., None]
        kept_hi, kept_lo = dd_sum(np.where(only_p, 0.0, p_unnormalised))
        kept = (kept_hi + kept_lo) / (s_hi + s_lo)  # 1 − m, without cancellation
        # Σ_D P_i t_i with t_i = top_b − b_i, halved so it cannot overflow.
        half_t = np.where(only_p, 0.5 * top_b - 0.5 * b, 0.0)
        contrib = np.zeros(a.shape)
        contrib[only_p] = _exp_times(alpha_hi[only_p], alpha_lo[only_p], (half_t / s)[only_p])
        c_hi, c_lo = dd_sum(contrib)
        tail = 2.0 * (c_hi + c_lo)
        a3 = np.where(only_p, -np.inf, a2)
        rest = np.zeros(a.shape[:-1])
        live = (kept > 0) & ~infinite
        if live.any():
            rest[live] = _token_kl_rows_in_range(a3[live], b2[live])
        kl = kept * rest + tail
    return np.where(infinite, np.inf, kl) + 0.0


# ln 2 split so that k·_LN2_HI is exact for |k| < 2**21 (fdlibm's constants).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


def _exp_times(x_hi: np.ndarray, x_lo: np.ndarray, y: np.ndarray) -> np.ndarray:
    """e^{x_hi + x_lo}·y for x <= 710 and 0 <= y < 2**1024, without premature under/overflow.

    e^x = e^r·2^k with r = x − k ln 2 in [0, ln 2) (Cody–Waite: exact but for
    u·|r|); the product e^r·(y/4) is a normal number and one ldexp scales it by
    2^{k+2}, rounding once where the result is subnormal, overflowing only where
    the result does.
    """
    k = np.clip(np.floor(x_hi / np.log(2.0)), -2200.0, 1100.0)
    r = (x_hi - k * _LN2_HI) - k * _LN2_LO + x_lo
    return np.ldexp(np.exp(r) * (0.25 * y), k.astype(np.int64) + 2)


def _log_ratio_apart(
    a: np.ndarray,
    beta_hi: np.ndarray,
    beta_lo: np.ndarray,
    fa: np.ndarray,
    z_hi: np.ndarray,
    z_lo: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, g, g_lo): t_i = log(P_i/Q_i) and g_i + g_lo_i = log(Z·P_i), from each row's own maximum.

    With k the argmax of a, α_i = a_i − a_k (exact as hi + lo) and L = log Σ e^α:
    log P_i = α_i − L, and t_i = α_i − L − β_i + log Z, where β_i = b_i − b_j (exact
    as β_hi + β_lo) and Z = Σ e^β in [1, n] come from the caller. The large parts are differences of
    logits; the logs are of numbers in [1, n], rounded to u. −inf where a_i is.
    """
    k = np.argmax(a, axis=-1)[..., None]
    alpha_hi, alpha_lo = two_sum(a, -np.take_along_axis(a, k, -1))
    alpha_lo = np.where(fa, alpha_lo, 0.0)
    rest_hi, rest_lo = dd_sum(np.where(alpha_hi < 0, np.exp(alpha_hi), 0.0))
    # Ties for the maximum count once in the 1 of log1p (the others are in the rest).
    ties = np.count_nonzero(alpha_hi == 0, axis=-1) - 1
    log_sum_a = np.log1p(ties + rest_hi + rest_lo)[..., None]
    log_z = (np.log(z_hi) + z_lo / z_hi)[..., None]
    # g as hi + lo: the logs in [0, log n] are rounded to u, the large α_i is not.
    # (−inf and NaN where a_i is −inf.)
    g, g_lo = two_sum(alpha_hi, (alpha_lo - log_sum_a) + log_z)
    # β kept as hi + lo: rounding β = −100 alone would put u·100 into t.
    x_hi, x_err = two_sum(np.where(fa, alpha_hi, 0.0), -beta_hi)
    t = np.where(fa, x_hi + (x_err + (alpha_lo - beta_lo)) - log_sum_a + log_z, -np.inf)
    return t, g, g_lo


def _terms_from_log_ratio(
    t: np.ndarray, beta_hi: np.ndarray, beta_lo: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """Z·(P log r − P + Q) >= 0 from t = log(P/Q) and w = Z·Q = e^{β}; t = −inf gives w."""
    s = np.tanh(0.5 * t)
    # Z·(P − Q) = w·expm1(t) near t = 0; beyond, e^{β + t} − w (β + t kept
    # double-double) cannot cancel badly and cannot overflow for tiny w.
    g_hi, g_lo = two_sum(beta_hi, t)
    far = np.exp(g_hi) * (1.0 + (g_lo + beta_lo)) - w
    diff = np.where(np.abs(t) <= 1.0, w * np.expm1(np.clip(t, -1.0, 1.0)), far)
    one_plus_s = 2.0 / (1.0 + np.exp(-t))
    small = np.abs(s) <= 0.5
    x = np.where(small, s * s, 0.0)
    b = _b_series(x, x_max=float(x.max(initial=0.0)))
    safe_s = np.where(small, 1.0, s)
    big_w = one_plus_s * (0.5 * t - s) / (safe_s * safe_s)  # (1+s)(atanh s − s)/s², |s| > 1/2
    bracket = np.where(small, 1.0 + s * one_plus_s * b, 1.0 + big_w)
    return np.where(np.isneginf(t), w, diff * s * bracket)


@own_error_state
def sequence_log_prob(
    token_logprobs: ArrayLike, mask: ArrayLike | None = None, *, axis: int = -1
) -> np.float64 | np.ndarray:
    """log π(y|x) = Σ_t log π(t_k | x, t_<k): the sum of per-token log-probabilities.

    ``token_logprobs`` holds the log-probability of each token of the response
    along ``axis`` (other axes are a batch). ``mask`` (bool, broadcastable to it)
    marks the tokens that belong to the response; padding is *selected out*,
    never multiplied by 0, so a −inf log-probability at a padded position stays
    out of the sum (0·(−inf) would be NaN). The sum is accurate to the last bit
    (double-double). Log-probabilities must be <= 0 (rounding allowed), not NaN
    or +inf; −inf is allowed (an impossible token: the sum is −inf).
    """
    lp = _as_real_array("token_logprobs", token_logprobs)
    lp = _drop_padding(lp, mask, "token_logprobs")
    lp = _validate_log_probs("token_logprobs", lp, allow_neg_inf=True)
    lp = _tokens_last(lp, axis, "token_logprobs")
    impossible = np.isneginf(lp)
    total = _wide_sum(np.where(impossible, 0.0, lp))
    return _scalar(np.where(impossible.any(axis=-1), -np.inf, total))


@own_error_state
def sequence_log_ratio(
    logp: ArrayLike, ref_logp: ArrayLike, mask: ArrayLike | None = None, *, axis: int = -1
) -> np.float64 | np.ndarray:
    """log π(y|x)/π_ref(y|x) = Σ_t [log π(t_k|…) − log π_ref(t_k|…)] over the response.

    The per-token differences are formed exactly and summed in double-double, so
    the result is correctly rounded even when the two sequence log-probabilities
    are large and nearly equal (where log π(y|x) − log π_ref(y|x) computed from the
    two sums loses digits). ``mask`` selects the response tokens as in
    :func:`sequence_log_prob`. ``ref_logp`` may be −inf (the ratio is +inf).
    """
    lp, rp = _as_real_array("logp", logp), _as_real_array("ref_logp", ref_logp)
    if mask is not None:
        names = _names_of(lp, rp)
        lp, rp = _broadcast_log_probs(lp, rp)
        lp, rp = _drop_padding(lp, mask, names), _drop_padding(rp, mask, names)
    d, d_lo = _log_ratio(lp, rp)
    names = _names_of(lp, rp)
    # log π − log π_ref, exact
    d_hi, d_lo = _tokens_last(-d, axis, names), _tokens_last(-d_lo, axis, names)
    impossible = np.isposinf(d_hi)  # π_ref gives the token probability 0
    total = _wide_sum(np.concatenate((np.where(impossible, 0.0, d_hi), d_lo), axis=-1))
    return _scalar(np.where(impossible.any(axis=-1), np.inf, total))


def _wide_sum(x: np.ndarray) -> np.ndarray:
    """Σ x over the last axis (finite entries) in double-double, without warnings.

    Where a partial sum overflows (entries near ±1.8e308), the row is summed again
    with its entries of magnitude >= 2^-1000 scaled by 1/4 (exact) and the rest
    apart: the result is then ±inf only where the true sum is beyond float64.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        hi, lo = dd_sum(x)
        total = np.array(hi + lo)  # an array even for one row: assigned into below
    bad = ~np.isfinite(total)
    if bad.any():
        rows = x[bad]
        small = np.abs(rows) < 2.0**-1000
        big_hi, big_lo = dd_sum(np.where(small, 0.0, rows) * 0.25)
        small_hi, small_lo = dd_sum(np.where(small, rows, 0.0))
        with np.errstate(over="ignore"):
            total[bad] = 4.0 * big_hi + (4.0 * big_lo + (small_hi + small_lo))
    return total


def _log_ratio(logp: ArrayLike, ref_logp: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """d = ref_logp − logp = log(π_ref/π) per token, exactly as d + d_lo, after validation.

    ``d_lo`` is the rounding error of the subtraction (0 where d is infinite:
    ref_logp = −inf gives d = −inf).
    """
    lp = _validate_log_probs("logp", logp, allow_neg_inf=False)
    rp = _validate_log_probs("ref_logp", ref_logp, allow_neg_inf=True)
    lp, rp = _broadcast_log_probs(lp, rp)
    with np.errstate(invalid="ignore"):  # ref_logp = −inf: the error term is NaN
        d, d_lo = two_sum(rp, -lp)
    return d, np.where(np.isfinite(d), d_lo, 0.0)


def _names_of(lp: np.ndarray, rp: np.ndarray) -> str:
    """The argument(s) whose dimensions the broadcast log-ratio has, for axis errors."""
    if lp.ndim == rp.ndim:
        return "logp and ref_logp"
    return "logp" if lp.ndim > rp.ndim else "ref_logp"


def _broadcast_log_probs(lp: np.ndarray, rp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        return tuple(np.broadcast_arrays(lp, rp))
    except ValueError:
        raise ValueError(
            f"the shapes of logp {lp.shape} and ref_logp {rp.shape} do not broadcast"
        ) from None


def _drop_padding(x: np.ndarray, mask: ArrayLike | None, name: str) -> np.ndarray:
    """x with masked-out entries replaced by 0 (not multiplied: 0·(−inf) is NaN).

    Padding holds anything (−inf, NaN, stale values), so it is dropped before the
    values are validated. ``name`` is the argument(s) ``x`` came from, for errors.
    """
    if mask is None:
        return x
    refuse_masked("mask", mask)
    try:
        m = np.asarray(mask)
    except ValueError:  # numpy: "setting an array element with a sequence"
        raise ValueError(
            "mask is a ragged nested sequence: every row must have the same length"
        ) from None
    if m.dtype != np.bool_:
        raise TypeError(f"mask has dtype {m.dtype}; it must be bool (True = a response token)")
    try:
        m = np.broadcast_to(m, x.shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {m.shape} does not broadcast to {name} of shape {x.shape}; "
            "it marks the response tokens of the log-probabilities"
        ) from None
    return np.where(m, x, np.zeros((), dtype=x.dtype))


def _tokens_last(x: np.ndarray, axis: int, name: str) -> np.ndarray:
    """x with its token ``axis`` last; ``name`` is the argument(s) quoted in errors."""
    if x.ndim == 0:
        verb = "are" if " and " in name else "is"
        raise ValueError(f"{name} {verb} 0-d; a sequence needs a token axis")
    return np.moveaxis(x, _normalise_axis(axis, name, x.ndim), -1)


def _scalar(x: np.ndarray) -> np.float64 | np.ndarray:
    x = np.asarray(x, dtype=np.float64) + 0.0
    return x[()] if x.ndim == 0 else x


@own_error_state
def kl_estimate(logp: ArrayLike, ref_logp: ArrayLike, estimator: str = "k3") -> np.ndarray:
    """Per-sample estimates of KL(π‖π_ref) from tokens sampled from π (Schulman 2020).

    With d = ref_logp − logp = log(π_ref/π) at each sampled token:

    * ``"k1"``: −d = logp − ref_logp. Unbiased, high variance, negative on
      about half the samples.
    * ``"k2"``: d²/2. Biased, low variance, never negative.
    * ``"k3"``: (e^d − 1) − d. Unbiased and never negative; computed from
      positive series near d = 0 (no cancellation) and overflowing only where
      the true value exceeds float64.

    ``logp`` and ``ref_logp`` are log-probabilities (<= 0; NaN and +inf are
    errors; ``ref_logp`` may be −inf, where every estimator is +inf, its limit)
    of the same shape or broadcastable shapes. Returns a float64 array of the
    broadcast shape (a scalar for 0-d input), without warnings: a result
    overflows to +inf only where the true value exceeds float64.
    As *losses*, their gradients differ: E[∇k1] = 0, E[∇k2] = ∇KL(π‖π_ref),
    E[∇k3] = ∇KL(π_ref‖π).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} is not one of {', '.join(ESTIMATORS)}")
    d, d_lo = _log_ratio(logp, ref_logp)
    # d lies in [−max, max] or is −inf (ref_logp = −inf): every estimator is then +inf,
    # its limit. Results overflow to +inf only where the true value exceeds float64.
    if estimator == "k1":
        out = -d
    elif estimator == "k2":
        with np.errstate(over="ignore"):  # only where d²/2 > max float64
            # (d + d_lo)²/2 to first order in d_lo, as d·(d/2 + d_lo): d·d_lo alone is
            # −inf·0 = NaN at d = −inf (d_lo = 0), where k2 is +inf.
            out = d * (0.5 * d + d_lo)
    else:
        main = _expm1_minus_x(d)
        with np.errstate(over="ignore", invalid="ignore"):
            # d(e^d − 1 − d)/dd = expm1(d): first-order correction for the rounding of d.
            correction = np.expm1(d) * d_lo
        out = main + np.where(np.isfinite(main) & (d_lo != 0), correction, 0.0)
    return _scalar(out)


def _expm1_minus_x(x: np.ndarray) -> np.ndarray:
    """e^x − 1 − x >= 0 without cancellation (k3 is never negative).

    x >= 0: Σ_{k>=2} x^k/k! (positive terms). x < 0: e^x·(1 + e^{|x|}(|x| − 1)) =
    e^x·Σ_{k>=2} (k−1)|x|^k/k! (positive terms). Series for |x| <= 4 (at most 40
    terms), the direct forms beyond, where cancellation costs under 2 ulps.
    """
    ax = np.abs(x)
    small = ax <= 4.0
    xs = np.where(small, ax, 0.0)
    terms = 2
    x_max = float(xs.max(initial=0.0))
    term = x_max * x_max / 2.0
    while terms < 40 and term * terms > 2.0**-56 * max(x_max * x_max / 2.0, 1e-300):
        terms += 1
        term *= x_max / terms
    pos = np.zeros_like(xs)
    neg = np.zeros_like(xs)
    for k in range(terms, 1, -1):  # Horner in x for Σ c_k x^k, k = 2..terms
        inv = 1.0 / _factorial(k)
        pos = (pos + inv) * xs
        neg = (neg + (k - 1) * inv) * xs
    pos *= xs
    neg *= xs
    with np.errstate(over="ignore", invalid="ignore"):
        series = np.where(x >= 0, pos, np.exp(-ax) * neg)
        direct = np.where(x >= 0, np.expm1(x) - x, np.expm1(x) + ax)
        return np.where(small, series, direct)


def _factorial(k: int) -> float:
    out = 1.0
    for i in range(2, k + 1):
        out *= i
    return out


def _prepare_logits(named: dict[str, ArrayLike], axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The shape rules of :func:`_validate_logits`, not its value rules; no float64 copy."""
    return _validate_logits(named, axis, values=False)


def _validate_logits(
    named: dict[str, ArrayLike], axis: int, *, values: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, value in named.items():
        arr = _as_real_array(name, value)
        if arr.ndim == 0:
            raise ValueError(f"{name} is 0-d (a single number); logits need a vocabulary axis")
        ax = _normalise_axis(axis, name, arr.ndim)
        if arr.shape[ax] == 0:
            raise ValueError(f"{name} has an empty vocabulary: axis {axis} has length 0")
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:  # longdouble only
            with np.errstate(over="ignore"):
                x = np.asarray(arr, dtype=np.float64)
            _check_float64_range(name, arr, x, "logits must be within the float64 range")
        if not values:
            arrays.append(np.moveaxis(arr, ax, -1))
            continue
        if arr.dtype.kind == "f":
            _raise_at_first(name, arr, np.isnan(arr), lambda v: "NaN", "logits must not be NaN")
            _raise_at_first(name, arr, np.isposinf(arr), lambda v: "+inf", "logits must be < +inf")
            dead = np.isneginf(arr).all(axis=ax)
            if dead.any():
                row = np.unravel_index(int(np.argmax(dead)), dead.shape)
                where = f"{name}[{', '.join(map(str, row))}]" if row else name
                raise ValueError(f"{where} is -inf everywhere; a row needs one finite logit")
        arrays.append(np.moveaxis(np.asarray(arr, dtype=np.float64), ax, -1))
    a, b = arrays
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"logits_p and logits_q have different vocabulary sizes along axis {axis}: "
            f"{a.shape[-1]} vs {b.shape[-1]}"
        )
    shapes = {"logits_p": a.shape[:-1], "logits_q": b.shape[:-1]}
    try:
        batch = np.broadcast_shapes(*shapes.values())
    except ValueError:
        x, y = _first_clash(shapes)
        raise ValueError(
            f"the batch shapes of {x} {shapes[x]} and {y} {shapes[y]} do not broadcast"
        ) from None
    return np.broadcast_to(a, (*batch, a.shape[-1])), np.broadcast_to(b, (*batch, b.shape[-1]))


def _validate_log_probs(name: str, value: ArrayLike, *, allow_neg_inf: bool) -> np.ndarray:
    arr = _as_real_array(name, value)
    if arr.dtype.kind == "f":
        _raise_at_first(
            name, arr, np.isnan(arr), lambda v: "NaN", "log-probabilities must be numbers <= 0"
        )
        bad_inf = np.isposinf(arr) if allow_neg_inf else np.isinf(arr)
        _raise_at_first(
            name, arr, bad_inf, str, "log-probabilities of sampled tokens must be finite"
        )
    # A log-probability above 0 is a probability (or a bug): allow only rounding.
    tol = sum_tolerance(arr.dtype)
    _raise_at_first(
        name,
        arr,
        arr > tol,
        lambda v: f"{v!s} > 0",
        "log-probabilities must be <= 0 (were probabilities passed instead?)",
    )
    with np.errstate(over="ignore"):  # longdouble beyond 1.8e308: reported as such below
        x = np.asarray(arr, dtype=np.float64)
    _check_float64_range(name, arr, x, "log-probabilities must be within the float64 range")
    return x
