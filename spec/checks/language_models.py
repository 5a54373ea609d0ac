r"""Checks of the language-model clauses: per-token KL, sequences, and the KL estimators.

Called like :mod:`klspec.reference`: ``token_kl(logits_p, logits_q)`` reduces
the last axis (the vocabulary) and returns one value per position;
``k1(logp, ref_logp)``, ``k2``, ``k3`` are elementwise over sampled tokens;
``sequence_log_prob(token_logprobs, mask)`` and
``sequence_log_ratio(logp, ref_logp, mask)`` sum the last axis over the
positions where the boolean ``mask`` is true.

Truths come from mpmath on the float64 inputs; tolerances from the error a
correct float64 evaluation of the formula can make (:func:`_token_kl_tolerance`,
:func:`estimator_tolerance`). Expectations over π are taken *by enumeration*:
every token (or every sequence of a small autoregressive model), weighted by
its probability, with the implementation's own per-token values.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import mpmath
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from klspec.spec import _expected
from klspec.spec._assert import invoke, literal, observe, require, require_close, violated
from klspec.spec.checks._registry import check
from klspec.spec.interface import Implementation
from klspec.spec.precision import FLOAT64, Precision
from klspec.spec.strategies import Case
from klspec.spec.tolerances import U, gamma

_DPS = 90  # nearly equal logits (1e-15 apart) give KL ~ 1e-30 from terms of size ~1

# --- inputs ----------------------------------------------------------------------------


#: Where a "masked" row of logits holds −inf (a banned token has probability 0).
MASKS = ("p", "q", "both", "nearly_all", "p_at_q_top")


def _mask(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, where: str):
    """Put −inf logits into a and b (rows positions × vocabulary), keeping a finite one per row.

    "p": some of P's logits (P_i = 0: the term is 0); "q": some of Q's (KL = +inf where
    P_i > 0); "both": the same tokens in both (a masked vocabulary); "nearly_all": every
    token but one or two, in both; "p_at_q_top": P's logit at Q's largest one.
    """
    a, b = a.copy(), b.copy()
    vocab = a.shape[-1]
    for row in range(a.shape[0]):
        if where == "p_at_q_top":
            a[row, int(np.argmax(b[row]))] = -np.inf
        elif where == "nearly_all":
            keep = rng.choice(vocab, size=min(vocab, int(rng.integers(1, 3))), replace=False)
            masked = np.setdiff1d(np.arange(vocab), keep)
            a[row, masked] = -np.inf
            b[row, masked] = -np.inf
        else:
            masked = rng.random(vocab) < 0.4
            if where in ("p", "both"):
                a[row, masked] = -np.inf
            if where in ("q", "both"):
                b[row, masked] = -np.inf
        for x in (a, b):  # a row of logits must hold some probability
            if np.isneginf(x[row]).all():
                x[row, int(rng.integers(vocab))] = 0.0
    return a, b


@st.composite
def logit_pairs(
    draw: st.DrawFn, *, regime: str | None = None, precision: Precision = FLOAT64
) -> Case:
    """Rows of logits (positions × vocabulary) for P and Q: equal, nearly equal, a few ulps
    apart, apart, or masked (−inf logits: :func:`_mask`), rounded to ``precision``."""
    fmt = precision
    positions = draw(st.integers(1, 3), label="positions")
    vocab = draw(st.integers(1, 24), label="vocabulary")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    scale = draw(st.sampled_from([1e-3, 1.0, 5.0, 30.0]), label="scale")
    regime = regime or draw(st.sampled_from(["apart", "near", "ulps", "equal"]), label="regime")
    rng = np.random.default_rng(seed)
    a = fmt.round(rng.normal(0.0, scale, (positions, vocab)))
    if regime == "equal":
        b = a.copy()
    elif regime == "near":
        finest = max(-15, math.floor(math.log10(fmt.u)))
        exponent = draw(st.integers(finest, -3), label="exponent")
        b = a + rng.normal(0.0, 10.0**exponent, a.shape) * np.maximum(np.abs(a), 1.0)
    elif regime == "ulps":
        b = fmt.ulps(a, rng.integers(-3, 4, a.shape))
    else:
        b = rng.normal(0.0, scale, a.shape)
    b = fmt.round(b)
    if regime == "masked":
        where = draw(st.sampled_from(MASKS), label="mask")
        if draw(st.booleans(), label="near"):  # masked rows that are otherwise nearly equal
            b = fmt.ulps(a, rng.integers(-3, 4, a.shape))
        a, b = _mask(rng, a, b, where)
        regime = f"masked({where})"
    return Case(logits_p=a, logits_q=b, regime=regime)


def _grid(fmt: Precision) -> tuple[int, int, int]:
    """(m, s, e): logits k·2^-e below 2^m and integer shifts below 2^s add exactly in ``fmt``."""
    m, s = (6, 20) if fmt.bits == 53 else ((6, 6) if fmt.bits >= 24 else (2, 2))
    return m, s, min(30, fmt.bits - 2 - max(m, s))


@st.composite
def _shift_pairs(draw: st.DrawFn, *, precision: Precision = FLOAT64) -> Case:
    """Logits on the grid 2^-e·k below 2^m, so adding an integer below 2^s is exact (in float64
    e = 30, m = 6, s = 20; smaller in the narrower formats: :func:`_grid`)."""
    m, s, e = _grid(precision)
    vocab = draw(st.integers(1, 16), label="vocabulary")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-(2 ** (m + e)), 2 ** (m + e), (2, vocab)) * 2.0**-e).reshape(2, 1, vocab)
    shift = draw(st.integers(-(2**s), 2**s).filter(bool), label="shift")
    return Case(logits_p=a, logits_q=b, shift=[float(shift)], regime="grid")


def _log_probs(rng: np.random.Generator, vocab: int, spread: float) -> np.ndarray:
    logits = rng.normal(0.0, spread, vocab)
    with mpmath.workdps(40):
        return logits - float(_lse(logits))


def _inner(log_ratio_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """The declared range of log r, less 1% of its width at each end (room for rounding)."""
    if log_ratio_range is None:
        return None
    lo, hi = log_ratio_range
    margin = 0.01 * (hi - lo)
    return lo + margin, hi - margin


def _fit(logp: np.ndarray, ref: np.ndarray, fmt: Precision, bounds: tuple[float, float] | None):
    """``ref`` moved by a few units in the last place so that ref − logp lies in ``bounds``."""
    if bounds is None:
        return ref
    lo, hi = bounds
    for _ in range(8):
        d = ref - logp
        step = np.where(d > hi, -1, np.where(d < lo, 1, 0))
        if not step.any():
            break
        ref = np.minimum(fmt.ulps(ref, step), 0.0)
    return ref


@st.composite
def _token_pairs(
    draw: st.DrawFn,
    *,
    precision: Precision = FLOAT64,
    log_ratio_range: tuple[float, float] | None = None,
) -> Case:
    """log π and log π_ref over a whole vocabulary (every token, for enumeration).

    Drawn in float64, normalised, then rounded to ``precision``; with a
    ``log_ratio_range`` every log r = ref_logp − logp lies inside it (less 1% of its
    width at each end).
    """
    fmt = precision
    vocab = draw(st.integers(2, 12), label="vocabulary")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    spread = draw(st.sampled_from([0.1, 1.0, 3.0]), label="spread")
    logp = _log_probs(rng, vocab, spread)
    regime = draw(st.sampled_from(["apart", "near", "ulps"]), label="regime")
    if regime == "near":
        # Relative gaps the format resolves: from about its unit roundoff up to 1e-2.
        finest = max(-14, math.floor(math.log10(fmt.u)))
        exponent = draw(st.integers(finest, -2), label="exponent")
        ref = logp + rng.normal(0, 10.0**exponent, vocab)
        with mpmath.workdps(40):
            ref = ref - float(_lse(ref))
    elif regime == "ulps":
        ref = logp
    else:
        ref = _log_probs(rng, vocab, spread)
    bounds = _inner(log_ratio_range)
    if bounds is not None:
        # Bring π_ref towards π until every log-ratio is inside the range.
        lo, hi = bounds
        assume(lo < 0 < hi)
        gap = ref - logp
        for _ in range(60):
            d = logp + gap
            with mpmath.workdps(40):
                d = d - float(_lse(d)) - logp
            if lo <= d.min() and d.max() <= hi:
                break
            gap = gap / 2
        ref = logp + d
    logp = np.minimum(fmt.round(logp), 0.0)
    ref = np.minimum(fmt.round(ref), 0.0)
    if regime == "ulps":  # log-probabilities a few units in the last place apart
        ref = np.minimum(fmt.ulps(logp, rng.integers(-3, 4, vocab)), 0.0)
    ref = _fit(logp, ref, fmt, bounds)
    return Case(logp=logp, ref_logp=ref, regime=regime)


#: log π of the sampled tokens where the literal k3 forms go negative, as (multiple of u,
#: plus a constant, then moved this many ulps away from 0): probabilities within a few
#: units in the last place of 1 (log π a few u below 0), where e^d rounds to 1 and
#: (e^d − 1) − d = −d; and log π at or just beyond −1, −½, −¼, −⅛, where e^d rounds
#: down across a binade and e^d − d − 1 < 0 (−1 and −½ in float64 and float32, −¼ and
#: −⅛ in bfloat16 and float16). Each is exact in every format.
_KILLER_LOGPS: tuple[tuple[float, float, int], ...] = (
    (-0.25, 0.0, 0),
    (-1.0, 0.0, 0),
    (-3.0, 0.0, 0),
    (0.0, -0.5, 0),
    (0.0, -1.0, 0),
    (0.0, -0.25, 1),
    (0.0, -0.125, 2),
)


def _killer_logp(fmt: Precision, index: int) -> np.ndarray:
    times_u, plain, away = _KILLER_LOGPS[index]
    return fmt.ulps(fmt.round([times_u * fmt.u + plain]), -away)


@st.composite
def sampled_tokens(
    draw: st.DrawFn,
    *,
    precision: Precision = FLOAT64,
    log_ratio_range: tuple[float, float] | None = None,
) -> Case:
    """Per-sample log-probabilities: log-ratios of any size the format holds, either sign.

    Two regimes: "spread", log r from the format's smallest subnormal up to 700 (or
    what keeps e^{log r} finite in the format) in size; "killers", log π where the
    literal k3 forms cancel (:data:`_KILLER_LOGPS`) and log π_ref a few units in the
    last place from it. With a ``log_ratio_range`` every log r lies inside it.
    """
    fmt = precision
    n = draw(st.integers(1, 8), label="samples")
    regime = draw(st.sampled_from(["spread", "killers"]), label="regime")
    bounds = _inner(log_ratio_range)
    if regime == "killers":
        picks = draw(
            st.lists(st.integers(0, len(_KILLER_LOGPS) - 1), min_size=n, max_size=n),
            label="killer",
        )
        steps = draw(
            st.lists(st.integers(-3, 3).filter(bool), min_size=n, max_size=n), label="ulps"
        )
        logp = np.concatenate([_killer_logp(fmt, i) for i in picks])
        ref = np.minimum(fmt.ulps(logp, steps), 0.0)
        return Case(logp=logp, ref_logp=_fit(logp, ref, fmt, bounds), regime="killers")
    logp = draw(
        st.lists(st.floats(-700.0, 0.0), min_size=n, max_size=n).map(np.array), label="logp"
    )
    smallest = math.floor(math.log10(fmt.eta))
    magnitudes = draw(
        st.lists(st.integers(smallest, 2), min_size=n, max_size=n).map(np.array), label="log10|d|"
    )
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n), label="signs")
    d = np.array(signs) * 10.0 ** magnitudes.astype(float) * 7
    # e^d, (log r)²/2 must stay finite in the format: |d| below 0.9·log(max).
    d = np.clip(d, -700.0, min(700.0, 0.9 * fmt.max_log))
    if bounds is not None:
        d = np.clip(d, *bounds)
    logp = np.minimum(fmt.round(logp), 0.0)
    ref = np.maximum(np.minimum(logp + d, 0.0), -745.0)
    ref = np.minimum(fmt.round(ref), 0.0)
    return Case(logp=logp, ref_logp=_fit(logp, ref, fmt, bounds), regime="sampled")


def killer_tokens(precision: Precision) -> list[Case]:
    """The explicit inputs of the k3 checks: one sample at each killer, one to three ulps away.

    Tried first on every run, so a literal k3 that goes negative there is caught
    whatever the seed.
    """
    cases = []
    for index in range(len(_KILLER_LOGPS)):
        logp = _killer_logp(precision, index)
        for step in (1, -1, 2, -2, 3):
            ref = np.minimum(precision.ulps(logp, step), 0.0)
            cases.append(Case(logp=logp, ref_logp=ref, regime="killers"))
    return cases


# --- exact values ------------------------------------------------------------------


def _lse(x: np.ndarray) -> mpmath.mpf:
    return mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in x))


def _token_kl_exact(a: np.ndarray, b: np.ndarray, fmt: Precision = FLOAT64) -> tuple[float, float]:
    """KL(softmax(a)‖softmax(b)) of one row, and the tolerance for an evaluation in ``fmt``.

    −inf logits are masked tokens: P_v = 0 contributes 0; Q_v = 0 < P_v makes the KL +inf
    (exactly, tolerance 0).
    """
    live = ~np.isneginf(a)
    if (np.isneginf(b) & live).any():
        return math.inf, 0.0
    with mpmath.workdps(_DPS):
        B = _lse(b[~np.isneginf(b)])  # Q normalises over every token it does not mask
        a, b = a[live], b[live]
        A = _lse(a)
        P = [mpmath.exp(mpmath.mpf(float(x)) - A) for x in a]
        t = [mpmath.mpf(float(x)) - mpmath.mpf(float(y)) - A + B for x, y in zip(a, b, strict=True)]
        value = mpmath.fsum(p * ti for p, ti in zip(P, t, strict=True))
        n = len(a)
        u = fmt.u
        # A log-softmax is off by ~4u·(|logit| + |lse| + 1): that error moves the log-ratio
        # t_v by itself and P_v by as much relatively (P_v = exp(log-softmax)); the product,
        # log and sum add (2γ_n + 2u)·Σ P_v|t_v|. What any evaluation from logits makes in a
        # format of unit roundoff u; P_v that underflow it lose at most η·(|t_v| + 1) each.
        size = mpmath.fsum(p * abs(ti) for p, ti in zip(P, t, strict=True))
        moved = mpmath.fsum(
            p * ((abs(x) + abs(A) + 1) * (1 + abs(ti)) + abs(y) + abs(B) + 1)
            for p, ti, x, y in zip(P, t, a, b, strict=True)
        )
        gamma_n = n * u / (1 - n * u)
        lost = fmt.eta * mpmath.fsum(abs(ti) + 1 for ti in t) if fmt.bits < 53 else 0
        tolerance = float((2 * gamma_n + 2 * u) * size + 4 * u * moved + lost)
        return float(value), tolerance


def token_kl_expected(
    a: np.ndarray, b: np.ndarray, precision: Precision = FLOAT64
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of logits: the exact KL(softmax(a)‖softmax(b)) and the tolerance in ``precision``."""
    rows = [_token_kl_exact(x, y, precision) for x, y in zip(a, b, strict=True)]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def _positions(case: Case) -> tuple[int, ...]:
    return case.logits_p.shape[:-1]


