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
from typing import Any

import mpmath
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from klspec.spec import _expected
from klspec.spec._assert import observe, require, require_close
from klspec.spec.checks._registry import check
from klspec.spec.interface import Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import U, gamma

_DPS = 90  # nearly equal logits (1e-15 apart) give KL ~ 1e-30 from terms of size ~1

# --- inputs ----------------------------------------------------------------------------


@st.composite
def logit_pairs(draw: st.DrawFn, *, regime: str | None = None) -> Case:
    """Rows of logits (positions × vocabulary) for P and Q: equal, nearly equal or apart."""
    positions = draw(st.integers(1, 3), label="positions")
    vocab = draw(st.integers(1, 24), label="vocabulary")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    scale = draw(st.sampled_from([1e-3, 1.0, 5.0, 30.0]), label="scale")
    regime = regime or draw(st.sampled_from(["apart", "near", "equal"]), label="regime")
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, scale, (positions, vocab))
    if regime == "equal":
        b = a.copy()
    elif regime == "near":
        exponent = draw(st.integers(-15, -3), label="exponent")
        b = a + rng.normal(0.0, 10.0**exponent, a.shape) * np.maximum(np.abs(a), 1.0)
    else:
        b = rng.normal(0.0, scale, a.shape)
    return Case(logits_p=a, logits_q=b, regime=regime)


@st.composite
def _shift_pairs(draw: st.DrawFn) -> Case:
    """Logits on the grid 2^-30·k with |k| < 2^36, so adding an integer below 2^20 is exact."""
    vocab = draw(st.integers(1, 16), label="vocabulary")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-(2**36), 2**36, (2, vocab)) * 2.0**-30).reshape(2, 1, vocab)
    shift = draw(st.integers(-(2**20), 2**20).filter(bool), label="shift")
    return Case(logits_p=a, logits_q=b, shift=[float(shift)], regime="grid")


def _log_probs(rng: np.random.Generator, vocab: int, spread: float) -> np.ndarray:
    logits = rng.normal(0.0, spread, vocab)
    with mpmath.workdps(40):
        return logits - float(_lse(logits))


@st.composite
def _token_pairs(draw: st.DrawFn) -> Case:
    """log π and log π_ref over a whole vocabulary (every token, for enumeration)."""
    vocab = draw(st.integers(2, 12), label="vocabulary")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    spread = draw(st.sampled_from([0.1, 1.0, 3.0]), label="spread")
    logp = _log_probs(rng, vocab, spread)
    regime = draw(st.sampled_from(["apart", "near"]), label="regime")
    if regime == "near":
        exponent = draw(st.integers(-14, -2), label="exponent")
        ref = logp + rng.normal(0, 10.0**exponent, vocab)
        with mpmath.workdps(40):
            ref = ref - float(_lse(ref))
    else:
        ref = _log_probs(rng, vocab, spread)
    return Case(logp=logp, ref_logp=ref, regime=regime)


@st.composite
def sampled_tokens(draw: st.DrawFn) -> Case:
    """Per-sample log-probabilities: log-ratios from 1e-300 to 700 in size, either sign."""
    n = draw(st.integers(1, 8), label="samples")
    logp = draw(
        st.lists(st.floats(-700.0, 0.0), min_size=n, max_size=n).map(np.array), label="logp"
    )
    magnitudes = draw(
        st.lists(st.integers(-300, 2), min_size=n, max_size=n).map(np.array), label="log10|d|"
    )
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n), label="signs")
    d = np.array(signs) * 10.0 ** magnitudes.astype(float) * 7
    ref = np.minimum(logp + d, 0.0)
    ref = np.maximum(ref, -745.0)
    return Case(logp=logp, ref_logp=ref, regime="sampled")


# --- exact values ------------------------------------------------------------------


def _lse(x: np.ndarray) -> mpmath.mpf:
    return mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in x))


def _token_kl_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """KL(softmax(a)‖softmax(b)) of one row, and the float64 tolerance for it."""
    with mpmath.workdps(_DPS):
        A, B = _lse(a), _lse(b)
        P = [mpmath.exp(mpmath.mpf(float(x)) - A) for x in a]
        t = [mpmath.mpf(float(x)) - mpmath.mpf(float(y)) - A + B for x, y in zip(a, b, strict=True)]
        value = mpmath.fsum(p * ti for p, ti in zip(P, t, strict=True))
        n = len(a)
        # A log-softmax is off by ~4u·(|logit| + |lse| + 1): that error moves the log-ratio
        # t_v by itself and P_v by as much relatively (P_v = exp(log-softmax)); the product,
        # log and sum add (2γ_n + 2u)·Σ P_v|t_v|. What any float64 evaluation from logits makes.
        size = mpmath.fsum(p * abs(ti) for p, ti in zip(P, t, strict=True))
        moved = mpmath.fsum(
            p * ((abs(x) + abs(A) + 1) * (1 + abs(ti)) + abs(y) + abs(B) + 1)
            for p, ti, x, y in zip(P, t, a, b, strict=True)
        )
        tolerance = float((2 * gamma(n) + 2 * U) * size + 4 * U * moved)
        return float(value), tolerance


