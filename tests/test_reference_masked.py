"""token_kl with masked (−inf) and huge logits, and kl_estimate at its limits, against mpmath.

BOUND and APART_BOUND are the bounds tests/test_language_models.py states for
token_kl (imported from there, one claim): relative error <= 1e-15 against the
exact value, <= 4e-15 for rows far apart (some |d_i| > 1, or P banning tokens
that hold most of Q's mass). Results that underflow are allowed one subnormal
unit (klspec.spec.oracle.accuracy_error). The truth: mpmath with enough bits to
form every difference of the logits exactly (a float64 spans 2**-1074..2**1024),
plus 60 digits and twice the digits of the smallest nonzero d_i (KL ~ d²),
confirmed by recomputing with 128 more bits.

Conventions (module docs of klspec.reference.language_models): a logit of −inf
is a token of probability 0. P_i = 0: the term is 0 whatever Q_i. Q_i = 0 < P_i:
KL = +inf. A row that is −inf everywhere is not a distribution: ValueError.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_language_models import APART_BOUND, BOUND

from klspec.reference import _token_kl, kl_estimate, token_kl
from klspec.spec.oracle import accuracy_error

INF = math.inf
MAX = float(np.finfo(np.float64).max)
#: Exact values from here on round to +inf in float64 (MAX plus half an ulp).
OVERFLOW = mpmath.mpf(2) ** 1024 - mpmath.mpf(2) ** 970


# --- the oracle ------------------------------------------------------------------


def exact_token_kl(a: np.ndarray, b: np.ndarray) -> mpmath.mpf:
    """KL(softmax(a) ‖ softmax(b)) of one row of logits, −inf allowed; +inf if Q_i = 0 < P_i.

    Computed at a first guess of the precision, then again with 128 more bits until
    two results agree to 2**-100 (cancellation the guess did not foresee).
    """
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    if any(x != -INF and y == -INF for x, y in zip(a, b, strict=True)):
        return mpmath.inf  # Q_i = 0 < P_i
    finite = [abs(x) for x in a + b if math.isfinite(x) and x != 0]
    span = math.log2(max(finite)) - math.log2(min(finite)) if finite else 0.0
    closeness = 0.0
    both = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if both:
        (x0, y0), d = both[0], []
        try:  # fsum is correctly rounded: nonzero exactly when d_i is
            d = [abs(math.fsum((x, -y, -x0, y0))) for x, y in both]
        except OverflowError:
            with mpmath.workprec(2200):  # enough for the exact difference of any two float64
                d = [abs((mpmath.mpf(x) - y) - (mpmath.mpf(x0) - y0)) for x, y in both]
        d = [x for x in d if x != 0]
        closeness = max(0.0, -2 * float(mpmath.log10(min(d)))) if d else 0.0
    bits = int(span) + 60 + int(3.33 * (60 + closeness))
    value = _kl_at(a, b, bits)
    while bits < 1 << 16:
        bits += 128
        again = _kl_at(a, b, bits)
        if abs(again - value) <= abs(again) * mpmath.mpf(2) ** -100:
            return again
        value = again
    raise AssertionError(f"the oracle did not converge for a={a!r}, b={b!r}")


def _kl_at(a: list[float], b: list[float], bits: int) -> mpmath.mpf:
    """Σ P_i (log P_i − log Q_i) at ``bits`` of precision (a finite value).

    log P_i = (a_i − max a) − log1p(Σ_{others} e^{a_k − max a}): the difference is exact
    with enough bits for the logits' span, and log1p keeps a tiny sum (e^-714 next to 1)
    that max a + log(1 + ...) would round away.
    """
    with mpmath.workprec(bits):

        def log_softmax(xs: list[float]) -> list[mpmath.mpf | None]:
            live = [mpmath.mpf(x) for x in xs if x != -INF]
            top = max(live)
            i = live.index(top)
            log1p_rest = mpmath.log1p(
                mpmath.fsum(mpmath.exp(x - top) for k, x in enumerate(live) if k != i)
            )
            return [None if x == -INF else (mpmath.mpf(x) - top) - log1p_rest for x in xs]

        terms = []
        for log_p, log_q in zip(log_softmax(a), log_softmax(b), strict=True):
            if log_p is not None:  # P_i = 0: the term is 0 whatever Q_i
                terms.append(mpmath.exp(log_p) * (log_p - log_q))
        return +mpmath.fsum(terms)


def _row(x: np.ndarray) -> str:
    return f"np.array({x.tolist()!r}, dtype=np.{x.dtype})"


def assert_exact(value: float, a: np.ndarray, b: np.ndarray, bound: float | None = None) -> None:
    """token_kl(a, b) = value is within ``bound`` of the truth (+inf where it exceeds float64).

    ``bound`` defaults to the one for the row: APART_BOUND if :func:`far_apart`, else BOUND.
    """
    __tracebackhide__ = True
    if bound is None:
        bound = APART_BOUND if far_apart(a, b) else BOUND
    exact = exact_token_kl(a, b)
    call = f"token_kl({_row(a)}, {_row(b)})" if a.size <= 16 else "token_kl(a, b)"
    if exact >= OVERFLOW:
        assert value == INF, f"{call}={value!r}, but should be +inf (exact {mpmath.nstr(exact, 5)})"
        return
    err = accuracy_error(float(value), exact)
    assert err <= bound, (
        f"{call}={value!r}, but should be {mpmath.nstr(exact, 20)} "
        f"(relative error {err:.2e} > {bound:g})"
    )


def far_apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Rows with the looser bound: some |d_i| > 1 (d = a − b centred on Q's likeliest
    token that P allows, over tokens both allow), or P bans more than half of Q's mass."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    if (fa & ~fb).any():
        return False  # +inf exactly
    both = fa & fb
    j = int(np.argmax(np.where(fa, b, -INF)))
    d = (a[both] - b[both]) - (a[j] - b[j])
    q = np.exp(b - b[fb].max())
    return bool(np.abs(d).max() > 1.0 or q[~fa].sum() > 0.5 * q.sum())


def check_rows(a: np.ndarray, b: np.ndarray, values: np.ndarray, rows=None) -> None:
    __tracebackhide__ = True
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    values = np.asarray(values).reshape(-1)
    for i in range(a2.shape[0]) if rows is None else rows:
        assert_exact(values[i], a2[i].astype(np.float64), b2[i].astype(np.float64))


# --- masked tokens ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_p_bans_the_token_q_likes_most(dtype):
    """Regression: P_0 = 0 at Q's largest logit (a tie here) gave NaN; KL = log 2."""
    a, b = np.array([-INF, 0.0], dtype=dtype), np.array([0.0, 0.0], dtype=dtype)
    value = token_kl(a, b)
    assert value == pytest.approx(math.log(2), rel=BOUND), f"token_kl({a}, {b})={value!r}"
    assert_exact(value, a, b, BOUND)
    # Q strictly prefers the banned token; and the same in a longer row
    for a, b in (
        _f64([-INF, 0.0], [2.0, 0.0]),
        _f64([0.5, -INF, 0.25, -1.0], [0.0, 3.0, 0.5, -1.0]),
    ):
        a, b = a.astype(dtype), b.astype(dtype)
        assert_exact(token_kl(a, b), a.astype(np.float64), b.astype(np.float64))


