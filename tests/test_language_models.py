"""token_kl and kl_estimate against mpmath, and their exact properties.

BOUND: relative error <= 1e-15 against the exact value (mpmath, 80 digits) for
token_kl on nearly equal, shifted and unrelated logit rows, and for k1, k2, k3
over d = ref_logp − logp from 1e-16 to 700 in magnitude.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from klspec.reference import (
    kl_divergence,
    kl_estimate,
    sequence_log_prob,
    sequence_log_ratio,
    token_kl,
)
from klspec.spec.oracle import relative_error

BOUND = 1e-15


def _log_sum_exp(xs: list[mpmath.mpf]) -> mpmath.mpf:
    """Relative to the first entry, so a single logit gives exactly x0 (KL exactly 0)."""
    return xs[0] + mpmath.log(1 + mpmath.fsum(mpmath.exp(x - xs[0]) for x in xs[1:]))


def exact_token_kl(a: np.ndarray, b: np.ndarray) -> mpmath.mpf:
    # KL ~ |a − b|² next to terms of order 1, and e^{-range} next to 1 in the sums:
    # carry 60 digits beyond both.
    diff = np.abs(a - b)
    closeness = -2 * np.log10(diff[diff > 0].min()) if (diff > 0).any() else 0
    spread = (max(a.max() - a.min(), b.max() - b.min())) / np.log(10)
    with mpmath.workdps(60 + int(max(closeness, 0) + spread)):
        A = [mpmath.mpf(float(x)) for x in a]
        B = [mpmath.mpf(float(x)) for x in b]
        log_za, log_zb = _log_sum_exp(A), _log_sum_exp(B)
        return +mpmath.fsum(
            mpmath.exp(x - log_za) * ((x - log_za) - (y - log_zb))
            for x, y in zip(A, B, strict=True)
        )


@st.composite
def logit_pairs(draw):
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    n = draw(st.integers(1, 60), label="n")
    scale = draw(st.sampled_from([0.1, 1.0, 10.0, 40.0]), label="scale")
    exponent = draw(st.integers(-15, 0), label="exponent")
    shift = draw(st.sampled_from([0.0, 3.0, -1e3]), label="shift")
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, scale, n)
    b = a + shift + 10.0**exponent * rng.normal(size=n)
    return a, b


@given(logit_pairs())
def test_token_kl_is_exact_on_nearly_equal_and_shifted_rows(pair):
    a, b = pair
    value = token_kl(a, b)
    assert value >= 0
    err = relative_error(float(value), exact_token_kl(a, b))
    # exponent 0 draws rows far apart, which have their own bound (below); the thorough
    # profile found one at 1.19e-15.
    bound = APART_BOUND if _apart(a, b) else BOUND
    assert err <= bound, f"token_kl(a, b)={value!r}, relative error {err:.2e} > {bound:g}"


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether some |d_i| > 1, d = (a − b) centred on Q's most likely token (module docs)."""
    j = int(np.argmax(b))
    return bool(np.abs((a - b) - (a[j] - b[j])).max() > 1.0)


@given(logit_pairs())
def test_token_kl_on_float32_logits_takes_the_fast_path_exactly(pair):
    """float32 logits go through the one-pass path (differences exact in float64)."""
    a, b = (x.astype(np.float32) for x in pair)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return  # e.g. a shift of -1e3 on scale 40 stays finite; overflow cannot happen here
    value = token_kl(a, b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if np.ptp(a64 - b64) == 0:  # float32 rounding made b a shift of a: KL is exactly 0
        assert value == 0.0
        return
    exact = exact_token_kl(a64, b64)
    bound = APART_BOUND if _apart(a64, b64) else BOUND
    err = relative_error(float(value), exact)
    assert err <= bound, f"token_kl(a, b)={value!r}, relative error {err:.2e} > {bound:g}"


def test_token_kl_float32_batch_mixes_fast_rows_and_whole_row_method():
    """One block holding a fast row, a row with a −inf logit and a row far apart."""
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 2.0, (3, 50)).astype(np.float32)
    b = (a + 1e-3 * rng.normal(size=(3, 50))).astype(np.float32)
    a[1, 7] = b[1, 7] = -np.inf
    b[2] = rng.normal(0.0, 5.0, 50).astype(np.float32)
    values = token_kl(a, b)
    for i in range(3):
        live = np.isfinite(a[i])  # a token −inf on both sides has no mass in either
        exact = exact_token_kl(a[i][live].astype(np.float64), b[i][live].astype(np.float64))
        assert relative_error(float(values[i]), exact) <= APART_BOUND


def test_token_kl_float32_logit_near_zero_next_to_large_ones():
    """Regression (thorough profile): b_i − b_j of float32 values 1e-9 and 87 is not
    exact in float64, and rounding it put 23 ulps into Q_i; such blocks take the
    whole-row method."""
    rng = np.random.default_rng(13)
    a = rng.normal(0.0, 40.0, 29).astype(np.float32)
    a[-1] = np.float32(-6.32234937e-09)
    b = a.copy()
    b[-1] = np.float32(1.23071925e-09)
    exact = exact_token_kl(a.astype(np.float64), b.astype(np.float64))
    assert relative_error(float(token_kl(a, b)), exact) <= BOUND