# --- token_kl ----------------------------------------------------------------------


_PRECISION = ("precision",)


@check(
    "token_kl.definition",
    needs={"token_kl"},
    on={
        "logits": logit_pairs,
        "near_equal_logits": functools.partial(logit_pairs, regime="near"),
    },
    adapts=_PRECISION,
)
def token_kl_definition(impl: Implementation, case: Case) -> None:
    """token_kl(a, b) is KL(softmax(a)‖softmax(b)) per position, within its format's tolerance."""
    got = observe(impl, "token_kl", case.logits_p, case.logits_q, shape=_positions(case))
    value, tolerance = token_kl_expected(case.logits_p, case.logits_q, impl.precision)
    require_close("token_kl(logits_p, logits_q)", got, value, tolerance)


@check(
    "token_kl.masked",
    needs={"token_kl"},
    on={"masked_logits": functools.partial(logit_pairs, regime="masked")},
    adapts=_PRECISION,
)
def token_kl_masked(impl: Implementation, case: Case) -> None:
    """−inf logits: P_i = 0 adds nothing, Q_i = 0 < P_i gives +inf, the rest is the KL."""
    got = observe(impl, "token_kl", case.logits_p, case.logits_q, shape=_positions(case))
    value, tolerance = token_kl_expected(case.logits_p, case.logits_q, impl.precision)
    require_close(
        "token_kl(logits_p, logits_q)",
        got,
        value,
        tolerance,
        expected_text="KL over the unmasked tokens",
    )


