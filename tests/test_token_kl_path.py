"""The one-pass token_kl path (klspec.reference._token_kl) against mpmath.

Every distance of benchmarks/performance.py's token_kl sweep (b = a + σ·noise for
σ in {0.01, 0.1, 0.5, 1, 3}, unrelated rows, one token moved by 20), float32 and
float64, with the bound tests/test_language_models.py states: 1e-15 for rows whose
centred differences stay within 1, 4e-15 for rows apart. Then the seams of the
path: rows just below and above a block and a piece, maxima in different pieces,
−inf masks across pieces, and memory for a long vocabulary.
"""

from __future__ import annotations

import tracemalloc

import mpmath
import numpy as np
import pytest

from klspec.reference import _chunked, _token_kl, token_kl
from klspec.spec.oracle import relative_error

BOUND = 1e-15  # rows nearly equal (tests/test_language_models.py)
APART_BOUND = 4e-15  # rows far apart (tests/test_language_models.py)


def exact_token_kl(a: np.ndarray, b: np.ndarray) -> mpmath.mpf:
    """KL(softmax a ‖ softmax b) with mpmath; −inf logits are tokens of probability 0."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    if (fa & ~fb).any():
        return mpmath.inf
    diff = np.abs(a[fa & fb] - b[fa & fb])
    closeness = -2 * np.log10(diff[diff > 0].min()) if (diff > 0).any() else 0
    spread = max(np.ptp(a[fa]), np.ptp(b[fb])) / np.log(10)
    with mpmath.workdps(40 + int(max(closeness, 0) + spread)):
        A = [mpmath.mpf(float(x)) for x in a[fa]]
        B = [mpmath.mpf(float(x)) for x in b[fb]]
        la = max(A) + mpmath.log(mpmath.fsum(mpmath.exp(x - max(A)) for x in A))
        lb = max(B) + mpmath.log(mpmath.fsum(mpmath.exp(y - max(B)) for y in B))
        terms = [
            mpmath.exp(mpmath.mpf(float(x)) - la)
            * ((mpmath.mpf(float(x)) - la) - (mpmath.mpf(float(y)) - lb))
            for x, y in zip(a[fa], b[fa], strict=True)
        ]
        return +mpmath.fsum(terms)


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Some |d_i| > 1, d = (a − b) centred on Q's most likely token (as in
    tests/test_language_models.py)."""
    live = np.isfinite(a) & np.isfinite(b)
    j = int(np.argmax(np.where(live, b, -np.inf)))
    return bool(np.abs((a[live] - b[live]) - (a[j] - b[j])).max() > 1.0)


