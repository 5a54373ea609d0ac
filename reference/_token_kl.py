r"""token_kl in one pass over each row: one or two exponentials per logit, no cancellation.

The quantity
------------
For one row of logits a (of P) and b (of Q), with α_i = a_i − max a and
β_i = b_i − max b (each row centred on its own maximum), E_i = e^{α_i},
F_i = e^{β_i}, S_a = Σ E_i, S_b = Σ F_i:

    P_i = E_i/S_a,   t_i = log(P_i/Q_i) = δ_i − c,   δ_i = α_i − β_i,   c = log S_a − log S_b,

    KL = Σ P_i h(t_i),   h(t) = t − 1 + e^{−t} = Σ_{k>=2} (−t)^k/k!  >= 0.

Σ P h(t) equals Σ P t because Σ P e^{−t} = Σ Q = 1. Every term is non-negative,
so the sum has no cancellation. In the code each term is multiplied by S_a:

    S_a·P_i h(t_i) = E_i t_i² g(t_i)            for −3/2 <= t_i <= 1 (the series region),
                   = E_i (t_i − 1) + κ F_i       elsewhere (the direct region),

with g(t) = h(t)/t² by a polynomial (below) and κ = e^c, since P_i e^{−t_i} =
F_i e^c / S_a. KL is the row sum divided by S_a.

Why the shift c need not be accurate
------------------------------------
Let the code use ĉ = c + ε instead of c, in t̂_i = δ_i − ĉ *and* in κ̂ = e^ĉ. Then
P_i e^{−t̂_i} = Q_i e^ε for every i, in both regions, and exactly

    A = Σ P_i h(t̂_i) = Σ P_i (t_i − ε − 1) + e^ε Σ Q_i = KL + (e^ε − 1 − ε),

an error of ε²/2 (1 + O(ε)): second order, because Σ P_i h'(t_i) = Σ (P_i − Q_i) = 0.
So S_b, which enters nothing but ĉ = log Ŝ_a − log Ŝ_b, is summed from float32
exponentials (|ε| about 1e-7), and F_i = e^{β_i} is computed in float64 only where a
term needs it (the direct region). The second-order error is then removed: with
B = Σ P_i t̂_i = KL − ε (a plain sum), A − B = e^ε − 1 exactly, so

    KL = A − ψ(A − B),   ψ(w) = w − log1p(w) ≈ w²/2 >= 0.

If w = A − B is computed with an absolute error η, ψ(w) moves by at most |w|·η. The
code bounds η <= u·(log2 n + 8)·(A + max|t̂|) (the sums' rounding; Σ P|t̂| <= max|t̂|)
and accepts a row only if |w| <= 2**-20 and 16·|w|·η <= u·KL: the correction then
adds at most u/16 relative. Tokens whose e^α or e^β underflow (a row spanning more
than 690 in its logits) are dropped from the sums; the row is accepted only if all
of them together, at most n·2**-1000·(max|t̂| + 2), are below u·KL/16. Other rows
(KL below about 1e-11 — rows nearly equal up to rounding — or logits beyond 2**500)
are left to the whole-row method of :mod:`klspec.reference.language_models`.

The rounding errors that remain (u = 2**-53)
--------------------------------------------
*Exact differences.* For float32 (and float16, integer) logits of one block whose
nonzero magnitudes lie within a factor 2**27 of each other, α_i, β_i and δ_i are
sums of at most four float32 numbers that are multiples of a common 2**(e−23) and below
2**(e+30) in magnitude: exact in float64. Other blocks (float64 logits, logits of very
different magnitudes) form them error-free as double-double (TwoSum), E_i =
e^{α_hi}(1 + α_lo) and t̂_i = (x − ĉ) + (x_err + α_lo − β_lo): the same quantities to
u² relative.

*Per term.* t̂_i = δ_i − ĉ is one rounding: |t̂_i − (t_i − ε)| <= u|t_i|. E_i and F_i
(float64) are within 1 ulp (the libm's exp), S_a is summed exactly (error-free
extraction, to 2**-68 relative) and is a common factor. In the series region the polynomial
for g (Chebyshev interpolant, Horner's rounding included) is within 1.5u of g on
[−3/2, 1]; the term's sensitivity to the error in t is |h'(t)·t/h(t)| <= 2.7 there
(2 near 0, 2.64 at −3/2). So a series term is within about (2 + 1.5 + 2.7 + 1.5)u ≈ 8u
of its value (exp's ulp is up to 2u relative; three products). In the direct region
(t > 1 or t < −3/2) the two parts of E(t − 1) + κF have the same sign for t > 1, and
for t < −3/2 their sum is at least 0.44·κF (1 − e^{t}(1 − t) >= 0.44), so each
part's error of about 3u (κ = e^ĉ rounded once, F within an ulp, the product and the
sum) is amplified at most 2.3×: within 7u; the error in t moves the term by
P_i|t_i|u, below u·term for t > 1 and below 0.6u·term for t < −3/2.

*The sum.* The terms are non-negative, so summing them loses no digits to
cancellation: numpy's pairwise sum adds at most γ·u relative, γ = (16 + log2(n/128))
for its 8-way unrolled blocks of 128 (24 for n = 32,000; about 1 in practice, the
errors being of both signs), and the division by S_a 0.5u.

So KL is within (8.5 + γ)u of its value at worst — 1.5e-15 plus the summation's
worst case, which no input has come near — and a few u in practice: measured against
mpmath (tests/test_token_kl_path.py, every distance of the benchmark's sweep) the worst
relative error is below 1e-15 on rows nearly equal (σ <= 0.1) and below 4e-15, the
apart-row bound of tests/test_language_models.py, elsewhere.

Three methods, by how far apart the rows are (issue 15)
-------------------------------------------------------
The cost is the exponentials (numpy's float64 exp has no SIMD form on AVX2: ~8 ns a
logit) and the polynomial's passes (two a degree), so :func:`block_rows` picks per
row, from δ's range (a sample of every 16th δ first, so far rows need no range pass):

*Near* (δ spans at most NEAR_SPREAD; σ <= 0.1 of the sweep): no e^β at all. For any
shift c₀ and t = δ − c₀, with X = Σ P t² g(t) and μ₁ = Σ P t, Σ P e^{−t} = 1 − μ₁ + X
exactly, so KL = μ₁ + log(1 − μ₁ + X) = X − ψ(X − μ₁). X is a sum of non-negative
terms, each within ~8u as in the series region below. c₀ = mean − variance/2 of δ
under P (two sums) makes v = X − μ₁ small, so the rounding of the signed sum μ₁
(within η = u(log2 n + 8)·Σ P|t|, Σ P|t| <= sqrt(Σ P t²) <= sqrt(2.8 X)) moves KL by
|v|·η at most; the row is accepted only if that is below u·KL/16.

*Far, direct* (δ spans more; σ = 3, unrelated rows, a token moved far): E and F in
float64, S_b summed from them, so ĉ is within a few u and its error enters as ε²/2.
Every term in the direct form E(t − 1) + κF: its parts are within about 4u each (exp
within an ulp, three roundings), so its error is at most 4u(E|t − 1| + κF) =
4u(S_a·term + 2E(1 − t)₊), and P(1 − t)₊ <= Q (log x >= 1 − 1/x), so the row is within
(5 + 8/KL)u plus the sum's γu: accepted alone where KL >= DIRECT_KL = 2.5, within
8.2u + γu. Rows with smaller KL replace the terms with −3/2 <= t <= 1 by the series
(the direct form loses digits near t = 0): blended as x + inside·(g − x) without a
masked copy; where at most 1/16 of the tokens are outside, those get t = 0 in the
series and their direct term in its place, and the polynomial need only cover the
others' range (degree 7 instead of 15 for a row equal but for a few tokens).

*Far, mostly inside* (a sample guesses at most MID_OUTSIDE of the tokens outside the
series region; σ = 0.5, rows with −inf masks): the series everywhere but those tokens,
whose direct terms take e^β in float64 (gathered); S_b from float32 exponentials and
the correction A − ψ(A − B) below. More tokens outside than guessed: the direct
method.

A −inf logit (float32 blocks) becomes the row's maximum − 750: e^α, e^β are exactly
0 and the token has probability 0; Q banning a token P allows makes KL = +inf.

What is left to the whole-row method
------------------------------------
Rows with a logit beyond 2**500 in magnitude (differences could overflow), rows whose
KL is too small for the certificate above, and rows with +inf or NaN (validation
names them). A −inf logit is a token of probability 0: its term is Q_i where only P
bans it (E_i = 0, t_i set to −3 so the direct form gives κF_i), 0 where both do, and
the row's KL is +inf where only Q bans it.

Memory: the kernel works on blocks of whole rows from :func:`klspec.reference._chunked.run`
(float32 blocks unconverted) with ~8 float64 buffers of a block each. Rows longer than
:data:`LONG_ROW` are processed in pieces of CHUNK elements by :func:`long_rows` (three
passes: maxima, sums, terms), so the memory does not grow with the vocabulary.
"""