@check(
    "token_kl.nonnegative",
    needs={"token_kl"},
    on={
        "near_equal_logits": functools.partial(logit_pairs, regime="near"),
        "ulp_apart_logits": functools.partial(logit_pairs, regime="ulps"),
        "equal_logits": functools.partial(logit_pairs, regime="equal"),
        "logits": logit_pairs,
    },
    adapts=_PRECISION,
)
def token_kl_nonnegative(impl: Implementation, case: Case) -> None:
    """token_kl(a, b) >= 0 everywhere, and == 0 exactly where the rows are equal."""
    got = observe(impl, "token_kl", case.logits_p, case.logits_q, shape=_positions(case))
    call = "token_kl(logits_p, logits_q)"
    exactly = ""
    if not (got >= 0).all():  # the exact KL of the first negative row, for the report
        row = tuple(np.argwhere(~(got >= 0))[0])
        value, _ = token_kl_expected(case.logits_p[row][None], case.logits_q[row][None])
        exactly = f" (exactly {float(value[0]):.3g} there)"
    require(got >= 0, call, got, f">= 0{exactly}")
    equal = (case.logits_p == case.logits_q).all(axis=-1)
    require(~equal | (got == 0), call, got, "0 (the rows of logits are equal)")


@check(
    "token_kl.shift_invariant",
    needs={"token_kl"},
    on={"grid_logits": _shift_pairs},
    adapts=_PRECISION,
)
def token_kl_shift_invariant(impl: Implementation, case: Case) -> None:
    """Adding a constant to a row of logits (exactly) leaves token_kl unchanged."""
    a, b, c = case.logits_p, case.logits_q, float(case.shift[0])
    fmt = impl.precision
    base = observe(impl, "token_kl", a, b, shape=(1,))
    _, tolerance = token_kl_expected(a, b, fmt)
    for call, args in (
        (f"token_kl(logits_p + {c:g}, logits_q)", (a + c, b)),
        (f"token_kl(logits_p, logits_q + {c:g})", (a, b + c)),
    ):
        got = observe(impl, "token_kl", *args, call=call, shape=(1,))
        # Each call may be off by its own tolerance, which grows with the size of the logits.
        allowed = tolerance + token_kl_expected(*args, fmt)[1]
        require_close(call, got, base, allowed, expected_text="token_kl(logits_p, logits_q)")