def _f64(a, b):
    return np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)


def masked_batch(dtype) -> tuple[np.ndarray, np.ndarray]:
    """(3, 4, 24) positions × vocabulary: every way a row can be masked, near and far rows."""
    rng = np.random.default_rng(20240611)
    v = 24
    a = rng.normal(0.0, 2.0, (12, v))
    b = a + 1e-3 * rng.normal(size=(12, v))
    b[6:] = rng.normal(0.0, 2.0, (6, v))  # far rows
    for r0 in (0, 6):
        a[r0 + 0, [3, 7]] = -INF  # in P
        b[r0 + 1, [2, 9]] = -INF  # in Q (P finite there: +inf)
        a[r0 + 2, [1, 5]] = b[r0 + 2, [1, 5]] = -INF  # in both
        a[r0 + 3, np.argmax(b[r0 + 3])] = -INF  # in P at Q's largest logit
        # all but one in P: Q's likeliest token (row 4), another (row 10)
        keep = np.argmax(b[r0 + 4]) if r0 == 0 else 11
        a[r0 + 4, np.arange(v) != keep] = -INF
        b[r0 + 5, np.arange(v) != 11] = -INF  # all but one in Q
        a[r0 + 5, np.arange(v) != 11] = -INF  # ... and in P at the same token (KL 0)
    b[10, [0, 1]] = -INF  # far row 10 (P keeps token 11): Q masked where P is too
    return a.reshape(3, 4, v).astype(dtype), b.reshape(3, 4, v).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_masked_batch_rows_are_exact(dtype):
    a, b = masked_batch(dtype)
    values = token_kl(a, b)
    assert values.shape == (3, 4)
    assert values.dtype == np.float64
    assert not np.isnan(values).any(), np.argwhere(np.isnan(values))
    check_rows(a, b, values)
    # each row alone is exact too (its block holds no other row)
    for idx in np.ndindex(3, 4):
        assert_exact(
            token_kl(a[idx], b[idx]), a[idx].astype(float), b[idx].astype(float), APART_BOUND
        )