from __future__ import annotations

import math

import numpy as np

from klspec.reference import _chunked
from klspec.reference.exact_arithmetic import two_sum

_U = 2.0**-53

#: Rows longer than this are processed in pieces (a whole row per block would need
#: buffers of the row's size).
LONG_ROW = 1 << 18

#: Elements per block (whole rows; a longer row is a block of its own). Larger than
#: the other kernels' CHUNK: each numpy call holds the GIL for its Python overhead, and
#: two threads calling on blocks of 2 rows of 32,000 logits waited on each other (1.35x
#: on two cores); 4 such rows (1 MiB float64 buffers) ran 1.5-1.6x (issue 15).
BLOCK = 1 << 17

#: Logits beyond this magnitude go to the whole-row method.
_BIG = 2.0**500

#: The series region [_SERIES_LO, _SERIES_HI] of t.
_SERIES_LO, _SERIES_HI = -1.5, 1.0

#: g(t) = (t − 1 + e^{−t})/t² by Horner with ascending coefficients: Chebyshev
#: interpolants (mpmath, 50 digits) on [−r, r] for the keys r, and on [−3/2, 1] for
#: None; each within 1.5 units of 2**-53 of g, Horner's rounding included
#: (tests/test_token_kl_path.py recomputes the bounds with mpmath).
G_POLYNOMIALS = {
    2.0**-4: (
        0.5,
        -0.16666666666666666,
        0.04166666666667077,
        -0.008333333333333706,
        0.0013888888836324673,
        -0.00019841269793484582,
        2.4803740304756255e-05,
        -2.7559276487341413e-06,
    ),
    0.25: (
        0.5,
        -0.16666666666666666,
        0.041666666666663556,
        -0.008333333333333094,
        0.0013888888892874063,
        -0.00019841269844335027,
        2.48015694494292e-05,
        -2.755730549290389e-06,
        2.7589957366249805e-07,
        -2.507721278058295e-08,
    ),
    0.5: (
        0.5,
        -0.16666666666666666,
        0.04166666666666706,
        -0.00833333333333336,
        0.001388888888870455,
        -0.00019841269841146993,
        2.4801587616145414e-05,
        -2.755731943362024e-06,
        2.7557076636642725e-07,
        -2.505194670972162e-08,
        2.0962955815976076e-09,
        -1.6116496514371548e-10,
    ),
    None: (
        0.5,
        -0.16666666666666666,
        0.04166666666666665,
        -0.00833333333333333,
        0.0013888888888891426,
        -0.00019841269841267936,
        2.4801587300239394e-05,
        -2.7557319227995463e-06,
        2.7557319566085714e-07,
        -2.5052106716012107e-08,
        2.0876712994039883e-09,
        -1.6059341040017887e-10,
        1.147336465241519e-11,
        -7.622791577800359e-13,
        4.742262265406482e-14,
        -3.5765766773792566e-15,
    ),
}