# --- sequences -----------------------------------------------------------------------


@st.composite
def _autoregressive(draw: st.DrawFn) -> dict[str, Any]:
    """Two small autoregressive models (logits for every prefix) as nested arrays."""
    vocab = draw(st.integers(2, 3), label="vocabulary")
    length = draw(st.integers(1, 3), label="length")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    scale = draw(st.sampled_from([0.01, 1.0, 4.0]), label="scale")
    rng = np.random.default_rng(seed)
    prefixes = sum(vocab**k for k in range(length))
    a = rng.normal(0, scale, (prefixes, vocab))
    b = a + rng.normal(0, scale * draw(st.sampled_from([1e-9, 0.1, 1.0]), label="gap"), a.shape)
    return {"vocab": vocab, "length": length, "a": a, "b": b}


def _prefix_index(prefix: tuple[int, ...], vocab: int) -> int:
    """Index of a prefix among all prefixes, shortest first, then lexicographic."""
    offset = sum(vocab**k for k in range(len(prefix)))
    code = 0
    for t in prefix:
        code = code * vocab + t
    return offset + code


def _sequences(vocab: int, length: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for _ in range(length):
        out = [(*s, t) for s in out for t in range(vocab)]
    return out


def _log_softmax_exact(row: np.ndarray) -> list[mpmath.mpf]:
    A = _lse(row)
    return [mpmath.mpf(float(x)) - A for x in row]


@st.composite
def _sequence_batches(draw: st.DrawFn) -> Case:
    """Per-token log-probabilities of sequences under two models, with a mask and padding."""
    model = draw(_autoregressive())
    vocab, length = model["vocab"], model["length"]
    seqs = _sequences(vocab, length)
    chosen = draw(st.lists(st.sampled_from(seqs), min_size=1, max_size=3), label="sequences")
    pad = draw(st.integers(0, 2), label="padding")
    fill = draw(st.sampled_from([-np.inf, -1e300, 0.0]), label="padding value")
    logp, ref, mask, exact = [], [], [], []
    with mpmath.workdps(40):
        for s in chosen:
            lp = [
                _log_softmax_exact(model["a"][_prefix_index(s[:k], vocab)])[t]
                for k, t in enumerate(s)
            ]
            lr = [
                _log_softmax_exact(model["b"][_prefix_index(s[:k], vocab)])[t]
                for k, t in enumerate(s)
            ]
            logp.append([float(x) for x in lp] + [fill] * pad)
            ref.append([float(x) for x in lr] + [fill] * pad)
            mask.append([1.0] * length + [0.0] * pad)
            # The model's own log π(y)/π_ref(y): the log of the product of probabilities.
            exact.append(
                float(
                    mpmath.log(mpmath.fprod(mpmath.exp(x - y) for x, y in zip(lp, lr, strict=True)))
                )
            )
    return Case(logp=logp, ref_logp=ref, mask=mask, exact=exact, regime="autoregressive")


def _sequence_tolerance(*arrays: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per sequence: each given log-probability is within u of the model's, plus the sum."""
    size = np.where(mask > 0, sum(np.abs(np.where(mask > 0, a, 0.0)) for a in arrays), 0.0)
    n = mask.shape[-1]
    return (gamma(n) + 3 * U) * size.sum(axis=-1) + 1e-300


@check("sequence.log_ratio", needs={"sequence_log_ratio"}, on={"autoregressive": _sequence_batches})
def sequence_log_ratio(impl: Implementation, case: Case) -> None:
    """sequence_log_ratio(logp, ref_logp, mask) is log π(y)/π_ref(y) of the enumerated models."""
    mask = case.mask > 0
    got = observe(
        impl,
        "sequence_log_ratio",
        case.logp,
        case.ref_logp,
        mask,
        call="sequence_log_ratio(logp, ref_logp, mask)",
        shape=mask.shape[:-1],
    )
    tolerance = _sequence_tolerance(case.logp, case.ref_logp, mask=case.mask)
    require_close(
        "sequence_log_ratio(logp, ref_logp, mask)",
        got,
        case.exact,
        tolerance,
        expected_text="log π(y)/π_ref(y)",
    )


@check("sequence.log_prob", needs={"sequence_log_prob"}, on={"autoregressive": _sequence_batches})
def sequence_log_prob(impl: Implementation, case: Case) -> None:
    """sequence_log_prob(logp, mask) is Σ log π(y_k|y_<k) over the unmasked tokens, exactly."""
    mask = case.mask > 0
    got = observe(
        impl,
        "sequence_log_prob",
        case.logp,
        mask,
        call="sequence_log_prob(logp, mask)",
        shape=mask.shape[:-1],
    )
    with mpmath.workdps(40):
        exact = [
            float(mpmath.fsum(mpmath.mpf(float(x)) for x, m in zip(row, keep, strict=True) if m))
            for row, keep in zip(case.logp, mask, strict=True)
        ]
    tolerance = _sequence_tolerance(case.logp, mask=case.mask)
    require_close(
        "sequence_log_prob(logp, mask)", got, exact, tolerance, expected_text="Σ log π(y_k|y_<k)"
    )


@st.composite
def _model_pairs(draw: st.DrawFn) -> Case:
    model = draw(_autoregressive())
    return Case(
        a=model["a"], b=model["b"], shape=[model["vocab"], model["length"]], regime="autoregressive"
    )


@check("sequence.kl_chain_rule", needs={"token_kl", "kl"}, on={"autoregressive": _model_pairs})
def sequence_kl_chain_rule(impl: Implementation, case: Case) -> None:
    """kl of the joint sequence distributions = E_π[Σ_k token_kl at each prefix] (enumerated)."""
    vocab, length = (int(x) for x in case.shape)
    seqs = _sequences(vocab, length)
    per_prefix = observe(impl, "token_kl", case.a, case.b, shape=(case.a.shape[0],))
    _, token_tolerance = token_kl_expected(case.a, case.b)
    with mpmath.workdps(40):
        soft_a = [_log_softmax_exact(row) for row in case.a]
        soft_b = [_log_softmax_exact(row) for row in case.b]
        joint_p, joint_q = [], []
        for s in seqs:
            lp = mpmath.fsum(soft_a[_prefix_index(s[:k], vocab)][t] for k, t in enumerate(s))
            lq = mpmath.fsum(soft_b[_prefix_index(s[:k], vocab)][t] for k, t in enumerate(s))
            joint_p.append(mpmath.exp(lp))
            joint_q.append(mpmath.exp(lq))
        prefixes = [s[:k] for k in range(length) for s in _sequences(vocab, k)]
        mass = {
            pre: mpmath.fsum(p for s, p in zip(seqs, joint_p, strict=True) if s[: len(pre)] == pre)
            for pre in prefixes
        }
        expected = mpmath.fsum(
            mass[pre] * mpmath.mpf(float(per_prefix[_prefix_index(pre, vocab)])) for pre in prefixes
        )
        slack = mpmath.fsum(
            mass[pre] * token_tolerance[_prefix_index(pre, vocab)] for pre in prefixes
        )
    p = np.array([float(x) for x in joint_p])
    q = np.array([float(x) for x in joint_q])
    assume(p.min() > 1e-300 and q.min() > 1e-300)
    got = observe(impl, "kl", p, q)
    want = _expected.of("kl", p, q, exact=False)
    tolerance = float(slack) + want.tolerance + 2 * 2 * U * (want.magnitude + 2)
    require_close(
        "kl(P(y), Q(y))",
        got,
        float(expected),
        tolerance,
        expected_text="E_π[Σ_k token_kl(prefix)]",
    )


# --- estimators ----------------------------------------------------------------------

ESTIMATORS = ("k1", "k2", "k3")


def _estimator_exact(name: str, d: mpmath.mpf) -> mpmath.mpf:
    if name == "k1":
        return -d
    if name == "k2":
        return d * d / 2
    if abs(d) < mpmath.mpf("1e-3"):  # e^d − 1 − d = Σ_{k>=2} d^k/k!: no cancellation at any |d|
        return mpmath.fsum(d**k / mpmath.factorial(k) for k in range(2, 16))
    return mpmath.expm1(d) - d


def _floor(fmt: Precision) -> float:
    """An absolute slack for results that underflow: a few of the format's smallest subnormals."""
    return 1e-300 if fmt.bits == 53 else 4 * fmt.eta


def estimator_tolerance(
    name: str, logp: np.ndarray, ref_logp: np.ndarray, precision: Precision = FLOAT64
) -> np.ndarray:
    """The error of a correct evaluation of the literal formula in ``precision``, per sample.

    With u the format's unit roundoff: d = ref_logp − logp is rounded once (u|d|).
    k1 = −d: 2u|d|; k2 = d²/2: 4u·k2; k3 = (e^d − 1) − d: e^d is off by u·e^d·(1 + |d|)
    (its argument's rounding included), then two subtractions: 4u·(e^d(1 + |d|) + 1 + |d|).
    Results that underflow add a few subnormals of the format. The literal k3 meets this
    but is negative for tiny |d| (estimator.k3_nonnegative).
    """
    u = precision.u
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.abs(ref_logp - logp)
        if name == "k1":
            return 2 * u * d + _floor(precision)
        if name == "k2":
            return 4 * u * d * d / 2 + _floor(precision)
        signed = ref_logp - logp
        return 4 * u * (np.exp(signed) * (1 + d) + 1 + d) + _floor(precision)


def _estimator_values(
    impl: Implementation, name: str, logp: np.ndarray, ref: np.ndarray
) -> np.ndarray:
    return observe(impl, name, logp, ref, call=f"{name}(logp, ref_logp)", shape=logp.shape)


def _exact_d(logp: np.ndarray, ref: np.ndarray) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(r)) - mpmath.mpf(float(x)) for x, r in zip(logp, ref, strict=True)]