def sweep_pair(kind: str, n: int, seed: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's inputs: a ~ N(0, 3²); b by ``kind``."""
    rng = np.random.default_rng(seed)
    a = (3.0 * rng.standard_normal(n)).astype(dtype)
    if kind == "unrelated":
        b = (3.0 * rng.standard_normal(n)).astype(dtype)
    elif kind.startswith("moved"):
        b = a.copy()
        k = int(rng.integers(n))
        b[k] += dtype(20.0) if kind == "moved_q" else dtype(0.0)
        if kind == "moved_p":
            a = a.copy()
            a[k] += dtype(20.0)
    else:
        b = (a + dtype(float(kind)) * rng.standard_normal(n).astype(dtype)).astype(dtype)
    return a, b


KINDS = ["0.01", "0.1", "0.5", "1", "3", "unrelated", "moved_q", "moved_p"]


def _check(a: np.ndarray, b: np.ndarray, value: float) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = exact_token_kl(a64, b64)
    err = relative_error(float(value), exact)
    bound = APART_BOUND if _apart(a64, b64) else BOUND
    assert err <= bound, f"relative error {err:.2e} > {bound:g} (KL = {float(exact):.3g})"
    return err


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_distance_of_the_sweep_against_mpmath(kind, dtype):
    for seed in range(2):
        a, b = sweep_pair(kind, 600, seed, dtype)
        _check(a, b, token_kl(a, b))


@pytest.mark.parametrize("kind", KINDS)
def test_the_sweep_takes_the_one_pass_path(kind):
    """The rows of the sweep are accepted by the one-pass path (none left to the
    whole-row method), in both its exact-difference and TwoSum forms."""
    a, b = sweep_pair(kind, 600, 7, np.float32)
    a64, b64 = a.astype(np.float64)[None, :], b.astype(np.float64)[None, :]
    for narrow in (True, False):
        work = _chunked._Workspace()
        kl, accepted = _token_kl.block_rows(
            a64, b64, a64.max(axis=-1), b64.max(axis=-1), work, narrow
        )
        assert accepted.all(), f"{kind}: left to the whole-row method"
        _check(a, b, kl[0])


def test_a_full_vocabulary_row_against_mpmath():
    """One long row (8,000 logits) at σ = 1."""
    for kind in ("1",):
        a, b = sweep_pair(kind, 8000, 3, np.float32)
        _check(a, b, token_kl(a, b))


def test_g_polynomials_meet_their_bound():
    """Each polynomial for g(t) = (t − 1 + e^{−t})/t² within 1.5 units of 2**-53 on its
    interval, Horner's rounding included (mpmath at 50 digits)."""

    def g(t):
        t = mpmath.mpf(t)
        if t == 0:
            return mpmath.mpf(1) / 2
        return (t - 1 + mpmath.exp(-t)) / t**2

    with mpmath.workdps(50):
        for radius, coefficients in _token_kl.G_POLYNOMIALS.items():
            lo, hi = (-radius, radius) if radius else (_token_kl._SERIES_LO, _token_kl._SERIES_HI)
            ts = np.linspace(lo, hi, 601)
            values = _chunked.horner(list(coefficients), ts, np.empty_like(ts))
            worst = max(
                abs(float((mpmath.mpf(float(v)) - g(t)) / g(t)))
                for t, v in zip(ts, values, strict=False)
            )
            assert worst <= 1.5 * 2.0**-53, f"{radius}: {worst / 2.0**-53:.2f} units"


# ---------------------------------------------------------------------------
# Seams
# ---------------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 1,024 logits and long rows from 2,048 on, so seams come cheap."""
    monkeypatch.setattr(_chunked, "CHUNK", 1024)
    monkeypatch.setattr(_token_kl, "BLOCK", 1024)
    monkeypatch.setattr(_token_kl, "LONG_ROW", 2048)


@pytest.mark.parametrize("n", [1023, 1024, 1025, 2047, 2048, 2049, 3 * 1024 + 1])
def test_rows_just_below_and_above_a_block_and_a_piece(small_blocks, n):
    """Rows around the block size (one or several per block) and around LONG_ROW
    (pieces of CHUNK logits), several rows per call."""
    rows = [sweep_pair(kind, n, 11, np.float32) for kind in ("0.1", "1", "moved_q")]
    a = np.stack([r[0] for r in rows])
    b = np.stack([r[1] for r in rows])
    values = token_kl(a, b)
    for i in range(len(rows)):
        _check(a[i], b[i], values[i])


def test_maxima_in_different_pieces(small_blocks):
    """P's largest logit in the first piece, Q's in the last; and the reverse."""
    n = 3 * 1024 + 5
    a, b = sweep_pair("1", n, 5, np.float64)
    a[3], b[n - 2] = 25.0, 25.0
    _check(a, b, token_kl(a, b))
    _check(b, a, token_kl(b, a))


def test_masks_spanning_pieces_and_blocks(small_blocks):
    """−inf runs across piece boundaries: in P only (terms Q_i), in both (no mass), and
    in Q only where P allows the token (+inf); in a long row and in short rows."""
    for n in (3 * 1024 + 7, 1000):
        a, b = sweep_pair("0.5", n, 9, np.float32)
        a[n // 3 - 50 : n // 3 + 50] = -np.inf  # P bans these
        b[2 * n // 3 - 40 : 2 * n // 3 + 40] = -np.inf  # both ban these
        a[2 * n // 3 - 40 : 2 * n // 3 + 40] = -np.inf
        _check(a, b, token_kl(a, b))
        b2 = b.copy()
        b2[10] = -np.inf  # Q bans a token P allows
        assert token_kl(a, b2) == np.inf
        # Several rows in one block, masked and not.
        stacked = token_kl(np.stack([a, a, a]), np.stack([b, b2, a]))
        assert stacked[1] == np.inf
        assert stacked[2] == 0.0
        _check(a, b, stacked[0])


def test_long_rows_match_blocks(small_blocks, monkeypatch):
    """The same rows through pieces (long) and through whole-row blocks agree to the
    accuracy bound."""
    a, b = sweep_pair("1", 3000, 4, np.float32)
    long = token_kl(a, b)
    monkeypatch.setattr(_token_kl, "LONG_ROW", 1 << 20)
    whole = token_kl(a, b)
    assert relative_error(float(long), mpmath.mpf(float(whole))) <= 2 * APART_BOUND


def test_invalid_long_rows_are_named(small_blocks):
    a, b = sweep_pair("1", 3000, 4, np.float32)
    a[2500] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        token_kl(a, b)
    a[2500] = np.inf
    with pytest.raises(ValueError, match=r"\+inf"):
        token_kl(a, b)
    with pytest.raises(ValueError, match="-inf everywhere"):
        token_kl(np.full(3000, -np.inf), b)


def test_a_long_vocabulary_stays_within_64_mb():
    """A vocabulary of 2·10^6 (long rows, in pieces): at most 64 MB beyond the inputs."""
    rng = np.random.default_rng(1)
    n = 2_000_000
    a = (3.0 * rng.standard_normal((2, n))).astype(np.float32)
    b = a + rng.standard_normal((2, n)).astype(np.float32)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        token_kl(a, b)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak <= 64e6, f"token_kl used {peak / 1e6:.1f} MB beyond its inputs"


def test_the_benchmark_shape_stays_within_64_mb():
    """Whole-row blocks of 262,144 logits (the longest vocabulary the blocks take)."""
    rng = np.random.default_rng(2)
    n = _token_kl.LONG_ROW
    a = (3.0 * rng.standard_normal((8, n))).astype(np.float32)
    b = a + rng.standard_normal((8, n)).astype(np.float32)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        token_kl(a, b)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak <= 64e6, f"token_kl used {peak / 1e6:.1f} MB beyond its inputs"


# ---------------------------------------------------------------------------
# The methods of block_rows (issue 15): each forced on every distance, masks, and
# blocks holding rows of different methods
# ---------------------------------------------------------------------------

FAR_KINDS = ["0.5", "1", "3", "unrelated", "moved_q", "moved_p"]


@pytest.mark.parametrize(
    ("mid_outside", "direct_kl"),
    [(-1.0, 2.5), (1.1, 2.5), (-1.0, np.inf)],
    ids=["direct-then-series", "series-but-outliers", "series-on-every-row"],
)
@pytest.mark.parametrize("kind", FAR_KINDS)
def test_each_far_method_against_mpmath(monkeypatch, kind, mid_outside, direct_kl):
    """Rows far apart through each method: the direct form with the series where KL <
    DIRECT_KL (blended, or with few tokens outside the series region, on their own
    polynomial), and the series with e^β only outside it; bounds as above."""
    monkeypatch.setattr(_token_kl, "MID_OUTSIDE", mid_outside)
    monkeypatch.setattr(_token_kl, "DIRECT_KL", direct_kl)
    for seed in range(2):
        a, b = sweep_pair(kind, 700, seed, np.float32)
        a64, b64 = a.astype(np.float64)[None, :], b.astype(np.float64)[None, :]
        kl, accepted = _token_kl.block_rows(
            a[None, :], b[None, :], a64.max(axis=-1), b64.max(axis=-1), _chunked._Workspace(), True
        )
        assert accepted.all(), f"{kind}: left to the whole-row method"
        _check(a, b, kl[0])


@pytest.mark.parametrize("kind", ["0.01", "0.1", "1", "moved_q"])
def test_float32_masks_against_mpmath(kind):
    """−inf logits in float32 rows (the masked method): banned by both (a padded
    vocabulary), by P only (term Q_i) and, in another row, by Q only (+inf)."""
    a, b = sweep_pair(kind, 1003, 21, np.float32)
    a[-125:] = -np.inf
    b[-125:] = -np.inf
    a[5::64] = -np.inf
    value = token_kl(a, b)
    _check(a, b, value)
    b2 = b.copy()
    b2[7] = -np.inf
    both = token_kl(np.stack([a, a]), np.stack([b2, b]))
    assert both[0] == np.inf
    _check(a, b, both[1])


def test_a_block_of_rows_of_every_method(small_blocks):
    """Rows of different methods (near, far, outliers, masked) sharing blocks of 1,024
    logits, with n = 341 (not a multiple of the sample stride 16): each row alone."""
    n = 341
    rows = [sweep_pair(kind, n, 13, np.float32) for kind in ("0.01", "3", "moved_q", "0.1")]
    masked = sweep_pair("0.5", n, 14, np.float32)
    masked[0][::7] = -np.inf
    rows.append(masked)
    a = np.stack([r[0] for r in rows])
    b = np.stack([r[1] for r in rows])
    values = token_kl(a, b)
    for i in range(len(rows)):
        _check(a[i], b[i], values[i])
        _check(a[i], b[i], token_kl(a[i], b[i]))  # the row in a block of its own


@pytest.mark.parametrize("kind", ["0.01", "1", "unrelated", "moved_q"])
def test_float64_logits_holding_float32_values_take_the_float32_methods(kind):
    """float64 logits whose values are float32 (upcast model output) give the float32
    result bit for bit; genuine float64 logits are checked against mpmath above."""
    a, b = sweep_pair(kind, 900, 17, np.float32)
    rows = (np.stack([a, b]), np.stack([b, a]))
    expected = token_kl(*rows)
    got = token_kl(rows[0].astype(np.float64), rows[1].astype(np.float64))
    np.testing.assert_array_equal(got, expected)
    _check(a, b, got[0])


def test_float32_masks_with_logits_too_small_for_exact_differences():
    """A logit of 0 or 1e-30 next to masks sends the block to the TwoSum method, which
    must see the −inf (not their stand-ins): +inf where Q bans a token, mpmath else."""
    a, b = sweep_pair("0.1", 500, 23, np.float32)
    a[-50:] = -np.inf
    b[-50:] = -np.inf
    a[5::64] = -np.inf
    for tiny in (0.0, 1e-30):
        a[3] = np.float32(tiny)
        _check(a, b, token_kl(a, b))
        b2 = b.copy()
        b2[7] = -np.inf
        assert token_kl(a, b2) == np.inf
        assert token_kl(a.astype(np.float64), b2.astype(np.float64)) == np.inf


@pytest.mark.parametrize("top", [0.0, 0.98])
def test_a_near_row_with_its_mass_at_one_end_of_its_span(top):
    """δ spans 0.98 (the near method) with most of P on the tokens at one end: the
    shift c₀ stays where the series covers every t."""
    rng = np.random.default_rng(3)
    a = (3.0 * rng.standard_normal(500)).astype(np.float32)
    d = np.full(500, np.float32(0.98 - top))
    d[:5] = top
    a[:5] = 20.0
    b = (a - d).astype(np.float32)
    work = _chunked._Workspace()
    a64, b64 = a[None, :].astype(np.float64), b[None, :].astype(np.float64)
    kl, accepted = _token_kl.block_rows(a64, b64, a64.max(-1), b64.max(-1), work, True)
    assert accepted.all()
    _check(a, b, kl[0])