def g_coefficients(t_min: float, t_max: float) -> tuple[tuple[float, ...], bool]:
    """(coefficients, covers): the shortest polynomial for g on [t_min, t_max], and
    whether that interval lies inside the polynomial's (else the direct region is used
    outside the series region)."""
    radius = max(-t_min, t_max)
    for r in (2.0**-4, 0.25, 0.5):
        if radius <= r:
            return G_POLYNOMIALS[r], True
    return G_POLYNOMIALS[None], t_min >= _SERIES_LO and t_max <= _SERIES_HI


def _psi(w: np.ndarray) -> np.ndarray:
    """w − log1p(w) >= 0 without cancellation for small |w|."""
    small = np.abs(w) < 1e-3
    series = w * w * (0.5 - w * (1 / 3 - w * (0.25 - w * (0.2 - w / 6))))
    with np.errstate(all="ignore"):
        direct = w - np.log1p(w)
    return np.where(small, series, direct)


def _float32_buffer(work: _chunked._Workspace, name: str, shape: tuple[int, int]) -> np.ndarray:
    """A float32 scratch array of ``shape`` in a workspace buffer (twice as many fit)."""
    size = shape[0] * shape[1]
    return work(name, (1, (size + 1) // 2)).view(np.float32).reshape(-1)[:size].reshape(shape)


#: Blocks with at least this fraction of their logits in the series region evaluate the
#: series on every logit and the direct form on the others only; below it, the reverse.
_MOSTLY_SERIES = 0.5


def _general_rows(
    a: np.ndarray,
    b: np.ndarray,
    m_a: np.ndarray,
    m_b: np.ndarray,
    work: _chunked._Workspace,
    narrow: bool,
    lo_a: np.ndarray,
    lo_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`block_rows` for any block (−inf masks, float64 logits, logits of very
    different magnitudes): differences by TwoSum where they may be inexact."""
    shape = a.shape
    rows, n = shape
    masked = bool(np.isneginf(lo_a).any() or np.isneginf(lo_b).any())
    if masked:
        fa, fb = np.isfinite(a), np.isfinite(b)
        lo_a = np.min(a, axis=-1, where=fa, initial=np.inf)
        lo_b = np.min(b, axis=-1, where=fb, initial=np.inf)
    big = np.maximum(np.maximum(np.abs(m_a), np.abs(m_b)), np.maximum(-lo_a, -lo_b))
    accepted = big <= _BIG
    largest = float(big.max())
    e = work("ka", shape)  # α, then E = e^α
    be = work("kb", shape)  # β
    t = work("kt", shape)  # δ, then t
    exact = False
    if narrow and largest <= _BIG:
        smallest = min(float(np.abs(a, out=t).min()), float(np.abs(b, out=t).min()))
        exact = smallest >= largest * 2.0**-27
    al_lo = be_lo = corr = None
    if exact:
        np.subtract(a, m_a[:, None], out=e)
        np.subtract(b, m_b[:, None], out=be)
        np.subtract(e, be, out=t)  # δ, exact
    else:
        al_hi, al_lo = two_sum(a, -m_a[:, None])
        be_hi, be_lo = two_sum(b, -m_b[:, None])
        if masked:
            al_lo[~fa] = 0.0
            be_lo[~fb] = 0.0
        x, x_err = two_sum(al_hi, -be_hi)
        corr = x_err + (al_lo - be_lo)
        np.copyto(t, x)
        np.copyto(e, al_hi)
        np.copyto(be, be_hi)
        del al_hi, be_hi, x, x_err
    # S_b only enters the shift ĉ, whose error the correction below removes: float32
    # exponentials suffice.
    f32 = _float32_buffer(work, "kf", shape)
    np.copyto(f32, be, casting="unsafe")
    np.exp(f32, out=f32)
    sb = f32.sum(axis=-1).astype(np.float64)
    np.exp(e, out=e)
    if al_lo is not None:
        np.multiply(e, 1.0 + al_lo, out=e)
    sa_hi, sa_lo = _chunked._exact_row_sums(e, work, "ks", levels=1)
    sa = sa_hi + sa_lo
    c = np.log(sa) - np.log(sb)
    kappa = np.exp(c)
    np.subtract(t, c[:, None], out=t)
    if corr is not None:
        np.add(t, corr, out=t)
        del corr
    infinite = None
    if masked:
        infinite = (fa & ~fb).any(axis=-1)
        # E_i = 0 where P bans the token: t = −3 puts it in the direct region, κF_i.
        np.copyto(t, -3.0, where=~(fa & fb))
    t_min, t_max = float(t.min()), float(t.max())
    coefficients, covers = g_coefficients(t_min, t_max)
    terms = np.zeros(rows)
    g = work("kg", shape)
    x = work("kx", shape)
    inside = None
    if not covers:
        inside = (t >= _SERIES_LO) & (t <= _SERIES_HI)
        mostly_series = np.count_nonzero(inside) >= _MOSTLY_SERIES * t.size
    if covers or mostly_series:
        _chunked.horner(list(coefficients), t, g)
        np.multiply(t, t, out=x)
        np.multiply(g, x, out=g)
        np.multiply(g, e, out=g)
        if inside is not None:
            np.copyto(g, 0.0, where=~inside)
        terms += g.sum(axis=-1)
    else:
        # The series on the few logits inside only, scattered back into a zeroed block so
        # that each row is still one pairwise sum (a loop over rows cost ~50 µs a row).
        idx = np.flatnonzero(inside)
        tr = t.reshape(-1)[idx]
        poly = _chunked.horner(list(coefficients), tr, np.empty_like(tr))
        g.fill(0.0)
        g.reshape(-1)[idx] = poly * (tr * tr) * e.reshape(-1)[idx]
        terms += g.sum(axis=-1)
    if inside is not None:
        # The direct region: E(t − 1) + κF, with F = e^β in float64 where it is needed.
        if mostly_series:
            idx = np.flatnonzero(~inside)
            f = np.exp(be.reshape(-1)[idx])
            if be_lo is not None:
                f *= 1.0 + be_lo.reshape(-1)[idx]
            f *= kappa[idx // n]
            g.fill(0.0)
            g.reshape(-1)[idx] = e.reshape(-1)[idx] * (t.reshape(-1)[idx] - 1.0) + f
            terms += g.sum(axis=-1)
        else:
            np.exp(be, out=be)
            if be_lo is not None:
                np.multiply(be, 1.0 + be_lo, out=be)
            np.multiply(be, kappa[:, None], out=be)
            np.subtract(t, 1.0, out=x)
            np.multiply(x, e, out=x)
            np.add(x, be, out=x)
            np.copyto(x, 0.0, where=inside)
            terms += x.sum(axis=-1)
    # The correction for ĉ: with A = Σ P h(t̂) and B = Σ P t̂, A − B = e^ε − 1 exactly and
    # KL = A − ψ(A − B), ψ(w) = w − log1p(w).
    total = terms / sa
    np.multiply(e, t, out=x)
    w = total - x.sum(axis=-1) / sa
    kl = np.maximum(total - _psi(w), 0.0)
    # Its rounding: w is within η of e^ε − 1, ψ(w) within |w|·η of ψ(e^ε − 1).
    spread = max(abs(t_min), abs(t_max))
    eta = _U * (math.log2(n) + 8.0) * (total + spread)
    accepted &= (np.abs(w) <= 2.0**-20) & (16.0 * np.abs(w) * eta <= _U * kl)
    # Tokens with e^α or e^β below 2**-1000 (underflowing): their terms, at most
    # n·2**-1000·(|t| + 2) in all, must be negligible next to KL.
    faint = np.maximum(m_a - lo_a, m_b - lo_b) > 690.0
    accepted &= ~faint | (16.0 * n * 2.0**-1000 * (spread + 2.0) <= _U * kl)
    if infinite is not None:
        kl = np.where(infinite, np.inf, kl)
        accepted |= infinite & (big <= _BIG)
    return kl, accepted


#: Rows whose differences δ = α − β span at most this take the series everywhere
#: (:func:`_near_rows`); wider rows take :func:`_far_rows`.
NEAR_SPREAD = 0.99

#: Far rows with KL at least this are summed in the direct form alone: within
#: (5 + 8/KL)u = 8.2u of their value (module docs), as the series terms are.
DIRECT_KL = 2.5


def block_rows(
    a: np.ndarray,
    b: np.ndarray,
    m_a: np.ndarray,
    m_b: np.ndarray,
    work: _chunked._Workspace,
    narrow: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(KL, accepted) for a block of whole rows of valid logits, as in the module docs.

    ``m_a``, ``m_b``: the row maxima (finite). ``narrow``: the logits are float32
    values (or float16, integers). Rows not accepted are left to the caller.
    """
    shape = a.shape
    if not narrow and a.dtype == b.dtype == np.float64:
        # float64 logits that hold float32 values (a model's float32 or bfloat16 output,
        # upcast) have the exact differences of float32 ones: their float32 copies serve.
        a32, b32 = _float32_buffer(work, "na", shape), _float32_buffer(work, "nb", shape)
        np.copyto(a32, a, casting="unsafe")
        if (a32 == a).all():
            np.copyto(b32, b, casting="unsafe")
            if (b32 == b).all():
                a, b, narrow = a32, b32, True
    m_a, m_b = m_a.astype(np.float64), m_b.astype(np.float64)
    lo_a, lo_b = a.min(axis=-1).astype(np.float64), b.min(axis=-1).astype(np.float64)
    infinite, given = None, (a, b, lo_a, lo_b)
    if (
        narrow
        and a.dtype == b.dtype == np.float32
        and (np.isneginf(lo_a) | np.isneginf(lo_b)).any()
    ):
        a, b, infinite = _unmasked(a, b, m_a, m_b, work)
        lo_a, lo_b = a.min(axis=-1).astype(np.float64), b.min(axis=-1).astype(np.float64)
    big = np.maximum(np.maximum(np.abs(m_a), np.abs(m_b)), np.maximum(-lo_a, -lo_b))
    largest = float(big.max())
    exact = narrow and largest <= _BIG
    if exact:  # float32 differences are exact unless some logit is tiny next to others
        both32 = a.dtype == b.dtype == np.float32
        scratch = _float32_buffer(work, "kf", shape) if both32 else work("kt", shape)
        smallest = min(float(np.abs(x, out=scratch).min()) for x in (a, b))
        exact = smallest >= largest * 2.0**-27
        if not exact and infinite is not None:
            exact = _exact_beside_floors(given[0], given[1], m_a, m_b, smallest)
    if not exact:  # the given logits (−inf masks included) to the TwoSum method
        a, b, lo_a, lo_b = given
        a, b = as_float64(a, work, "in0"), as_float64(b, work, "in1")
        return _general_rows(a, b, m_a, m_b, work, narrow, lo_a, lo_b)
    t = work("kt", shape)
    # Exact differences (module docs): α, β and δ = α − β.
    e = np.subtract(a, m_a[:, None], out=work("ka", shape))
    be = np.subtract(b, m_b[:, None], out=work("kb", shape))
    np.subtract(e, be, out=t)
    # Tokens with e^α or e^β below 2**-1000 (underflowing) are dropped from the sums:
    # their terms, at most n·2**-1000·(|t| + 2) in all, must be negligible next to KL.
    faint = np.maximum(m_a - lo_a, m_b - lo_b) > 690.0
    # A sample of δ (every 16th token) tells rows surely far apart from the others: for
    # those a bound on δ's range (|δ| <= the larger logit span) does, without a pass.
    sample = np.ascontiguousarray(t[:, ::16])  # one strided read, then small
    if ((sample.max(axis=-1) - sample.min(axis=-1)) <= NEAR_SPREAD).any():
        d_lo, d_hi = t.min(axis=-1), t.max(axis=-1)
    else:
        d_hi = np.maximum(m_a - lo_a, m_b - lo_b)
        d_lo = -d_hi
    near = (d_hi - d_lo) <= NEAR_SPREAD
    # The sample also guesses (checked later) whether most tokens fall in the series
    # region: within 1.25 of the sample's mean.
    spread = np.abs(sample - sample.mean(axis=-1, keepdims=True))
    mostly_inside = np.count_nonzero(spread > 1.25, axis=-1) <= MID_OUTSIDE * sample.shape[1]
    kind = np.where(near, 0, np.where(mostly_inside, 1, 2))
    methods = (_near_rows, _mid_rows, _far_rows)
    if (kind == kind[0]).all():
        kl, accepted = methods[kind[0]](e, be, t, d_lo, d_hi, faint, work)
    else:
        kl, accepted = np.empty(shape[0]), np.empty(shape[0], dtype=bool)
        for r in range(shape[0]):  # a block of rows of different kinds (two rows, mostly)
            rows = slice(r, r + 1)
            kl[rows], accepted[rows] = methods[kind[r]](
                e[rows], be[rows], t[rows], d_lo[rows], d_hi[rows], faint[rows], work
            )
    if infinite is not None:
        kl[infinite], accepted[infinite] = np.inf, True
    return kl, accepted


#: A −inf logit becomes the row's maximum minus this (float32 blocks): its e^α, e^β
#: underflow to exactly 0 (below e^−745.2), so the token has probability 0 as it should;
#: small, so that the block's logits stay within the 2**27 the exact differences need.
_MASKED = 750.0


def _unmasked(a, b, m_a, m_b, work):
    """(a, b, infinite) for a float32 block with −inf logits: copies with each −inf
    raised to the row's maximum minus _MASKED, and the rows where Q bans a token P
    allows (KL = +inf). A token P bans gets E = 0 and t far below −3/2: its term is
    κF = S_a·Q_i (the direct form); one both ban contributes nothing."""
    shape = a.shape
    infinite = (np.isneginf(b) & ~np.isneginf(a)).any(axis=-1)
    out = []
    for x, m, name in ((a, m_a, "ma"), (b, m_b, "mb")):
        floor = (m - _MASKED).astype(np.float32)
        out.append(np.maximum(x, floor[:, None], out=_float32_buffer(work, name, shape)))
    return out[0], out[1], infinite


def _exact_beside_floors(a, b, m_a, m_b, smallest: float) -> bool:
    """Whether a float32 block with −inf logits has exact differences after all, the
    floors (row maximum − _MASKED, ~750) set aside: the check in :func:`block_rows`
    compares the smallest logit with the floors, and a logit of 5e-6 among 131,072 sent
    a third of the masked benchmark's blocks to the TwoSum method (13% slower).

    The four numbers of a difference (a_i, max a, b_i, max b) must lie within 2**27 of
    each other (module docs). Tokens both models allow: the finite logits and maxima,
    within 2**27 of ``smallest``. A floor meets only the row maxima and, where P bans a
    token Q allows, that b_i; those must be within 2**27 of the floors. (Where Q bans a
    token P allows the row is +inf whatever its sums.)"""
    allowed_a, allowed_b = ~np.isneginf(a), ~np.isneginf(b)
    finite = max(
        float(np.abs(m_a).max()),
        float(np.abs(m_b).max()),
        abs(float(np.min(a, where=allowed_a, initial=np.inf))),
        abs(float(np.min(b, where=allowed_b, initial=np.inf))),
    )
    floors = max(float(np.abs((m - _MASKED).astype(np.float32)).max()) for m in (m_a, m_b))
    partners = min(
        float(np.abs(m_a).min()),
        float(np.abs(m_b).min()),
        float(np.min(np.abs(b), where=~allowed_a & allowed_b, initial=np.inf)),
    )
    return smallest >= finite * 2.0**-27 and partners >= floors * 2.0**-27


def as_float64(x: np.ndarray, work: _chunked._Workspace, name: str) -> np.ndarray:
    """``x`` as float64: itself, or a copy in a workspace buffer."""
    if x.dtype == np.float64:
        return x
    out = work(name, x.shape)
    np.copyto(out, x, casting="unsafe")
    return out


def _faint_ok(faint: np.ndarray, n: int, spread: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """Rows whose underflowing tokens (if any) are negligible next to KL."""
    return ~faint | (16.0 * n * 2.0**-1000 * (spread + 2.0) <= _U * kl)


def _near_rows(e, be, t, d_lo, d_hi, faint, work):
    """Rows whose δ span at most NEAR_SPREAD: the series everywhere, no e^β at all.

    ``e`` = α, ``t`` = δ (both overwritten; ``be`` unused). For any shift c₀, with
    t = δ − c₀, X = Σ P t² g(t) and μ₁ = Σ P t: Σ P e^{−t} = 1 − μ₁ + X and
    KL = μ₁ + log(1 − μ₁ + X) = X − ψ(X − μ₁) (module docs). c₀ = μ − σ²/2 from P's
    mean and variance of δ makes X − μ₁ small, so μ₁'s rounding barely moves KL.
    """
    shape = e.shape
    np.exp(e, out=e)  # E
    sa_hi, sa_lo = _chunked._exact_row_sums(e, work, "ks", levels=1)
    sa = sa_hi + sa_lo
    y = np.multiply(e, t, out=work("ky", shape))
    mean = y.sum(axis=-1) / sa
    np.multiply(y, t, out=y)
    variance = np.maximum(y.sum(axis=-1) / sa - mean * mean, 0.0)
    # (kept where the series covers t = δ − c₀: −3/2 <= t <= 1, the span being below 1)
    c0 = np.clip(mean - 0.5 * variance, d_hi - _SERIES_HI, d_lo - _SERIES_LO)
    np.subtract(t, c0[:, None], out=t)
    # Rounding is monotonic: the extremes of t = fl(δ − c₀) are those of δ, shifted.
    t_lo, t_hi = d_lo - c0, d_hi - c0
    coefficients, covers = g_coefficients(float(t_lo.min()), float(t_hi.max()))
    if not covers:  # (not seen: the span is below 1) the whole-row method
        return np.zeros(shape[0]), np.zeros(shape[0], dtype=bool)
    g = _chunked.horner(list(coefficients), t, work("kg", shape))
    np.multiply(e, t, out=y)  # E t
    mu1 = y.sum(axis=-1) / sa
    np.multiply(y, t, out=y)  # E t²
    np.multiply(g, y, out=g)
    x = g.sum(axis=-1) / sa
    v = x - mu1
    kl = np.maximum(x - _psi(v), 0.0)
    # μ₁ is a signed sum, within η of its value (Σ P|t| <= sqrt(Σ P t²) <= sqrt(2.8 X),
    # g >= 0.36); ψ moves by at most |v|·η: accepted where that is below u·KL/16.
    spread = np.maximum(np.abs(t_lo), np.abs(t_hi))
    eta = _U * (math.log2(shape[1]) + 8.0) * np.sqrt(2.8 * x)
    accepted = (np.abs(v) <= 2.0**-4) & (16.0 * np.abs(v) * eta <= _U * kl) & (kl > 0)
    return kl, accepted & _faint_ok(faint, shape[1], spread, kl)


def _far_rows(e, be, t, d_lo, d_hi, faint, work):
    """Rows whose δ span more than NEAR_SPREAD, most tokens outside the series region:
    E and F = e^β in float64, the direct form E(t − 1) + κF everywhere, and the series
    on [−3/2, 1] for rows with KL below DIRECT_KL (module docs)."""
    np.exp(e, out=e)  # E
    sa_hi, sa_lo = _chunked._exact_row_sums(e, work, "ks", levels=1)
    return _direct_rows(e, sa_hi + sa_lo, be, t, d_lo, d_hi, faint, work)


def _direct_rows(e, sa, be, t, d_lo, d_hi, faint, work):
    """:func:`_far_rows` once E (``e``) and S_a are known; ``be`` = β, ``t`` = δ."""
    shape = e.shape
    np.exp(be, out=be)  # F
    # S_b's rounding moves ĉ by a few u: KL moves by ε²/2 (module docs), negligible.
    c = np.log(sa) - np.log(be.sum(axis=-1))
    kappa = np.exp(c)
    x = np.subtract(t, (c + 1.0)[:, None], out=work("kx", shape))  # t − 1 = δ − (c + 1)
    np.multiply(x, e, out=x)
    np.multiply(be, kappa[:, None], out=be)
    np.add(x, be, out=x)
    kl = np.maximum(x.sum(axis=-1) / sa, 0.0)
    t_lo, t_hi = d_lo - c, d_hi - c
    spread = np.maximum(np.abs(t_lo), np.abs(t_hi))
    hybrid = ~(kl >= DIRECT_KL)
    if hybrid.any():
        rows = slice(None) if hybrid.all() else np.flatnonzero(hybrid)
        tt = np.subtract(t[rows], c[rows, None], out=t[rows])
        kl[rows] = _hybrid_sums(tt, e[rows], x[rows], work) / sa[rows]
    # ĉ is within a few u of its value: its second-order error needs KL >= 2**-30.
    accepted = kl >= 2.0**-30
    return kl, accepted & _faint_ok(faint, shape[1], spread, kl)


#: Far rows with at most this fraction of their tokens outside the series region take
#: :func:`_mid_rows` (e^β for those tokens only), the others :func:`_far_rows`.
MID_OUTSIDE = 0.125


def _mid_rows(e, be, t, d_lo, d_hi, faint, work):
    """Far rows with most tokens inside the series region: the series everywhere but on
    the tokens outside −3/2 <= t <= 1, whose direct terms need e^β in float64; S_b from
    float32 exponentials, the shift's error removed by the correction with
    B = Σ P t̂ (module docs). Rows with more tokens outside go to :func:`_direct_rows`."""
    shape = e.shape
    f32 = _float32_buffer(work, "kf", shape)
    np.copyto(f32, be, casting="unsafe")
    np.exp(f32, out=f32)
    sb = f32.sum(axis=-1).astype(np.float64)
    np.exp(e, out=e)
    sa_hi, sa_lo = _chunked._exact_row_sums(e, work, "ks", levels=1)
    sa = sa_hi + sa_lo
    c = np.log(sa) - np.log(sb)
    tt = np.subtract(t, c[:, None], out=work("kx", shape))  # t̂ (δ is kept)
    inside = tt >= _SERIES_LO
    inside &= tt <= _SERIES_HI
    outside = tt.size - np.count_nonzero(inside)
    if outside > MID_OUTSIDE * tt.size:
        return _direct_rows(e, sa, be, t, d_lo, d_hi, faint, work)
    kappa = np.exp(c)
    idx = np.flatnonzero(~inside)
    flat_t, flat_e = tt.reshape(-1), e.reshape(-1)
    t_out, e_out = flat_t[idx], flat_e[idx]
    flat_t[idx] = 0.0  # series terms 0 there; the polynomial covers the others' range
    t_min, t_max = float(tt.min()), float(tt.max())
    coefficients, _ = g_coefficients(t_min, t_max)
    g = _chunked.horner(list(coefficients), tt, work("kg", shape))
    y = np.multiply(e, tt, out=work("ky", shape))  # E t̂
    y.reshape(-1)[idx] = e_out * t_out
    b_sum = y.sum(axis=-1)
    np.multiply(y, tt, out=y)  # E t̂² (0 outside)
    np.multiply(g, y, out=g)
    rows_out = idx // shape[1]
    f_out = np.exp(be.reshape(-1)[idx])
    g.reshape(-1)[idx] = e_out * (t_out - 1.0) + kappa[rows_out] * f_out
    total = g.sum(axis=-1) / sa
    w = total - b_sum / sa
    kl = np.maximum(total - _psi(w), 0.0)
    # (tokens P bans, E = 0, do not count: Σ P|t̂| is over the others)
    spread = max(-t_min, t_max, float(np.abs(t_out[e_out > 0]).max(initial=0.0)))
    eta = _U * (math.log2(shape[1]) + 8.0) * (total + spread)
    accepted = (np.abs(w) <= 2.0**-20) & (16.0 * np.abs(w) * eta <= _U * kl)
    return kl, accepted & _faint_ok(faint, shape[1], spread, kl)


def _hybrid_sums(t: np.ndarray, e: np.ndarray, x: np.ndarray, work) -> np.ndarray:
    """Row sums of S_a·P h(t): the series E t² g(t) where −3/2 <= t <= 1, the direct
    terms ``x`` = E(t − 1) + κF elsewhere. ``t`` and ``x`` may be overwritten."""
    inside = t >= _SERIES_LO
    inside &= t <= _SERIES_HI
    outside = t.size - np.count_nonzero(inside)
    if outside <= t.size // 16:
        # Few tokens outside (a row equal but for a few tokens, say): the series on t = 0
        # there, so the polynomial need only cover the others' range; then their direct
        # terms in its place.
        idx = np.flatnonzero(~inside)
        x_out = x.reshape(-1)[idx]
        t.reshape(-1)[idx] = 0.0
        coefficients, _ = g_coefficients(float(t.min()), float(t.max()))
    else:
        coefficients, x_out = G_POLYNOMIALS[None], None
    g = _chunked.horner(list(coefficients), t, work("kg", t.shape))
    y = np.multiply(e, t, out=work("ky", t.shape))
    np.multiply(y, t, out=y)
    np.multiply(g, y, out=g)  # the series terms E t² g(t)
    if x_out is not None:
        g.reshape(-1)[idx] = x_out
    else:
        # x + inside·(g − x): g where inside (x + (g − x) is g when x is within a factor
        # 2 of g, else within u|g| + u|g − x|), x elsewhere; no masked copy (slow).
        np.subtract(g, x, out=g)
        np.multiply(g, inside, out=g)
        np.add(g, x, out=g)
    return np.maximum(g.sum(axis=-1), 0.0)


def long_row(a: np.ndarray, b: np.ndarray) -> tuple[float, bool, bool]:
    """(KL, accepted, valid) for one row longer than :data:`LONG_ROW`, in pieces.

    The method of :func:`block_rows` in three passes over pieces of CHUNK logits (any
    dtype; each piece is converted to float64 on its own): the maxima; S_a (exact),
    S_b (float32) and the range of t; the terms and Σ P t̂. Differences are formed
    error-free (TwoSum) whatever the dtype. ``valid`` is False for NaN, +inf or a row
    of −inf only (validation then names the entry).
    """
    n = a.shape[-1]
    step = _chunked.CHUNK
    pieces = [(c0, min(n, c0 + step)) for c0 in range(0, n, step)]

    def piece(x: np.ndarray, c0: int, c1: int) -> np.ndarray:
        return np.asarray(x[c0:c1], dtype=np.float64)

    m_a = m_b = -np.inf
    lo = np.inf
    for c0, c1 in pieces:
        x, y = piece(a, c0, c1), piece(b, c0, c1)
        if np.isnan(x).any() or np.isnan(y).any():
            return 0.0, False, False
        m_a, m_b = max(m_a, float(x.max())), max(m_b, float(y.max()))
        lo = min(lo, float(np.min(x, where=np.isfinite(x), initial=np.inf)))
        lo = min(lo, float(np.min(y, where=np.isfinite(y), initial=np.inf)))
    if not (math.isfinite(m_a) and math.isfinite(m_b)):
        return 0.0, False, False
    if max(abs(m_a), abs(m_b), -lo) > _BIG:
        return 0.0, False, True

    def parts(c0: int, c1: int):
        x, y = piece(a, c0, c1), piece(b, c0, c1)
        fa, fb = np.isfinite(x), np.isfinite(y)
        al_hi, al_lo = two_sum(x, -m_a)
        be_hi, be_lo = two_sum(y, -m_b)
        al_lo[~fa] = 0.0
        be_lo[~fb] = 0.0
        d, d_err = two_sum(al_hi, -be_hi)
        e = np.exp(al_hi) * (1.0 + al_lo)
        return fa, fb, be_hi, be_lo, d, d_err + (al_lo - be_lo), e

    sa_hi = sa_lo = sb = 0.0
    infinite = False
    for c0, c1 in pieces:
        fa, fb, be_hi, _, _, _, e = parts(c0, c1)
        infinite |= bool((fa & ~fb).any())
        hi, lo_ = _chunked._exact_row_sums(e[None, :], _chunked._Workspace(), "s", levels=1)
        s, err = two_sum(sa_hi, float(hi[0]))
        sa_hi, sa_lo = float(s), sa_lo + float(err) + float(lo_[0])
        sb += float(np.exp(be_hi.astype(np.float32)).sum(dtype=np.float64))
    if infinite:
        return math.inf, True, True
    sa = sa_hi + sa_lo
    c = math.log(sa) - math.log(sb)
    kappa = math.exp(c)
    coefficients = list(G_POLYNOMIALS[None])
    a_hi = a_lo = b_hi = b_lo = 0.0
    spread = 0.0
    for c0, c1 in pieces:
        fa, fb, be_hi, be_lo, d, corr, e = parts(c0, c1)
        t = (d - c) + corr
        t[~(fa & fb)] = -3.0
        spread = max(spread, float(np.abs(t).max()))
        inside = (t >= _SERIES_LO) & (t <= _SERIES_HI)
        series = _chunked.horner(coefficients, np.where(inside, t, 0.0), np.empty_like(t))
        series *= t * t * e
        direct = e * (t - 1.0) + kappa * (np.exp(be_hi) * (1.0 + be_lo))
        terms = np.where(inside, series, direct)
        s, err = two_sum(a_hi, float(terms.sum()))
        a_hi, a_lo = float(s), a_lo + float(err)
        s, err = two_sum(b_hi, float((e * t).sum()))
        b_hi, b_lo = float(s), b_lo + float(err)
    total = (a_hi + a_lo) / sa
    w = total - (b_hi + b_lo) / sa
    kl = max(total - float(_psi(np.array(w))), 0.0)
    eta = _U * (math.log2(n) + 8.0) * (total + spread)
    accepted = abs(w) <= 2.0**-20 and 16.0 * abs(w) * eta <= _U * kl
    if max(m_a, m_b) - lo > 690.0:  # tokens that underflow (block_rows)
        accepted = accepted and 16.0 * n * 2.0**-1000 * (spread + 2.0) <= _U * kl
    return kl, accepted, True