def _definition(impl: Implementation, case: Case, *, name: str) -> None:
    """k(logp, ref_logp) is Schulman's estimator at each sample, within its format's tolerance."""
    got = _estimator_values(impl, name, case.logp, case.ref_logp)
    with mpmath.workdps(40):
        exact = np.array(
            [float(_estimator_exact(name, d)) for d in _exact_d(case.logp, case.ref_logp)]
        )
    tolerance = estimator_tolerance(name, case.logp, case.ref_logp, impl.precision)
    require_close(f"{name}(logp, ref_logp)", got, exact, tolerance)


def _weights(logp: np.ndarray) -> list[mpmath.mpf]:
    return [mpmath.exp(mpmath.mpf(float(x))) for x in logp]


def _kl_exact(logp: np.ndarray, ref: np.ndarray) -> tuple[mpmath.mpf, float]:
    """KL(π‖π_ref) of the normalised exp(logp), exp(ref), and the inputs' total defect."""
    w, r = _weights(logp), _weights(ref)
    sw, sr = mpmath.fsum(w), mpmath.fsum(r)
    kl = mpmath.fsum(
        x / sw * (mpmath.log(x / sw) - mpmath.log(y / sr)) for x, y in zip(w, r, strict=True)
    )
    return kl, float(abs(sw - 1) + abs(sr - 1))