def token_kl_expected(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of logits: the exact KL(softmax(a)‖softmax(b)) and the float64 tolerance."""
    rows = [_token_kl_exact(x, y) for x, y in zip(a, b, strict=True)]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def _positions(case: Case) -> tuple[int, ...]:
    return case.logits_p.shape[:-1]


# --- token_kl ----------------------------------------------------------------------


@check(
    "token_kl.definition",
    needs={"token_kl"},
    on={
        "logits": logit_pairs,
        "near_equal_logits": functools.partial(logit_pairs, regime="near"),
    },
)
def token_kl_definition(impl: Implementation, case: Case) -> None:
    """token_kl(a, b) is KL(softmax(a)‖softmax(b)) per position, within the float64 tolerance."""
    got = observe(impl, "token_kl", case.logits_p, case.logits_q, shape=_positions(case))
    value, tolerance = token_kl_expected(case.logits_p, case.logits_q)
    require_close("token_kl(logits_p, logits_q)", got, value, tolerance)


@check(
    "token_kl.nonnegative",
    needs={"token_kl"},
    on={
        "near_equal_logits": functools.partial(logit_pairs, regime="near"),
        "equal_logits": functools.partial(logit_pairs, regime="equal"),
        "logits": logit_pairs,
    },
)
def token_kl_nonnegative(impl: Implementation, case: Case) -> None:
    """token_kl(a, b) >= 0 everywhere, and == 0 exactly where the rows are equal."""
    got = observe(impl, "token_kl", case.logits_p, case.logits_q, shape=_positions(case))
    call = "token_kl(logits_p, logits_q)"
    require(got >= 0, call, got, ">= 0")
    equal = (case.logits_p == case.logits_q).all(axis=-1)
    require(~equal | (got == 0), call, got, "0 (the rows of logits are equal)")


@check("token_kl.shift_invariant", needs={"token_kl"}, on={"grid_logits": _shift_pairs})
def token_kl_shift_invariant(impl: Implementation, case: Case) -> None:
    """Adding a constant to a row of logits (exactly) leaves token_kl unchanged."""
    a, b, c = case.logits_p, case.logits_q, float(case.shift[0])
    base = observe(impl, "token_kl", a, b, shape=(1,))
    _, tolerance = token_kl_expected(a, b)
    for call, args in (
        (f"token_kl(logits_p + {c:g}, logits_q)", (a + c, b)),
        (f"token_kl(logits_p, logits_q + {c:g})", (a, b + c)),
    ):
        got = observe(impl, "token_kl", *args, call=call, shape=(1,))
        # Each call may be off by its own tolerance, which grows with the size of the logits.
        allowed = tolerance + token_kl_expected(*args)[1]
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


def estimator_tolerance(name: str, logp: np.ndarray, ref_logp: np.ndarray) -> np.ndarray:
    """The error of a correct float64 evaluation of the literal formula, per sample.

    d = ref_logp − logp is rounded once (u|d|). k1 = −d: 2u|d|; k2 = d²/2: 4u·k2;
    k3 = (e^d − 1) − d: e^d is off by u·e^d·(1 + |d|) (its argument's rounding
    included), then two subtractions: 4u·(e^d(1 + |d|) + 1 + |d|). The literal k3
    meets this but is negative for tiny |d| (estimator.k3_nonnegative).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.abs(ref_logp - logp)
        if name == "k1":
            return 2 * U * d + 1e-300
        if name == "k2":
            return 4 * U * d * d / 2 + 1e-300
        signed = ref_logp - logp
        return 4 * U * (np.exp(signed) * (1 + d) + 1 + d)


def _estimator_values(
    impl: Implementation, name: str, logp: np.ndarray, ref: np.ndarray
) -> np.ndarray:
    return observe(impl, name, logp, ref, call=f"{name}(logp, ref_logp)", shape=logp.shape)


def _exact_d(logp: np.ndarray, ref: np.ndarray) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(r)) - mpmath.mpf(float(x)) for x, r in zip(logp, ref, strict=True)]


def _definition(impl: Implementation, case: Case, *, name: str) -> None:
    """k(logp, ref_logp) is Schulman's estimator at each sample, within the float64 tolerance."""
    got = _estimator_values(impl, name, case.logp, case.ref_logp)
    with mpmath.workdps(40):
        exact = np.array(
            [float(_estimator_exact(name, d)) for d in _exact_d(case.logp, case.ref_logp)]
        )
    tolerance = estimator_tolerance(name, case.logp, case.ref_logp)
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
    tolerance = estimator_tolerance(name, case.logp, case.ref_logp)
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