def test_masked_conventions():
    """P_i = 0 makes a term 0 whatever Q_i; Q_i = 0 < P_i is +inf; one token left is KL 0."""
    a = np.array([[0.5, -INF, 1.0], [0.5, 2.0, 1.0], [-INF, 3.0, -INF], [-INF, 3.0, -INF]])
    b = np.array([[0.0, 9.0, 1.0], [0.0, -INF, 1.0], [1.0, -2.0, 5.0], [-INF, 7.0, -INF]])
    values = token_kl(a, b)
    # P = (σ, 0, 1 − σ) against Q with 9.0 at the banned token: Σ_i P_i log(P_i/Q_i)
    p = np.exp(a[0, [0, 2]] - np.logaddexp(a[0, 0], a[0, 2]))
    log_q = b[0, [0, 2]] - np.log(np.exp(b[0] - 9.0).sum()) - 9.0
    assert values[0] == pytest.approx(float(np.sum(p * (np.log(p) - log_q))), rel=1e-14)
    assert values[1] == INF
    # P is one-hot on token 1: KL = −log Q_1
    assert values[2] == pytest.approx(-(-2.0 - np.log(np.exp([1.0, -2.0, 5.0]).sum())), rel=1e-15)
    assert values[3] == 0.0
    # a token banned in both is a token that is not there
    a4, b4 = np.array([0.3, -INF, -1.2, 2.0]), np.array([0.1, -INF, -0.2, 2.5])
    assert_exact(token_kl(a4, b4), a4[[0, 2, 3]], b4[[0, 2, 3]], BOUND)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("shape", "row", "shown"),
    [((5, 8), (3,), "3"), ((2, 3, 8), (1, 2), "1, 2"), ((8,), (), "")],
    ids=["2-d", "3-d", "1-d"],
)
@pytest.mark.parametrize("name", ["logits_p", "logits_q"])
def test_a_row_masked_everywhere_is_an_error(dtype, shape, row, shown, name):
    """A row that is −inf everywhere is not a distribution: the error names the row."""
    x = np.zeros(shape, dtype=dtype)
    y = np.zeros(shape, dtype=dtype)
    bad = x if name == "logits_p" else y
    bad[row] = -INF
    where = rf"{name}\[{shown}\]" if shown else name
    with pytest.raises(ValueError, match=rf"^{where} is -inf everywhere; a row needs one finite"):
        token_kl(x, y)


# --- huge logits --------------------------------------------------------------

HUGE_CASES = {
    # P = (1, e^{-2e308}) against the uniform Q: log 2
    "p-huge": ([1e308, -1e308], [0.0, 0.0]),
    # the swap: 1e308 − log 2
    "q-huge": ([0.0, 0.0], [1e308, -1e308]),
    "both-huge-shifted": ([1e308, 1e308], [-1e308, -1e308]),
    "p-huge-q-huge": ([1e308, -1e308, 0.0], [-1e308, 0.0, 1e308]),
    "exceeds-float64": ([MAX, -MAX], [-MAX, MAX]),  # ~3.6e308: +inf
    "max": ([0.0, -MAX], [0.0, MAX]),
    "max-reversed": ([-MAX, 0.0], [0.0, -MAX]),
    "huge-next-to-masked": ([-INF, 0.0, 1.0], [1e308, 0.0, 0.0]),
    "huge-masked-in-both": ([-INF, -1e308, 1e308, 2.0], [-INF, 1e308, -1e308, 3.0]),
    "huge-tie": ([1e308, 1e308, -3.0], [5.0, 1e308, 1e308]),
    # P_1 = e^-800 underflows, P_1·t_1 does not
    "faint-p-times-huge-t": ([0.0, -800.0], [0.0, -1e100]),
    "faint-p-times-huge-t-1400": ([0.0, -1400.0], [0.0, -1e300]),
    "faint-p-among-three": ([0.7, -100.3, 0.2], [0.0, -1e100, 0.9]),
    "faint-p-near-2^1020": ([0.0, -50.0], [0.0, -1.1e307]),
    "faint-p-above-2^1020": ([0.0, -800.0], [0.0, -1.2e307]),
}