def _unbiased(impl: Implementation, case: Case, *, name: str) -> None:
    """Σ_t π_t·k(t) over the whole vocabulary is KL(π‖π_ref), within the per-token tolerances."""
    got = _estimator_values(impl, name, case.logp, case.ref_logp)
    tolerance = estimator_tolerance(name, case.logp, case.ref_logp, impl.precision)
    with mpmath.workdps(40):
        w = _weights(case.logp)
        mean = mpmath.fsum(x * mpmath.mpf(float(g)) for x, g in zip(w, got, strict=True))
        slack = mpmath.fsum(x * t for x, t in zip(w, tolerance, strict=True))
        kl, defects = _kl_exact(case.logp, case.ref_logp)
    # Σ exp(logp) is 1 only within rounding: the identity then holds within D·(KL + 1)·2.
    allowed = float(slack) + 2 * defects * (float(kl) + 1) + 4 * U * float(kl)
    require_close(
        f"E_π[{name}(logp, ref_logp)]", float(mean), float(kl), allowed, expected_text="KL(π‖π_ref)"
    )


_ADAPTS = ("precision", "log_ratio_range")

for _name in ESTIMATORS:
    check(
        "estimator.definitions",
        needs={_name},
        on={f"{_name}": sampled_tokens},
        adapts=_ADAPTS,
        examples=lambda fmt, log_ratio_range=None: [
            c for c in killer_tokens(fmt) if _within(c, log_ratio_range)
        ],
    )(functools.partial(_definition, name=_name))
for _name in ("k1", "k3"):
    check("estimator.unbiased", needs={_name}, on={f"{_name}": _token_pairs}, adapts=_ADAPTS)(
        functools.partial(_unbiased, name=_name)
    )


def _within(case: Case, log_ratio_range: tuple[float, float] | None) -> bool:
    if log_ratio_range is None:
        return True
    d = case.ref_logp - case.logp
    return bool(((d >= log_ratio_range[0]) & (d <= log_ratio_range[1])).all())


@check(
    "estimator.k3_nonnegative",
    needs={"k3"},
    on={"sampled": sampled_tokens, "tokens": _token_pairs},
    adapts=("precision",),
    examples=killer_tokens,
)
def k3_nonnegative(impl: Implementation, case: Case) -> None:
    """k3(logp, ref_logp) >= 0 for every sample, even for log-ratios of one ulp."""
    got = _estimator_values(impl, "k3", case.logp, case.ref_logp)
    require(got >= 0, "k3(logp, ref_logp)", got, f">= 0{_exactly(got >= 0, case, 'k3')}")


def _exactly(ok: np.ndarray, case: Case, name: str) -> str:
    """`` (exactly 1.8e-15 there)``: the exact value at the first sample failing ``ok``."""
    if np.asarray(ok).all():
        return ""
    i = int(np.argwhere(~np.asarray(ok))[0][0])
    with mpmath.workdps(40):
        d = mpmath.mpf(float(case.ref_logp[i])) - mpmath.mpf(float(case.logp[i]))
        return f" (exactly {float(_estimator_exact(name, d)):.3g} there)"