def test_token_kl_float32_vocabulary_longer_than_a_block():
    from klspec.reference import _token_kl

    rng = np.random.default_rng(12)
    v = _token_kl.BLOCK + 3
    a = rng.normal(0.0, 1.0, v).astype(np.float32)
    b = (a + 1e-2 * rng.normal(size=v)).astype(np.float32)
    err = relative_error(float(token_kl(a, b)), exact_token_kl(a.astype(float), b.astype(float)))
    assert err <= BOUND


#: Rows far apart: the terms are of size |log(P_i/Q_i)| and no longer tiny next to the
#: logits' rounding; measured worst 1.3e-15 (12u) over 400 random rows.
APART_BOUND = 4e-15


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 30),
    scale=st.sampled_from([1.0, 5.0, 30.0]),
)
def test_token_kl_is_accurate_on_rows_far_apart(seed, n, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, scale, n), rng.normal(0.0, scale, n)
    value = token_kl(a, b)
    err = relative_error(float(value), exact_token_kl(a, b))
    assert err <= APART_BOUND, f"token_kl(a, b)={value!r}, relative error {err:.2e}"


def test_token_kl_rows_peaking_at_different_tokens():
    """Regression: centring on Q's maximum made t_0 = d_0 − c round at the scale of
    c = 34.7, and P_0 = Q_0 e^{t_0} inherited it: 15 ulps off (found by klspec check)."""
    a = np.array([1.49128349264637, -33.25754435939595])
    b = np.array([-14.610349133148638, 1.754782142518677])
    assert relative_error(float(token_kl(a, b)), exact_token_kl(a, b)) <= BOUND  # was 3.2e-15


def test_token_kl_apart_rows_keep_beta_exact():
    """Regression (found by the thorough profile): β = b_i − b_j ≈ −102 was rounded
    before entering t_i = α_i − β_i − L + log Z, 107 ulps off (1.2e-14)."""
    a = np.array([72.46881415, -29.16214237, -43.42505945])
    b = np.array([72.0669031, -30.31473479, -41.91683485])
    assert relative_error(float(token_kl(a, b)), exact_token_kl(a, b)) <= BOUND


def test_token_kl_apart_rows_take_p_from_the_closer_logarithm():
    """Regression (thorough profile): P_i = e^g with g = α_i − L + log Z ≈ −100 carried
    u·100; where |g| > |t_i|, e^{β_i + t_i} is the closer one (was 5.5e-15)."""
    rng = np.random.default_rng(383)
    a, b = rng.normal(0.0, 30.0, 2), rng.normal(0.0, 30.0, 2)
    assert relative_error(float(token_kl(a, b)), exact_token_kl(a, b)) <= BOUND


def test_token_kl_equal_logits_and_exact_shifts_give_zero():
    a = np.random.default_rng(0).normal(size=(4, 100))
    assert (token_kl(a, a) == 0).all()
    # + 1024 is exact for |a| < 2**-43 · 1024 · ... only when no bits are lost: use a
    # power-of-two row, where adding 1024 is exact, to test exact shift invariance.
    row = np.ldexp(1.0, -np.arange(1, 11))
    assert token_kl(row + 1024.0, row) == 0


def test_token_kl_matches_kl_of_softmaxes():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 20)), rng.normal(size=(3, 20))

    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    np.testing.assert_allclose(token_kl(a, b), kl_divergence(softmax(a), softmax(b)), rtol=1e-14)
    np.testing.assert_allclose(token_kl(a.T, b.T, axis=0), token_kl(a, b), rtol=0)


def test_token_kl_masked_tokens():
    """A −inf logit is a token of probability 0: 0 in P costs Q_i; 0 in Q only is +inf."""
    assert token_kl(np.array([0.0, -np.inf]), np.array([0.0, 0.0])) == pytest.approx(np.log(2))
    assert token_kl(np.array([0.0, 0.0]), np.array([0.0, -np.inf])) == np.inf
    assert token_kl(np.array([0.0, -np.inf]), np.array([0.0, -np.inf])) == 0.0


@pytest.mark.parametrize(
    ("logits_p", "logits_q", "message"),
    [
        ([0.0, np.nan], [0.0, 0.0], r"logits_p\[1\] is NaN"),
        ([0.0, 0.0], [np.inf, 0.0], r"logits_q\[0\] is \+inf"),
        ([-np.inf, -np.inf], [0.0, 0.0], r"logits_p is -inf everywhere"),
        ([0.0, 0.0], [0.0, 0.0, 0.0], "different vocabulary sizes"),
        (3.0, [0.0], "0-d"),
    ],
    ids=["nan", "plus-inf", "all-masked", "vocab-mismatch", "scalar"],
)
def test_token_kl_rejects_bad_logits(logits_p, logits_q, message):
    with pytest.raises(ValueError, match=message):
        token_kl(logits_p, logits_q)