for _name in ESTIMATORS:
    check(
        "estimator.definitions",
        needs={_name},
        on={f"{_name}": sampled_tokens},
    )(functools.partial(_definition, name=_name))
for _name in ("k1", "k3"):
    check("estimator.unbiased", needs={_name}, on={f"{_name}": _token_pairs})(
        functools.partial(_unbiased, name=_name)
    )


@check(
    "estimator.k3_nonnegative",
    needs={"k3"},
    on={"sampled": sampled_tokens, "tokens": _token_pairs},
)
def k3_nonnegative(impl: Implementation, case: Case) -> None:
    """k3(logp, ref_logp) >= 0 for every sample, even for log-ratios of 1e-300."""
    got = _estimator_values(impl, "k3", case.logp, case.ref_logp)
    require(got >= 0, "k3(logp, ref_logp)", got, ">= 0")


@check("estimator.k2_bias", needs={"k2"}, on={"tokens": _token_pairs, "sampled": sampled_tokens})
def k2_bias(impl: Implementation, case: Case) -> None:
    """k2 >= 0 per sample; over π, |E[k2] − KL| <= E[|log r|³ e^{(log r)+}]/6 (+ tolerance)."""
    got = _estimator_values(impl, "k2", case.logp, case.ref_logp)
    require(got >= 0, "k2(logp, ref_logp)", got, ">= 0")
    if case.regime == "sampled":
        return
    tolerance = estimator_tolerance("k2", case.logp, case.ref_logp)
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


@check("estimator.k1_sign", needs={"k1"}, on={"tokens": _token_pairs})
def k1_sign(impl: Implementation, case: Case) -> None:
    """k1 < 0 wherever log(π_ref/π) exceeds its tolerance (some token, unless π = π_ref)."""
    got = _estimator_values(impl, "k1", case.logp, case.ref_logp)
    tolerance = estimator_tolerance("k1", case.logp, case.ref_logp)
    clearly = (case.ref_logp - case.logp) > 2 * tolerance
    assume(clearly.any())
    require(~clearly | (got < 0), "k1(logp, ref_logp)", got, "< 0 (π_ref > π at this token)")


_H = 2.0**-17  # finite-difference step in log π: truncation ~h², rounding ~u/h


def _gradient(impl: Implementation, case: Case, *, name: str) -> None:
    """E_π[∇_θ k] by finite differences in log π, enumerated, is the gradient the clause names."""
    logp, ref = case.logp, case.ref_logp
    assume(logp.max() < -4 * _H)  # logp ± h stays a log-probability
    x_up, x_down = logp + _H, logp - _H  # rounded: the step is x_up − x_down (exact)
    up = _estimator_values(impl, name, x_up, ref)
    down = _estimator_values(impl, name, x_down, ref)
    slope = (up - down) / (x_up - x_down)  # ∂k/∂log π at each token
    tol_up = estimator_tolerance(name, x_up, ref)
    tol_down = estimator_tolerance(name, x_down, ref)
    with np.errstate(over="ignore"):
        third = np.exp(ref - logp + _H) if name == "k3" else np.zeros_like(logp)
    slope_error = (tol_up + tol_down) / (2 * _H) + _H**2 / 6 * third + U * np.abs(slope)
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
        if name == "k1":
            want = [mpmath.mpf(0)] * n
        elif name == "k2":  # ∇_θ KL(π‖π_ref) = π_j (log(π_j/ρ_j) − KL)
            want = [pi[j] * (mpmath.log(pi[j] / rho[j]) - kl) for j in range(n)]
        else:  # ∇_θ KL(π_ref‖π) = π_j − ρ_j
            want = [pi[j] - rho[j] for j in range(n)]
        slack = float(mpmath.fsum(pi[t] * slope_error[t] for t in range(n)))
        defects = float(abs(sw - 1) + abs(sr - 1))
    largest = float(max(abs(x) for x in [*want, mpmath.mpf(1)]))
    allowed = slack + 4 * defects * (largest + float(kl) + 1)
    target = {"k1": "0", "k2": "∇KL(π‖π_ref)", "k3": "∇KL(π_ref‖π)"}[name]
    require_close(
        f"E_π[∇{name}] (finite differences)",
        np.array([float(x) for x in got]),
        np.array([float(x) for x in want]),
        allowed,
        expected_text=f"{target}[{{index}}]",
    )


for _name in ESTIMATORS:
    check("estimator.gradients", needs={_name}, on={_name: _token_pairs})(
        functools.partial(_gradient, name=_name)
    )