@check(
    "estimator.k2_bias",
    needs={"k2"},
    on={"tokens": _token_pairs, "sampled": sampled_tokens},
    adapts=_ADAPTS,
)
def k2_bias(impl: Implementation, case: Case) -> None:
    """k2 >= 0 per sample; over π, |E[k2] − KL| <= E[|log r|³ e^{(log r)+}]/6 (+ tolerance)."""
    got = _estimator_values(impl, "k2", case.logp, case.ref_logp)
    require(got >= 0, "k2(logp, ref_logp)", got, ">= 0")
    if case.regime in ("sampled", "killers"):
        return
    tolerance = estimator_tolerance("k2", case.logp, case.ref_logp, impl.precision)
    with mpmath.workdps(40):
        w = _weights(case.logp)
        d = _exact_d(case.logp, case.ref_logp)
        mean = mpmath.fsum(x * mpmath.mpf(float(g)) for x, g in zip(w, got, strict=True))
        bound = (
            mpmath.fsum(x * abs(y) ** 3 * mpmath.exp(max(y, 0)) for x, y in zip(w, d, strict=True))
            / 6
        )
        slack = mpmath.fsum(x * t for x, t in zip(w, tolerance, strict=True))
        kl, defects = _kl_exact(case.logp, case.ref_logp)
    allowed = float(bound + slack) + 2 * defects * (float(kl) + 1) + 4 * U * float(kl)
    require_close(
        "E_π[k2(logp, ref_logp)]", float(mean), float(kl), allowed, expected_text="KL(π‖π_ref)"
    )


@check("estimator.k1_sign", needs={"k1"}, on={"tokens": _token_pairs}, adapts=_ADAPTS)
def k1_sign(impl: Implementation, case: Case) -> None:
    """k1 < 0 wherever log(π_ref/π) exceeds its tolerance (some token, unless π = π_ref)."""
    got = _estimator_values(impl, "k1", case.logp, case.ref_logp)
    tolerance = estimator_tolerance("k1", case.logp, case.ref_logp, impl.precision)
    clearly = (case.ref_logp - case.logp) > 2 * tolerance
    assume(clearly.any())
    require(~clearly | (got < 0), "k1(logp, ref_logp)", got, "< 0 (π_ref > π at this token)")


def _step(fmt: Precision) -> float:
    """The finite-difference step in log π: about u^(1/3), where truncation (~h²) meets rounding
    (~u/h); 2^-17 in float64, 2^-7 in float32."""
    return 2.0 ** (math.floor(math.log2(fmt.u) / 3) + 1)


def _slope_exact(name: str, d: np.ndarray) -> np.ndarray:
    """∂k/∂log π at log r = d: k1 → 1, k2 → −d, k3 → 1 − e^d (float64, from the exact d)."""
    if name == "k1":
        return np.ones_like(d)
    if name == "k2":
        return -d
    with np.errstate(over="ignore"):
        return -np.expm1(d)


def _slope_tolerance(name: str, d: np.ndarray, fmt: Precision) -> np.ndarray:
    """The error of ∂k/∂log π evaluated in the format: one rounding of d, then the formula's."""
    u = fmt.u
    if name == "k1":
        return 4 * u + _floor(fmt)
    if name == "k2":
        return 4 * u * np.abs(d) + _floor(fmt)
    with np.errstate(over="ignore"):
        return 4 * u * (np.exp(d) * (1 + np.abs(d)) + 1) + _floor(fmt)


def _clamp_slack(name: str, logp: np.ndarray, ref: np.ndarray, fmt: Precision) -> np.ndarray:
    """Where k3 is within its own rounding error of 0, the slope a k3 clamped at 0 may have.

    A literal k3 must be clamped at 0 to stay non-negative (estimator.k3_nonnegative);
    where rounding took its value below 0 the clamp's gradient is 0. That happens only
    where the exact k3 is within its value tolerance of 0 (|log r| up to about √(8u)),
    and there the slope may be anything between 0 and the exact one.
    """
    if name != "k3":
        return np.zeros_like(logp)
    d = ref - logp
    with np.errstate(over="ignore"):
        value = np.expm1(d) - d  # accurate to a few ulps; only compared with a tolerance
    near_zero = value <= 2 * estimator_tolerance("k3", logp, ref, fmt)
    return np.where(near_zero, np.abs(_slope_exact("k3", d)), 0.0)


