"""The chunked fast path of kl_divergence, entropy and cross_entropy.

What is designed to be bit for bit, and is tested so:
- the number of threads (blocks are totalled in order);
- the memory layout of the inputs: axis=0 or -1, C or Fortran order, broadcast batch
  axes, float32 or float64 storage of the same values (each block sees the same numbers);
- careful blocks (scaled by 2**600, with masks) against fast blocks: the careful
  formulas are the fast ones times 2**600 exactly.

What is designed to agree within the accuracy bound only, and is tested against
mpmath with the bound of tests/test_accuracy.py: different block sizes (the block
picks B's polynomial and sums pairwise), at the block boundaries 1, CHUNK−1,
CHUNK, CHUNK+1 and many blocks, and rows the certificate sends to the exact path.
"""

from __future__ import annotations

import tracemalloc

import mpmath
import numpy as np
import pytest

from klspec.reference import _chunked, cross_entropy, entropy, kl_divergence
from klspec.spec.oracle import accuracy_error, cross_entropy_exact, entropy_exact, kl_exact

BOUND = 1e-15  # as tests/test_accuracy.py
SMALL_CHUNK = 64
U = 2.0**-53


def _normalised(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x / x.sum(axis=axis, keepdims=True)


def _pair(n: int, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = _normalised(1.0 - rng.random(n))
    if kind == "unrelated":
        q = _normalised(1.0 - rng.random(n))
    elif kind == "near":
        q = _normalised(p * (1 + 1e-7 * rng.uniform(-1, 1, n)))
    else:  # zeros and subnormals: careful blocks
        q = _normalised(1.0 - rng.random(n))
        p = p.copy()
        p[2 :: max(3, n // 5)] = 0.0
        p[1 :: max(3, n // 3)] = 5e-320
        p = _normalised(p)
        if n > 1 and p[-1] == 0:
            q[-1] = 0.0  # a zero on both sides
            q = _normalised(q)
    return p, q


def _assert_accurate(value: float, exact) -> None:
    __tracebackhide__ = True
    err = accuracy_error(float(value), exact)
    assert err <= BOUND, f"{value!r} vs {mpmath.nstr(exact, 20)}: relative error {err:.2e}"


# --- block boundaries, against mpmath ----------------------------------------------


@pytest.mark.parametrize(
    "n",
    [1, SMALL_CHUNK - 1, SMALL_CHUNK, SMALL_CHUNK + 1, 7 * SMALL_CHUNK + 3],
    ids=lambda n: f"n={n}",
)
@pytest.mark.parametrize("kind", ["unrelated", "near", "careful"])
def test_block_boundaries_are_within_the_bound(monkeypatch, n, kind):
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    p, q = _pair(n, seed=n, kind=kind)
    _assert_accurate(kl_divergence(p, q), kl_exact(p, q))
    _assert_accurate(entropy(p), entropy_exact(p))
    _assert_accurate(cross_entropy(p, q), cross_entropy_exact(p, q))


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_real_block_size_boundaries(offset):
    n = _chunked.CHUNK + offset
    p, q = _pair(n, seed=7, kind="near")
    _assert_accurate(kl_divergence(p, q), kl_exact(p, q))
    _assert_accurate(entropy(q), entropy_exact(q))


@pytest.mark.parametrize(("rows", "n"), [(5, SMALL_CHUNK - 1), (9, 7), (3, 2 * SMALL_CHUNK + 1)])
def test_batches_straddling_blocks_are_within_the_bound(monkeypatch, rows, n):
    """Blocks of whole rows (n < CHUNK) and rows cut into pieces (n > CHUNK)."""
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(rows * n)
    p = _normalised(1.0 - rng.random((rows, n)))
    q = _normalised(p * (1 + 1e-9 * rng.uniform(-1, 1, (rows, n))))
    kl, h = kl_divergence(p, q), entropy(q)
    for i in range(rows):
        _assert_accurate(kl[i], kl_exact(p[i], q[i]))
        _assert_accurate(h[i], entropy_exact(q[i]))


def test_block_size_changes_results_only_within_the_bound(monkeypatch):
    p, q = _pair(1000, seed=3, kind="unrelated")
    default = kl_divergence(p, q)
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    small = kl_divergence(p, q)
    exact = kl_exact(p, q)
    _assert_accurate(default, exact)
    _assert_accurate(small, exact)


# --- bit for bit where that is the design -------------------------------------------


def _all(p, q, **kw):
    return kl_divergence(p, q, **kw), entropy(p, **kw), cross_entropy(p, q, **kw)


def test_threads_do_not_change_a_bit(monkeypatch):
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(0)
    p = _normalised(1.0 - rng.random((40, 300)))
    q = _normalised(1.0 - rng.random((40, 300)))
    monkeypatch.setenv("KLSPEC_NUM_THREADS", "1")
    one = _all(p, q)
    monkeypatch.setenv("KLSPEC_NUM_THREADS", "3")
    three = _all(p, q)
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [5, SMALL_CHUNK + 3])
def test_every_axis_layout_gives_the_same_bits(monkeypatch, n):
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(n)
    p = _normalised(1.0 - rng.random((3, 4, n)))
    q = _normalised(1.0 - rng.random((3, 4, n)))
    expected = _all(p, q)
    layouts = {
        "axis=0": (np.moveaxis(p, -1, 0), np.moveaxis(q, -1, 0), 0),
        "axis=1": (np.moveaxis(p, -1, 1), np.moveaxis(q, -1, 1), 1),
        "fortran": (np.asfortranarray(p), np.asfortranarray(q), -1),
        "copied axis=0": (
            np.ascontiguousarray(np.moveaxis(p, -1, 0)),
            np.ascontiguousarray(np.moveaxis(q, -1, 0)),
            0,
        ),
    }
    for name, (pl, ql, axis) in layouts.items():
        got = _all(pl, ql, axis=axis)
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_broadcast_batch_axes_give_the_same_bits(monkeypatch):
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(1)
    p = _normalised(1.0 - rng.random((3, 1, 20)))
    q = _normalised(1.0 - rng.random((1, 4, 20)))
    full_p, full_q = np.broadcast_arrays(p, q)
    np.testing.assert_array_equal(kl_divergence(p, q), kl_divergence(full_p.copy(), full_q.copy()))
    np.testing.assert_array_equal(cross_entropy(p, q), cross_entropy(full_p.copy(), full_q.copy()))


def test_float32_storage_gives_the_same_bits_as_its_float64_values():
    rng = np.random.default_rng(2)
    p32 = _normalised(1.0 - rng.random((6, 70000))).astype(np.float32)
    q32 = _normalised(1.0 - rng.random((6, 70000))).astype(np.float32)
    p64, q64 = p32.astype(np.float64), q32.astype(np.float64)
    for a, b in zip(_all(p32, q32), _all(p64, q64), strict=True):
        np.testing.assert_array_equal(a, b)


def test_careful_blocks_give_the_fast_blocks_bits(monkeypatch):
    """With _TINY raised every block takes the careful (scaled, masked) path."""
    p, q = _pair(3 * SMALL_CHUNK, seed=4, kind="unrelated")
    near = _normalised(p * (1 + 1e-9 * np.random.default_rng(4).uniform(-1, 1, p.size)))
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    fast = [*_all(p, q), kl_divergence(p, near)]
    monkeypatch.setattr(_chunked, "_TINY", 2.0)
    careful = [*_all(p, q), kl_divergence(p, near)]
    for a, b in zip(fast, careful, strict=True):
        np.testing.assert_array_equal(a, b)


# --- the certificate ------------------------------------------------------------------


def _uncertified_kl_inputs():
    rng = np.random.default_rng(5)
    q = _normalised(rng.random(200))
    return q * (1 + 1e-9), q  # p ∝ q, but not normalised: the true KL is ~1e-33


def test_uncertified_rows_are_recomputed_exactly():
    p, q = _uncertified_kl_inputs()
    assert not _chunked.kl_divergence_rows((p, q))["certified"].any()
    _assert_accurate(kl_divergence(p, q), kl_exact(p, q))
    # Sq = 1 − 2**-40 moves H(P, Q) by ~1e-12; H(P, P) itself is ~4e-17: uncertified.
    # (Entropy sums the term of p_j > 1/2 apart and certifies such rows itself:
    # tests/test_dominant_entropy.py.)
    one_hot_ish = np.array([1.0 - 2.0**-40, 2.0**-60])
    assert _chunked.plogx_rows((one_hot_ish,))["certified"].all()
    assert not _chunked.plogx_rows((one_hot_ish, one_hot_ish))["certified"].any()
    _assert_accurate(entropy(one_hot_ish), entropy_exact(one_hot_ish))
    _assert_accurate(
        cross_entropy(one_hot_ish, one_hot_ish), cross_entropy_exact(one_hot_ish, one_hot_ish)
    )
    above_one = np.array([1.0 + 1e-9, 0.0])
    assert not _chunked.plogx_rows((above_one, above_one))["certified"].any()
    assert cross_entropy(above_one, above_one) == 0.0
    assert entropy(above_one) == 0.0


def test_the_certificate_is_what_keeps_those_rows_right(monkeypatch):
    """Negative control: certify everything and the same inputs come out wrong."""
    original = _chunked.kl_result

    def always_certified(totals):
        result = original(totals)
        result["certified"][:] = True
        return result

    monkeypatch.setattr(_chunked, "kl_result", always_certified)
    p, q = _uncertified_kl_inputs()
    assert accuracy_error(float(kl_divergence(p, q)), kl_exact(p, q)) > 1e-3


# --- polynomial, memory, errors ----------------------------------------------------------


def _b_exact(x: float):
    if x == 0:
        return mpmath.mpf(1) / 3
    s = mpmath.sqrt(mpmath.mpf(x))
    return (mpmath.atanh(s) - s) / s**3


def _horner_error(coefficients, limit: float) -> float:
    """Max relative error of Horner's float64 B over [0, limit], in units of 2**-53."""
    xs = np.linspace(0.0, limit, 601)
    b = np.full_like(xs, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        b = b * xs + c
    with mpmath.workdps(40):
        return max(
            float(abs(mpmath.mpf(float(v)) - _b_exact(float(x))) / _b_exact(float(x))) / U
            for x, v in zip(xs, b, strict=True)
        )


@pytest.mark.parametrize("limit", sorted(_chunked.B_POLYNOMIALS), ids=lambda v: f"x<={v:g}")
def test_b_polynomials_are_accurate_on_their_intervals(limit):
    """BOUND: relative error <= 1.5 units of 2**-53 on [0, limit], Horner's rounding included."""
    assert _horner_error(_chunked.B_POLYNOMIALS[limit], limit) <= 1.5


@pytest.mark.parametrize("limit", sorted(_chunked.B_POLYNOMIALS), ids=lambda v: f"x<={v:g}")
def test_b_polynomial_check_rejects_a_shorter_polynomial(limit):
    assert _horner_error(_chunked.B_POLYNOMIALS[limit][:-1], limit) > 1.5


def test_the_taylor_branch_is_accurate_below_its_limit():
    x_max = 2.0**-10
    assert _horner_error(_chunked.b_coefficients(x_max), x_max) <= 1.5


def test_extra_memory_does_not_grow_with_the_input():
    """tracemalloc sees numpy's buffers: the peak is a few blocks, whatever n."""
    peaks = []
    for n in (1 << 20, 1 << 22):
        p, q = _pair(n, seed=8, kind="unrelated")
        tracemalloc.start()
        kl_divergence(p, q)
        entropy(p)
        cross_entropy(p, q)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        del p, q
    limit = 32 * _chunked.CHUNK * 8 * max(1, _chunked.threads())
    assert max(peaks) < limit, peaks


def _peak(f, *args) -> int:
    tracemalloc.start()
    try:
        f(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _short_rows(shape: tuple[int, ...], kind: str, seed: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = _normalised(rng.random(shape))
    if kind == "proportional":  # every row uncertified: the exact path in groups
        return q * (1 + 1e-9), q
    return _normalised(rng.random(shape)), q


# Per thread: the kernel's workspace (~8 buffers of CHUNK float64) and the records it
# has ahead; plus the group being finished and, for uncertified rows, the second pass's
# gathered rows and group (measured on 2 threads: +15 MB, +23 MB when every row of
# (3e6, 2) needs the second pass). Issue 13: nothing else grows with the batch.
MEMORY_ALLOWANCE = 10e6 + 8e6 * max(1, _chunked.threads())


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ((2_000_000, 2), "random"),
        ((700_000, 3), "random"),
        ((120_000, 17), "random"),
        ((1000, 200, 2), "random"),
        ((300_000, 2), "proportional"),
        ((20_000, 17), "proportional"),
    ],
    ids=str,
)
def test_memory_is_the_output_plus_a_constant_for_many_short_rows(shape, kind):
    """Issue 13: rows × 8 bytes for the result, plus a few MB, whatever the batch shape."""
    p, q = _short_rows(shape, kind)
    output = 8 * p[..., 0].size
    for f, args in ((kl_divergence, (p, q)), (entropy, (p,)), (cross_entropy, (p, q))):
        peak = _peak(f, *args)
        assert peak - output < MEMORY_ALLOWANCE, (
            f"{f.__name__}{shape}: {peak / 1e6:.1f} MB for a {output / 1e6:.1f} MB result"
        )


def test_memory_of_broadcast_batches_is_the_output_plus_a_constant():
    """Batch axes that do not flatten (one panel per index) are grouped the same way."""
    rng = np.random.default_rng(17)
    p = _normalised(rng.random((400, 1, 3)))
    q = _normalised(rng.random((1, 500, 3)))
    peak = _peak(kl_divergence, p, q)
    assert peak - 8 * 400 * 500 < MEMORY_ALLOWANCE, f"{peak / 1e6:.1f} MB"


def test_groups_give_the_same_bits_as_one_group(monkeypatch):
    """Totals and results are the same bits however the rows are grouped."""
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(18)
    for shape in [(300, 5), (40, 3 * SMALL_CHUNK + 1), (6, 7, 9)]:
        p = _normalised(1.0 - rng.random(shape))
        q = _normalised(1.0 - rng.random(shape))
        p[::4] = q[::4] * (1 + 1e-9)  # uncertified rows, queued across groups
        monkeypatch.setattr(_chunked, "GROUP_ROWS", 1 << 30)
        one = _all(p, q)
        monkeypatch.setattr(_chunked, "GROUP_ROWS", 3)
        monkeypatch.setattr(_chunked, "GROUP_ELEMENTS", 50)
        many = _all(p, q)
        for a, b in zip(one, many, strict=True):
            np.testing.assert_array_equal(a, b)
        monkeypatch.setattr(_chunked, "GROUP_ELEMENTS", 1 << 30)


def test_uncertified_rows_get_the_second_pass_not_the_exact_path(monkeypatch):
    """Issue 15: p ∝ q unnormalised and one-hot cross-entropy rows cost one more pass.

    (One-hot entropy rows need none: tests/test_dominant_entropy.py refuses it.)
    """
    from klspec.reference import divergences

    def refuse(*args):
        raise AssertionError("the exact path was used")

    for name in ("_kl_nats", "_entropy_nats", "_cross_entropy_exact", "_kl_long"):
        monkeypatch.setattr(divergences, name, refuse)
    monkeypatch.setattr(divergences, "_entropy_long", refuse)
    chunk = _chunked.CHUNK
    rng = np.random.default_rng(19)
    for shape in [(50, 2), (7, 300), (SMALL_CHUNK * 3,)]:
        q = _normalised(rng.random(shape))
        p = q * (1 + 1e-9)
        assert not _chunked.kl_divergence_rows((p, q))["certified"].any()
        monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
        kl = np.atleast_1d(kl_divergence(p, q))
        one_hot = np.full(shape, 1e-17 / shape[-1])
        one_hot[..., 0] = 1.0 - 1e-12
        assert not _chunked.plogx_rows((one_hot, one_hot))["certified"].any()
        h = np.atleast_1d(entropy(one_hot))
        c = np.atleast_1d(cross_entropy(one_hot, one_hot))
        monkeypatch.setattr(_chunked, "CHUNK", chunk)
        rows = zip(*(np.atleast_2d(a) for a in (p, q, one_hot)), strict=True)
        for i, (pi, qi, oi) in enumerate(rows):
            _assert_accurate(kl[i], kl_exact(pi, qi))
            _assert_accurate(h[i], entropy_exact(oi))
            _assert_accurate(c[i], cross_entropy_exact(oi, oi))


def test_the_second_pass_gives_the_same_bits_on_threads(monkeypatch):
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(20)
    q = _normalised(rng.random((40, 300)))
    p = q * (1 + 1e-9)
    monkeypatch.setenv("KLSPEC_NUM_THREADS", "1")
    one = _all(p, q)
    monkeypatch.setenv("KLSPEC_NUM_THREADS", "3")
    three = _all(p, q)
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_values_in_a_late_block_are_reported_as_before(monkeypatch):
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    p, q = _pair(5 * SMALL_CHUNK, seed=9, kind="unrelated")
    bad = q.copy()
    bad[-2] = np.nan
    with pytest.raises(ValueError, match=r"q\[318\] is NaN; probabilities must be finite"):
        kl_divergence(p, bad)
    bad = p.copy()
    bad[-1] = -bad[-1]
    with pytest.raises(ValueError, match=r"p\[319\] is negative"):
        entropy(bad)
    with pytest.raises(ValueError, match=r"p sums to"):
        cross_entropy(p * 1.001, q)


def test_an_invalid_thread_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("KLSPEC_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="KLSPEC_NUM_THREADS='two' is not a whole number"):
        _chunked.threads()
    monkeypatch.setenv("KLSPEC_NUM_THREADS", "2")
    assert _chunked.threads() == 2


# --- uncertified long rows: the exact path in pieces ---------------------------------


def test_uncertified_long_rows_are_exact_in_pieces(monkeypatch):
    """Rows longer than the exact path's piece size: two passes over pieces give the
    whole-row method's value, within the bound against mpmath."""
    from klspec.reference import divergences

    monkeypatch.setattr(divergences, "_LONG_ROW", 100)
    monkeypatch.setattr(_chunked, "CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(14)
    q = _normalised(rng.random(3 * 100 + 5))
    p = q * (1 + 1e-9)  # uncertified: p ∝ q, not normalised
    _assert_accurate(kl_divergence(p, q), kl_exact(p, q))
    # Cross-entropy of a one-hot row with itself, zeros in it (a careful block, which the
    # second pass leaves to the exact path): _entropy_long + _kl_long.
    one_hot_ish = np.full(305, 2.0**-60 / 200)
    one_hot_ish[::3] = 0.0
    one_hot_ish[7] = 1.0 - 2.0**-40
    assert not _chunked.plogx_rows((one_hot_ish, one_hot_ish))["certified"].any()
    _assert_accurate(
        cross_entropy(one_hot_ish, one_hot_ish), cross_entropy_exact(one_hot_ish, one_hot_ish)
    )
    _assert_accurate(divergences._entropy_long(one_hot_ish), entropy_exact(one_hot_ish))
    whole = divergences._cross_entropy_exact(p[None], q[None])[0]
    assert divergences._cross_entropy_long(p, q) == pytest.approx(whole, rel=2 * BOUND)


def test_uncertified_long_rows_keep_memory_bounded():
    rng = np.random.default_rng(15)
    q = _normalised(rng.random(1 << 21))
    p = q * (1 + 1e-9)
    tracemalloc.start()
    kl_divergence(p, q)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 48e6, f"{peak / 1e6:.0f} MB for a 16 MB row"  # whole-row: ~15 × 16 MB