def _exact_estimate(estimator: str, lp: float, rp: float) -> mpmath.mpf:
    # e^d − 1 − d ~ d²/2 sits 2·|log10 d| digits below d: carry that many more.
    digits = 60 + 2 * int(abs(np.log10(abs(rp - lp)))) if rp != lp else 60
    with mpmath.workdps(digits):
        d = mpmath.mpf(rp) - mpmath.mpf(lp)
        return {"k1": -d, "k2": d * d / 2, "k3": mpmath.expm1(d) - d}[estimator]


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
@given(
    logp=st.floats(-50.0, 0.0),
    log10_d=st.floats(-16.0, 2.8),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_estimators_are_exact(estimator, logp, log10_d, sign):
    ref_logp = min(logp + sign * 10.0**log10_d, 0.0)
    value = kl_estimate(np.array(logp), np.array(ref_logp), estimator)
    exact = _exact_estimate(estimator, logp, ref_logp)
    assume(abs(exact) > np.finfo(np.float64).tiny)  # k2, k3 ~ d²/2 underflow for |d| < 1e-154
    err = relative_error(float(value), exact)
    assert err <= BOUND, f"{estimator}={value!r} (logp={logp!r}, ref_logp={ref_logp!r}): {err:.2e}"


def test_k3_overflows_only_where_its_value_does():
    logp = np.full(3, -800.0)
    k3 = kl_estimate(logp, logp + np.array([700.0, 709.0, 709.9]), "k3")
    assert np.isfinite(k3[:2]).all()
    assert k3[2] == np.inf  # e^709.9 − 710.9 ≈ 1.97e308 > max float64


def test_estimators_signs_and_bad_input():
    logp = np.log(np.array([0.5, 0.25, 0.25]))
    ref = np.log(np.array([0.25, 0.5, 0.25]))
    assert (kl_estimate(logp, ref, "k1") < 0).any()
    assert (kl_estimate(logp, ref, "k3") >= 0).all()
    assert (kl_estimate(logp, ref, "k2") >= 0).all()
    with pytest.raises(ValueError, match="were probabilities passed instead"):
        kl_estimate(np.array([0.5, 0.25]), ref[:2], "k3")
    with pytest.raises(ValueError, match="not one of k1, k2, k3"):
        kl_estimate(logp, ref, "k4")


# --- sequence log-probabilities ------------------------------------------------------


@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(1, 300),
    spread=st.sampled_from([1e-12, 1e-6, 1.0]),
)
def test_sequence_sums_are_correctly_rounded(seed, length, spread):
    """BOUND: the sums are correctly rounded (relative error <= 2**-53) against mpmath."""
    rng = np.random.default_rng(seed)
    logp = -rng.exponential(5.0, length)
    ref_logp = np.minimum(logp + spread * rng.normal(size=length), 0.0)
    with mpmath.workdps(60):
        exact_lp = mpmath.fsum(mpmath.mpf(float(x)) for x in logp)
        exact_ratio = mpmath.fsum(
            mpmath.mpf(float(a)) - mpmath.mpf(float(b)) for a, b in zip(logp, ref_logp, strict=True)
        )
    assert relative_error(float(sequence_log_prob(logp)), exact_lp) <= 2.0**-53
    assert relative_error(float(sequence_log_ratio(logp, ref_logp)), exact_ratio) <= 2.0**-53


def test_masks_select_rather_than_multiply():
    """Padding with log-probability −inf stays out of the sum; multiplying by the mask gives NaN."""
    logp = np.array([[-0.5, -1.25, -np.inf], [-0.1, -0.2, -0.3]])
    mask = np.array([[True, True, False], [True, True, True]])
    with np.errstate(invalid="ignore"):
        assert np.isnan((logp * mask).sum(axis=-1)[0])  # the bug class this guards against
    # Correctly rounded: math.fsum, not the left-to-right sum (-0.6000000000000001).
    np.testing.assert_array_equal(
        sequence_log_prob(logp, mask), [-1.75, math.fsum([-0.1, -0.2, -0.3])]
    )
    assert sequence_log_prob(logp)[0] == -np.inf
    np.testing.assert_array_equal(sequence_log_prob(logp.T, mask.T, axis=0), [-1.75, -0.6])


def test_sequence_log_ratio_is_the_sum_of_token_log_ratios_and_handles_impossible_tokens():
    logp = np.array([-1.0, -2.0, -0.5])
    ref = np.array([-1.5, -2.0, -np.inf])
    assert sequence_log_ratio(logp, ref) == np.inf
    assert sequence_log_ratio(logp, ref, np.array([True, True, False])) == 0.5


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (([-0.5, 0.3],), ValueError, r"token_logprobs\[1\] is 0.3 > 0"),
        (([-0.5, -0.3], [1, 0]), TypeError, "mask has dtype"),
        (([-0.5, -0.3], [True, False, True]), ValueError, "does not broadcast"),
        ((-0.5,), ValueError, "0-d"),
    ],
    ids=["probability-passed", "int-mask", "mask-shape", "scalar"],
)
def test_sequence_log_prob_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        sequence_log_prob(*args)