def _slopes(impl: Implementation, case: Case, name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """∂k/∂log π per token, its tolerance, and how it was obtained.

    By the implementation's own autograd when it has one (``impl.derivatives``), checked
    first against the exact slope of the estimator whose gradient it declares
    (``impl.gradient_of``); else by central finite differences of the value.
    """
    fmt = impl.precision
    logp, ref = case.logp, case.ref_logp
    grad_of = impl.gradient_of.get(name, name)
    if name in impl.derivatives:
        call = f"∂{name}(logp, ref_logp)/∂logp (autograd)"
        got = invoke(call, impl.derivatives[name], logp, ref)
        slope = np.asarray(got, dtype=np.float64)
        if slope.shape != logp.shape:
            violated(f"{call} has shape {slope.shape}, but should have shape {logp.shape}", "shape")
        d = ref - logp
        tolerance = _slope_tolerance(grad_of, d, fmt) + _clamp_slack(grad_of, logp, ref, fmt)
        expected = f"the gradient of {grad_of}" if grad_of != name else ""
        require_close(call, slope, _slope_exact(grad_of, d), tolerance, expected_text=expected)
        return slope, tolerance, "autograd"
    h = _step(fmt)
    assume(logp.max() < -4 * h)  # logp ± h stays a log-probability
    x_up, x_down = fmt.round(logp + h), fmt.round(logp - h)  # the step is x_up − x_down (exact)
    up = _estimator_values(impl, name, x_up, ref)
    down = _estimator_values(impl, name, x_down, ref)
    slope = (up - down) / (x_up - x_down)  # ∂k/∂log π at each token
    tol_up = estimator_tolerance(name, x_up, ref, fmt)
    tol_down = estimator_tolerance(name, x_down, ref, fmt)
    with np.errstate(over="ignore"):
        third = np.exp(ref - logp + h) if name == "k3" else np.zeros_like(logp)
    width = x_up - x_down
    error = (tol_up + tol_down) / width + (width / 2) ** 2 / 6 * third + U * np.abs(slope)
    error += np.maximum(_clamp_slack(name, x_up, ref, fmt), _clamp_slack(name, x_down, ref, fmt))
    return slope, error, "finite differences"


def _gradient(impl: Implementation, case: Case, *, name: str) -> None:
    """E_π[∇_θ k], enumerated, is the gradient the clause names for the estimator k is
    differentiated as (its own, or the one a straight-through target declares)."""
    logp, ref = case.logp, case.ref_logp
    slope, slope_error, how = _slopes(impl, case, name)
    grad_of = impl.gradient_of.get(name, name)
    n = logp.size
    with mpmath.workdps(40):
        w, r = _weights(logp), _weights(ref)
        sw, sr = mpmath.fsum(w), mpmath.fsum(r)
        pi, rho = [x / sw for x in w], [y / sr for y in r]
        # E_π[∂k/∂θ_j] with ∂ log π_t/∂θ_j = [t = j] − π_j  (π = softmax(θ)).
        got = [
            mpmath.fsum(pi[t] * mpmath.mpf(float(slope[t])) * ((t == j) - pi[j]) for t in range(n))
            for j in range(n)
        ]
        kl = mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(pi, rho, strict=True))
        if grad_of == "k1":
            want = [mpmath.mpf(0)] * n
        elif grad_of == "k2":  # ∇_θ KL(π‖π_ref) = π_j (log(π_j/ρ_j) − KL)
            want = [pi[j] * (mpmath.log(pi[j] / rho[j]) - kl) for j in range(n)]
        else:  # ∇_θ KL(π_ref‖π) = π_j − ρ_j
            want = [pi[j] - rho[j] for j in range(n)]
        slack = float(mpmath.fsum(pi[t] * slope_error[t] for t in range(n)))
        defects = float(abs(sw - 1) + abs(sr - 1))
    largest = float(max(abs(x) for x in [*want, mpmath.mpf(1)]))
    allowed = slack + 4 * defects * (largest + float(kl) + 1)
    target = {"k1": "0", "k2": "∇KL(π‖π_ref)", "k3": "∇KL(π_ref‖π)"}[grad_of]
    require_close(
        f"E_π[∇{name}] ({how})",
        np.array([float(x) for x in got]),
        np.array([float(x) for x in want]),
        allowed,
        expected_text=f"{target}[{{index}}]",
    )


for _name in ESTIMATORS:
    check("estimator.gradients", needs={_name}, on={_name: _token_pairs}, adapts=_ADAPTS)(
        functools.partial(_gradient, name=_name)
    )


# --- a declared clamp, outside its range --------------------------------------------------


def clamp_probe(fmt: Precision, log_ratio_range: tuple[float, float]) -> Case:
    """Three tokens: one with log r one beyond HI, one one below LO, the rest near log r = 0.

    π_ref(A) = ½ with π(A) = ½e^{−(HI+1)}; π(B) = ½ with π_ref(B) = ½e^{LO−1}; C takes what
    is left of each (tokens whose probability underflows the format are left out).
    """
    lo, hi = log_ratio_range
    pa, rb = 0.5 * math.exp(-(hi + 1)), 0.5 * math.exp(lo - 1)
    pi = [pa, 0.5, 1 - pa - 0.5]
    rho = [0.5, rb, 1 - 0.5 - rb]
    keep = [k for k in range(3) if min(pi[k], rho[k]) > fmt.tiny]
    logp = fmt.round([math.log(pi[k]) for k in keep])
    ref = fmt.round([math.log(rho[k]) for k in keep])
    return Case(logp=np.minimum(logp, 0.0), ref_logp=np.minimum(ref, 0.0), regime="clamp")


def _clamp_bias(impl: Implementation, case: Case, *, name: str) -> None:
    """E_π[k] on tokens beyond the declared range, against the unclamped estimator's E_π[k]."""
    lo, hi = impl.log_ratio_range
    probe = clamp_probe(impl.precision, (lo, hi))
    got = _estimator_values(impl, name, probe.logp, probe.ref_logp)
    tolerance = estimator_tolerance(name, probe.logp, probe.ref_logp, impl.precision)
    with mpmath.workdps(40):
        w = _weights(probe.logp)
        d = _exact_d(probe.logp, probe.ref_logp)
        mean = mpmath.fsum(x * mpmath.mpf(float(g)) for x, g in zip(w, got, strict=True))
        want = mpmath.fsum(x * _estimator_exact(name, y) for x, y in zip(w, d, strict=True))
        slack = float(mpmath.fsum(x * t for x, t in zip(w, tolerance, strict=True)))
        outside = float(
            mpmath.fsum(x for x, y in zip(w, d, strict=True) if not lo <= float(y) <= hi)
        )
    bias = float(mean - want)
    if abs(bias) > slack:
        violated(
            f"E_π[{name}(logp, ref_logp)]={float(mean):.6g}, but should be the unclamped "
            f"E_π[{name}] = {float(want):.6g}: the clamp biases it by {bias:+.3g} where π puts "
            f"{outside:.3g} of its mass outside log r ∈ [{lo:g}, {hi:g}] "
            f"(logp={literal(probe.logp)}, ref_logp={literal(probe.ref_logp)})",
            "biased",
        )


for _name in ESTIMATORS:
    check(
        "estimator.clamp_bias",
        needs={_name, "log_ratio_range"},
        name=f"estimator.clamp_bias[{_name}]",
        adapts=_PRECISION,  # the probe is built in the target's format
    )(functools.partial(_clamp_bias, name=_name))