@pytest.mark.parametrize(("a", "b"), HUGE_CASES.values(), ids=HUGE_CASES.keys())
def test_huge_logits_do_not_overflow_to_nan(a, b):
    """Regression: differences of logits of 1e308 overflowed (NaN); e^g·t underflowed (0)."""
    a, b = _f64(a, b)
    assert_exact(token_kl(a, b), a, b, APART_BOUND)
    assert_exact(token_kl(b, a), b, a, APART_BOUND)


def test_huge_logit_values():
    """The two values named when the bug was found (mpmath: log 2 and 1e308 − log 2)."""
    assert token_kl(*_f64([1e308, -1e308], [0.0, 0.0])) == pytest.approx(math.log(2), rel=1e-15)
    assert token_kl(*_f64([0.0, 0.0], [1e308, -1e308])) == 1e308  # 1e308 − 0.69 rounds to 1e308


@st.composite
def wide_rows(draw):
    """Rows mixing ordinary, faint (−1000..−700), huge (1e300..1.8e308) and −inf logits."""
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    n = draw(st.integers(2, 12), label="n")
    tie = draw(st.booleans(), label="q ties p's largest logit")
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, 10.0, n), rng.normal(0.0, 10.0, n)
    for x in (a, b):
        kind = rng.choice(4, n, p=[0.5, 0.1, 0.3, 0.1])
        x[kind == 1] = rng.uniform(-1000.0, -700.0, (kind == 1).sum())
        x[kind == 2] = rng.choice([-1.0, 1.0], (kind == 2).sum()) * 10.0 ** rng.uniform(
            300, 308.25, (kind == 2).sum()
        )
        x[kind == 3] = -INF
        if not np.isfinite(x).any():
            x[rng.integers(n)] = 0.0
    if tie:
        b[np.argmax(a)] = a.max()
    return a, b


@given(wide_rows())
def test_rows_of_every_magnitude_are_exact(pair):
    a, b = pair
    assert_exact(token_kl(a, b), a, b, APART_BOUND)


# --- accuracy on masked rows -----------------------------------------------------


@st.composite
def masked_rows(draw):
    """Random logit rows with masks: parameters drawn by hypothesis, values built by numpy."""
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    n = draw(st.integers(2, 64), label="n")
    scale = draw(st.sampled_from([1e-3, 1e-2, 0.1, 1.0, 10.0, 30.0]), label="scale")
    regime = draw(st.sampled_from(["near", "shifted", "far"]), label="regime")
    exponent = draw(st.integers(-15, -1), label="exponent")  # near: b = a + 10^e·scale·noise
    in_p = draw(st.sampled_from([0.0, 0.1, 0.3, 0.6]), label="fraction masked in P")
    in_both = draw(st.sampled_from([0.0, 0.2]), label="fraction masked in both")
    in_q = draw(st.sampled_from([0.0, 0.0, 0.05]), label="fraction masked in Q")
    at_q_max = draw(st.booleans(), label="P masked at Q's largest logit")
    one_left = draw(st.sampled_from(["", "P", "Q"]), label="all but one masked in")
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, scale, n)
    if regime == "far":
        b = rng.normal(0.0, scale, n)
    else:
        b = a + (3.0 if regime == "shifted" else 0.0) + 10.0**exponent * scale * rng.normal(size=n)
    u = rng.random(n)
    a[u < in_p] = -INF
    both = (u >= in_p) & (u < in_p + in_both)
    a[both] = b[both] = -INF
    b[(u >= in_p + in_both) & (u < in_p + in_both + in_q)] = -INF
    if at_q_max:
        a[np.argmax(b)] = -INF
    if one_left:
        x = a if one_left == "P" else b
        x[np.arange(n) != rng.integers(n)] = -INF
    for x in (a, b):  # every row needs one finite logit
        if not np.isfinite(x).any():
            x[rng.integers(n)] = rng.normal(0.0, scale)
    return a, b


@given(masked_rows())
def test_masked_rows_are_exact(pair):
    a, b = pair
    check_rows(a, b, token_kl(a, b))


@given(masked_rows())
def test_masked_float32_rows_are_exact(pair):
    a, b = (x.astype(np.float32) for x in pair)
    check_rows(a, b, token_kl(a, b))


