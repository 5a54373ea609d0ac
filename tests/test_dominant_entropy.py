"""Entropy of rows one-hot up to rounding, in the first pass (issue 15).

Such a row (p_j = 1 − 1e-12, the rest ~1e-17) has H ~ 1e-15 next to its own term
p_j log p_j ~ 1e-12 and next to log Σp ~ 1e-12. The first pass of
:mod:`klspec.reference._chunked` sums the dominant term apart and takes 1 − P_j from
its exact complement Σ_{i≠j} p_i, so every piece is non-negative and the row is
certified without the second pass or the exact path. These tests hold that path to
the accuracy bound of tests/test_accuracy.py against mpmath (spec/oracle.py: 60
digits beyond twice the inputs' decade span), with the other paths refused, and
show that the check fails for an implementation that leaves the dominant term in.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from klspec.reference import _chunked, divergences, entropy
from klspec.spec.oracle import accuracy_error, entropy_exact

# Relative error against mpmath, as tests/test_accuracy.py and tests/test_chunked.py.
BOUND = 1e-15
SMALL_CHUNK = 64


def _hard_row(n: int, top: float, rest: float, *, where: int = 0, kind: str = "flat", scale=1.0):
    """p_j = ``top`` at ``where``, the other n − 1 entries sharing ``rest`` (Σp = top + rest).

    ``kind``: "flat" (equal), "spread" (over 20 decades), "zeros" (every third 0),
    "subnormal" (every third 5e-320, every fifth 0). ``scale`` multiplies the row (Σp
    off 1 within the sum tolerance).
    """
    rng = np.random.default_rng(n)
    weights = np.ones(n - 1)
    if kind == "spread":
        weights = 10.0 ** rng.uniform(-20, 0, n - 1)
    if kind in ("zeros", "subnormal") and n > 3:
        weights[::3] = 0.0
    if kind == "subnormal" and n > 3:
        weights[::5] = 0.0
    p = np.empty(n)
    others = rest * weights / weights.sum()
    if kind == "subnormal":
        others[(np.arange(n - 1) % 3 == 0) & (np.arange(n - 1) % 5 != 0)] = 5e-320
    p[np.arange(n) != where] = others
    p[where] = top
    return p * scale


HARD_ROWS = {
    f"n={n} top=1-{1 - top:.0e} rest={rest:.0e} {kind} x{scale}": (n, top, rest, kind, scale)
    for n in (2, 3, 17, 1000)
    for top, rest in (
        (1 - 1e-12, 1e-17),
        (1 - 1e-12, 1e-12),
        (1 - 1e-7, 1e-7),
        (1 - 1e-6, 1e-6),  # below _ONE_HOT: summed whole, certified as before
        (1.0, 1e-20),
    )
    for kind in ("flat", "spread", "zeros", "subnormal")
    for scale in (1.0, 1 + 1e-9, 1 - 1e-9)
    if not (n <= 3 and kind == "zeros")  # no zero among one or two other entries
}


def _refuse_other_paths(monkeypatch):
    """The second pass and the exact path raise: the first pass must certify the row."""

    def refuse(*args):
        raise AssertionError("a row went past the first pass")

    monkeypatch.setattr(_chunked, "_plogx_again_kernel", refuse)
    for name in ("_entropy_nats", "_entropy_long"):
        monkeypatch.setattr(divergences, name, refuse)


def _worst_error(rows) -> tuple[float, str]:
    worst, which = 0.0, ""
    for name, p in rows:
        err = accuracy_error(float(entropy(p)), entropy_exact(p))
        if err >= worst:
            worst, which = err, name
    return worst, which


@pytest.mark.parametrize("case", list(HARD_ROWS), ids=str)
def test_one_hot_rows_are_within_the_bound_in_the_first_pass(monkeypatch, case):
    """BOUND: relative error <= 1e-15 against mpmath, without a second pass."""
    n, top, rest, kind, scale = HARD_ROWS[case]
    _refuse_other_paths(monkeypatch)
    for where in sorted({0, n // 2, n - 1}):
        p = _hard_row(n, top, rest, where=where, kind=kind, scale=scale)
        assert _chunked.plogx_rows((p,))["certified"].all()
        err = accuracy_error(float(entropy(p)), entropy_exact(p))
        assert err <= BOUND, f"at {where}: {entropy(p)!r} vs {entropy_exact(p)}, {err:.2e}"


@pytest.mark.parametrize("n", [SMALL_CHUNK - 1, SMALL_CHUNK, SMALL_CHUNK + 1, 7 * SMALL_CHUNK + 3])
@pytest.mark.parametrize("kind", ["flat", "spread", "subnormal"])
def test_one_hot_rows_across_blocks_are_within_the_bound(monkeypatch, n, kind):
    """BOUND as above; rows cut into blocks of 64 (the dominant entry in one of them)."""
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    _refuse_other_paths(monkeypatch)
    for where in (0, n - 1):
        p = _hard_row(n, 1 - 1e-12, 1e-17, where=where, kind=kind, scale=1 - 1e-9)
        assert _chunked.plogx_rows((p,))["certified"].all()
        err = accuracy_error(float(entropy(p)), entropy_exact(p))
        assert err <= BOUND, f"at {where}: {err:.2e}"


def test_a_batch_mixing_one_hot_and_random_rows(monkeypatch):
    """Rows set aside and rows summed whole share blocks; each keeps its own value."""
    _refuse_other_paths(monkeypatch)
    rng = np.random.default_rng(21)
    n = 40
    rows = []
    for i in range(30):
        if i % 3 == 0:
            rows.append(rng.random(n) / (n * 0.5))
            rows[-1] /= rows[-1].sum()
        else:
            kind = ("flat", "spread", "subnormal")[i % 3]
            top, rest = ((1 - 1e-12, 1e-17), (1.0, 1e-20), (1 - 1e-6, 1e-6))[i % 5 % 3]
            rows.append(_hard_row(n, top, rest, where=i % n, kind=kind, scale=1 + 1e-10 * (i - 15)))
    p = np.array(rows)
    h = entropy(p)
    for i in range(len(rows)):
        assert accuracy_error(float(h[i]), entropy_exact(p[i])) <= BOUND, i
    # The same rows through the real block size, two layouts: the same bits.
    np.testing.assert_array_equal(h, entropy(np.asfortranarray(p.T), axis=0))


def test_float32_and_float16_one_hot_rows(monkeypatch):
    """Inputs converted to float64 in the blocks: the same path, the same bound."""
    _refuse_other_paths(monkeypatch)
    for dtype, tiny in ((np.float32, 1e-40), (np.float16, 6e-8)):
        p = np.array([1.0, tiny, 0.0, tiny, tiny], dtype=dtype)
        p64 = p.astype(np.float64)
        assert accuracy_error(float(entropy(p)), entropy_exact(p64)) <= BOUND


def test_the_threshold_sits_between_the_two_paths(monkeypatch):
    """p_j just above _ONE_HOT is set aside; just below, the row is certified whole."""
    _refuse_other_paths(monkeypatch)
    one_hot = _chunked._ONE_HOT
    for top in (one_hot, np.nextafter(one_hot, 2.0)):
        for scale in (1 - 1.4e-8, 1 + 1.4e-8):  # Σp near the float64 tolerance
            p = _hard_row(50, top, 1 - top, kind="spread", scale=scale)
            assert accuracy_error(float(entropy(p)), entropy_exact(p)) <= BOUND


def test_an_exactly_one_hot_row_is_zero(monkeypatch):
    _refuse_other_paths(monkeypatch)
    for n in (1, 2, 1000):
        p = np.zeros(n)
        p[n // 2] = 1.0
        assert entropy(p) == 0.0
        assert str(entropy(p)) == "0.0"  # not -0.0


def test_a_probability_above_one_is_set_aside_too(monkeypatch):
    """p_j > 1 (Σp within the tolerance): its term is summed apart, with the right sign."""
    _refuse_other_paths(monkeypatch)
    assert entropy(np.array([1.0 + 1e-9, 0.0, 0.0])) == 0.0
    p = np.array([1.0 + 1e-9, 1e-12, 5e-320, 0.0, 3e-17])
    assert accuracy_error(float(entropy(p)), entropy_exact(p)) <= BOUND
    with pytest.raises(ValueError, match="sums to"):
        entropy(np.array([1.0, 1.0]))  # two entries above _ONE_HOT: invalid input


def test_the_worst_error_over_the_hard_rows(monkeypatch):
    """BOUND over every hard row and dominant position at once (the report's figure)."""
    _refuse_other_paths(monkeypatch)
    rows = [
        (f"{name} at {where}", _hard_row(n, top, rest, where=where, kind=kind, scale=scale))
        for name, (n, top, rest, kind, scale) in HARD_ROWS.items()
        for where in (0, n - 1)
    ]
    worst, which = _worst_error(rows)
    assert worst <= BOUND, f"{which}: {worst:.2e}"


# --- negative controls: the check catches a broken implementation --------------------


def _leave_the_dominant_term_in(x, t, record):
    """The set-aside step without its point: x_j is reported, but its term stays summed."""
    saved = t.copy()
    _ORIGINAL_SET_ASIDE(x, t, record)
    t[...] = saved


_ORIGINAL_SET_ASIDE = _chunked._set_aside_dominant


def test_the_check_fails_when_the_dominant_term_is_left_in_the_sum(monkeypatch):
    monkeypatch.setattr(_chunked, "_set_aside_dominant", _leave_the_dominant_term_in)
    p = _hard_row(100, 1 - 1e-12, 1e-17, kind="flat", scale=1 - 1e-9)
    err = accuracy_error(float(entropy(p)), entropy_exact(p))
    assert err > 1e-3, err  # the check above (1e-15) would fail by 12 orders


def test_the_check_fails_when_one_minus_p_j_is_taken_directly(monkeypatch):
    """1 − P_j as 1 − p_j/S (not from the exact complement): the rounding of p_j/S."""
    original = _chunked._dominant_rows

    def naive(totals, log_s, value, certified):
        original(totals, log_s, value, certified)
        rows = np.flatnonzero(totals.sums["xj"][0])
        s_hi, s_lo = (a[rows] for a in totals.total("sx"))
        p_j = totals.sums["xj"][0][rows]
        s = s_hi + s_lo
        exact_rest = (s_hi - p_j) + s_lo
        naive_rest = (1.0 - p_j / s) * s
        top = -(p_j / s) * np.log1p(-exact_rest / s)
        value[rows] += -(p_j / s) * np.log1p(-naive_rest / s) - top

    monkeypatch.setattr(_chunked, "_dominant_rows", naive)
    p = _hard_row(3, 1 - 1e-12, 1e-17, kind="flat", scale=1 - 1e-9)
    err = accuracy_error(float(entropy(p)), entropy_exact(p))
    assert err > 1e-6, err


def test_the_oracle_has_the_digits_it_claims():
    """mpmath at twice the working precision agrees with the oracle to ~1e-30."""
    p = _hard_row(17, 1 - 1e-12, 1e-17, kind="subnormal", scale=1 + 1e-9)
    exact = entropy_exact(p)
    with mpmath.workdps(2 * mpmath.mp.dps + 1400):
        P = [mpmath.mpf(float(v)) for v in p]
        s = mpmath.fsum(P)
        finer = -mpmath.fsum(a / s * mpmath.log(a / s) for a in P if a > 0)
        assert abs(finer - exact) / finer < 1e-30