@pytest.mark.parametrize("seed", range(3))
def test_masked_rows_seeded(seed):
    """Seeded loop over the same families, in one batch (the row's block mixes them)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(40):
        n = int(rng.integers(2, 65))
        scale = float(rng.choice([1e-3, 1e-2, 0.1, 1.0, 10.0, 30.0]))
        a = rng.normal(0.0, scale, 64)
        b = a + 10.0 ** rng.integers(-15, 0) * scale * rng.normal(size=64)
        if rng.random() < 0.4:
            b = rng.normal(0.0, scale, 64)
        a[n:] = b[n:] = -INF  # a vocabulary of n: the rest masked in both
        a[rng.random(64) < 0.2] = -INF
        if rng.random() < 0.5:
            a[np.argmax(b)] = -INF
        if not np.isfinite(a).any():
            a[0], b[0] = 0.0, 0.0
        rows.append((a, b))
    a, b = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    for dtype in (np.float64, np.float32):
        check_rows(a.astype(dtype), b.astype(dtype), token_kl(a.astype(dtype), b.astype(dtype)))


# --- blocks: token_kl works in blocks of whole rows ----------------------------------


def _near_rows(rows: int, v: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 2.0, (rows, v)).astype(np.float32)
    b = (a + 0.05 * rng.normal(size=(rows, v))).astype(np.float32)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_rows_at_a_block_edge(dtype):
    """Rows of 1000 logits: 131 per block. Masked rows last and first in a block."""
    v = 1000
    per_block = _token_kl.BLOCK // v
    a, b = _near_rows(3 * per_block, v, 5)
    a, b = a.astype(dtype), b.astype(dtype)
    edge = [per_block - 1, per_block, 2 * per_block - 1, 2 * per_block]
    a[edge[0], np.argmax(b[edge[0]])] = -INF  # P at Q's largest
    a[edge[1], [0, v - 1]] = -INF  # P at the row's ends
    a[edge[2], v - 1] = b[edge[2], v - 1] = -INF  # both, the block's last element
    b[edge[3], 0] = -INF  # Q at the block's first element: +inf
    values = token_kl(a, b)
    assert values[edge[3]] == INF
    check_rows(a, b, values, rows=[0, *edge, edge[0] - 1, edge[3] + 1, 3 * per_block - 1])
    # rows sharing a block with a masked row keep their values (to the bound)
    clean = token_kl(*_near_rows(3 * per_block, v, 5))
    others = np.setdiff1d(np.arange(3 * per_block), edge)
    np.testing.assert_allclose(values[others], clean[others], rtol=2 * BOUND)


def _sparse(a: np.ndarray, b: np.ndarray, seed: int, edges: list[int]) -> None:
    """Mask a row in both but at 2000 random tokens and ``edges``, in place: the row keeps
    its length (and its blocks), the oracle's cost is in the tokens left."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(a.shape[-1], dtype=bool)
    keep[rng.choice(a.shape[-1], 2000, replace=False)] = True
    keep[edges] = True
    a[~keep] = b[~keep] = -INF


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_at_the_block_size_inside_one_long_row(dtype):
    """A row longer than a block is one block of its own: −inf at BLOCK − 1 and BLOCK."""
    n = _token_kl.BLOCK
    v = n + 3
    a, b = _near_rows(1, v, 6)
    a, b = a[0].astype(dtype), b[0].astype(dtype)
    _sparse(a, b, 6, [0, 1, n - 2, n - 1, n, n + 1, v - 1])
    a[[n - 1, int(np.argmax(b))]] = -INF  # in P, at the edge and at Q's largest logit
    a[n] = b[n] = -INF  # in both, first token past the block size
    assert_exact(token_kl(a, b), a.astype(np.float64), b.astype(np.float64))


@pytest.mark.parametrize("masked_at", [0, _token_kl.BLOCK - 1], ids=["first", "last"])
def test_rows_exactly_one_block_long(masked_at):
    n = _token_kl.BLOCK
    a, b = _near_rows(3, n, 7)
    _sparse(a[1], b[1], 7, [0, 1, n - 2, n - 1])
    a[1, masked_at] = -INF
    b[1, masked_at] = 30.0  # Q likes the token P bans most
    values = token_kl(a, b)
    check_rows(a, b, values, rows=[1])
    np.testing.assert_allclose(values[[0, 2]], token_kl(a[[0, 2]], b[[0, 2]]), rtol=2 * BOUND)


# --- kl_estimate at its limits ------------------------------------------------


def exact_estimate(estimator: str, logp: float, ref_logp: float) -> mpmath.mpf:
    with mpmath.workprec(2300):
        d = mpmath.mpf(ref_logp) - mpmath.mpf(logp)  # exact: both are float64
        return {"k1": -d, "k2": d * d / 2, "k3": mpmath.expm1(d) - d}[estimator]


def _quietly(*args):
    """kl_estimate with every warning an error: the limits are values, not events."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return kl_estimate(*args)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_estimators_are_inf_where_ref_gives_probability_zero(estimator):
    """Regression: k2 was NaN (−inf·0) with a RuntimeWarning; the limit d → −inf is +inf."""
    assert _quietly(-0.5, -INF, estimator) == INF
    values = _quietly(np.array([-0.5, -1.0, -2.0]), np.array([-INF, -1.0, -INF]), estimator)
    assert values[0] == values[2] == INF
    assert values[1] == 0.0


ESTIMATE_LIMITS = {
    "d=-max": (-0.0, -MAX),
    "d=-max+1e-300": (-1e-300, -MAX),
    "d=-max-1e-8": (1e-8, -MAX),  # logp may exceed 0 by rounding
    "d=-1.7976e308": (-1e-3, -1.7976e308),
    "d=-1e308": (-7.5, -1e308),
    "d=+max": (-MAX, 0.0),
    "d=+1e308": (-1e308, -0.25),
    "d=-1.5e154": (-1.0, -1.5e154),  # k2 = d²/2 = 1.1e308, finite
    "d=+1.85e154": (-1.85e154, 0.0),
    "d=-1.9e154": (0.0, -1.9e154),  # k2 = 1.805e308 > max: +inf
    "d=+709.78": (-709.78, 0.0),  # k3 just below max
    "d=+709.79": (-709.79, 0.0),  # k3 above max: +inf
}


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
@pytest.mark.parametrize(("logp", "ref_logp"), ESTIMATE_LIMITS.values(), ids=ESTIMATE_LIMITS.keys())
def test_estimators_at_the_ends_of_float64(estimator, logp, ref_logp):
    value = float(_quietly(logp, ref_logp, estimator))
    exact = exact_estimate(estimator, logp, ref_logp)
    call = f"kl_estimate({logp!r}, {ref_logp!r}, {estimator!r})"
    if abs(exact) >= OVERFLOW:
        assert value == (INF if exact > 0 else -INF), f"{call}={value!r}, but should overflow"
        return
    err = accuracy_error(value, exact)
    assert err <= BOUND, f"{call}={value!r}, but should be {mpmath.nstr(exact, 17)} ({err:.2e})"


def test_estimators_on_an_array_of_limits_match_the_scalars():
    logp = np.array([v[0] for v in ESTIMATE_LIMITS.values()] + [-0.5])
    ref = np.array([v[1] for v in ESTIMATE_LIMITS.values()] + [-INF])
    for estimator in ("k1", "k2", "k3"):
        values = _quietly(logp, ref, estimator)
        scalars = [_quietly(x, y, estimator) for x, y in zip(logp, ref, strict=True)]
        np.testing.assert_array_equal(values, scalars)
        assert not np.isnan(values).any()


@pytest.mark.parametrize(
    ("row", "token", "tiny", "fast"),
    [
        (1, 10, 3e-6, True),  # allowed by both: within 2**27 of the finite logits
        (1, 10, -4e-7, True),
        (1, 10, 1e-9, False),  # beyond 2**27 of them: the TwoSum method
        (2, 5, 3e-6, False),  # b_i where P bans the token: beyond 2**27 of the floors
        (2, 5, 0.25, True),
    ],
)
def test_masked_float32_block_with_a_tiny_logit(monkeypatch, row, token, tiny, fast):
    """A float32 block with −inf masks keeps the fast method when a logit is tiny next to
    the floors (max − 750) but within 2**27 of the logits it is differenced with
    (_token_kl._exact_beside_floors); otherwise the TwoSum method. Exact either way."""
    a, b = _near_rows(4, 2000, 8)
    a[:, -200:] = b[:, -200:] = -INF  # a padded vocabulary
    a[:, 5::64] = -INF  # tokens the policy bans
    (b if token == 5 else a)[row, token] = tiny
    calls = []
    general = _token_kl._general_rows
    monkeypatch.setattr(_token_kl, "_general_rows", lambda *args: calls.append(1) or general(*args))
    values = token_kl(a, b)
    assert (not calls) == fast, f"TwoSum method used {len(calls)} times"
    check_rows(a, b, values)
