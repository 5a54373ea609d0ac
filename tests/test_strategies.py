"""The strategies draw what they promise: valid cases, exact reprs, every regime reached."""

from __future__ import annotations

import itertools
import math
import pickle
import re
import time

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from klspec.spec import _inputs, hazards
from klspec.spec.checks import CHECKS
from klspec.spec.special_cases import SPECIAL_CASES, Outcome
from klspec.spec.strategies import (
    Case,
    batched_pairs,
    build_case,
    clean_pairs,
    distributions,
    near_equal_pairs,
    pairs,
    pairs_q_zero_where_p_positive,
    pairs_with_zeros,
    triples,
)

EPS = np.finfo(np.float64).eps
SMALLEST_NORMAL = np.finfo(np.float64).smallest_normal
NAMESPACE = {"np": np, "Case": Case, "build_case": build_case}

# Health checks stay on: these settings only fix the seed and drop the database.
DRAWS = settings(max_examples=200, derandomize=True, database=None, deadline=None)
FEWER = settings(DRAWS, max_examples=100)
# Generation only, so find() returns the first hit instead of shrinking it.
SEARCH = settings(max_examples=3000, derandomize=True, database=None, phases=[Phase.generate])


# ----------------------------------------------------------------------- checkers


def assert_distributions(x: np.ndarray, name: str) -> None:
    """Each row of x is a valid distribution, stored as the strategies promise."""
    __tracebackhide__ = True
    assert x.dtype == np.float64, f"{name}.dtype={x.dtype}, but should be float64"
    assert not x.flags.writeable, f"{name} is writeable, but should be read-only"
    assert x.ndim >= 1, f"{name}.shape={x.shape} has no support axis"
    assert x.shape[-1] >= 1, f"{name}.shape={x.shape} has an empty support"
    assert np.isfinite(x).all(), f"{name} has non-finite entries: {x!r}"
    assert not np.signbit(x).any(), f"{name} has negative entries (or -0.0): {x!r}"
    n = x.shape[-1]
    for index, row in enumerate(x.reshape(-1, n)):
        assert row.max() > 0, f"{name} row {index} is all zero"
        total = math.fsum(row.tolist())
        assert abs(total - 1) <= 4 * n * EPS, f"{name} row {index} sums to {total!r}, not 1"


def assert_covers(small: np.ndarray, big: np.ndarray, names: str) -> None:
    """big > 0 wherever small > 0 (after broadcasting), so KL(small ‖ big) is finite."""
    __tracebackhide__ = True
    small, big = np.broadcast_arrays(small, big)
    bad = np.argwhere((small > 0) & (big == 0))
    assert bad.size == 0, f"{names}: zero where the first is positive at {bad[:3].tolist()}"


def assert_valid(case: Case, *, finite_kl: bool = True) -> None:
    __tracebackhide__ = True
    assert isinstance(case, Case)
    assert isinstance(case.regime, str)
    assert case.regime
    arrays = case.arrays
    for name, x in arrays.items():
        assert_distributions(x, name)
    if finite_kl:
        names = list(arrays)
        for first, second in itertools.pairwise(names):
            assert_covers(arrays[first], arrays[second], f"{second} vs {first}")


def assert_rebuilds(case: Case) -> None:
    """eval(repr(case)) gives the same names, shapes and bits."""
    __tracebackhide__ = True
    text = repr(case)
    rebuilt = eval(text, dict(NAMESPACE))
    assert list(rebuilt.arrays) == list(case.arrays), text
    for name, x in case.arrays.items():
        y = rebuilt.arrays[name]
        assert y.shape == x.shape, f"{name}: shape {y.shape} after eval(repr(case)): {text}"
        assert y.dtype == x.dtype, f"{name}: dtype {y.dtype} after eval(repr(case)): {text}"
        assert y.tobytes() == x.tobytes(), f"{name} differs after eval(repr(case)): {text}"
    assert rebuilt.regime == case.regime


def support_size(case: Case) -> int:
    return case.p.shape[-1]


def near_equal_exponent(case: Case) -> int | None:
    match = re.search(r"near_equal\(1e(-\d+)", case.regime)
    return int(match.group(1)) if match else None


def subnormal(x: np.ndarray) -> np.ndarray:
    return (x > 0) & (x < SMALLEST_NORMAL)


# ----------------------------------------------- (1, 2, 4, 5, 6) every drawn case

STRATEGIES = [
    # strategy, least and greatest support size it may draw
    (distributions(), 1, 10**5),
    (distributions(max_size=8), 1, 8),
    (pairs(), 1, 10**5),
    (pairs(max_size=64), 1, 64),
    (pairs(min_size=3, max_size=3), 3, 3),
    (pairs(min_size=2000, max_size=3000), 2000, 3000),
    (near_equal_pairs(), 1, 10**5),
    (pairs_with_zeros(max_size=40), 2, 40),
    (triples(), 1, 10**5),
    (batched_pairs(), 1, 16),
    (batched_pairs(min_size=2, max_size=5, broadcast=True), 2, 5),
    (clean_pairs(), 1, 32),
]


@pytest.mark.parametrize(("strategy", "least", "greatest"), STRATEGIES, ids=repr)
def test_drawn_cases_are_valid_rebuildable_and_within_size(strategy, least, greatest):
    @DRAWS
    @given(strategy)
    def check(case):
        assert_valid(case)
        assert_rebuilds(case)
        assert least <= support_size(case) <= greatest

    check()


@pytest.mark.parametrize("strategy", [pairs(), batched_pairs(broadcast=True)], ids=repr)
def test_no_health_check_fires_with_random_draws(strategy):
    # Not derandomized, health checks on: what a user's own test run sees.
    @settings(max_examples=200, database=None, deadline=None)
    @given(strategy)
    def check(case):
        pass

    check()


def test_pairs_with_zeros_always_has_a_zero_in_p():
    @FEWER
    @given(pairs_with_zeros())
    def check(case):
        assert (case.p == 0).any()

    check()


def test_q_zero_where_p_positive_always_has_infinite_kl():
    @FEWER
    @given(pairs_q_zero_where_p_positive())
    def check(case):
        assert_valid(case, finite_kl=False)
        assert_rebuilds(case)
        assert ((case.q == 0) & (case.p > 0)).any(), case

    check()


def test_triples_nest_their_supports():
    @FEWER
    @given(triples(max_size=40))
    def check(case):
        assert_covers(case.p, case.r, "r vs p")
        assert_covers(case.q, case.r, "r vs q")

    check()


def test_batched_pairs_shapes():
    seen_broadcast = []

    @FEWER
    @given(batched_pairs(broadcast=True))
    def check_broadcast(case):
        batch = np.broadcast_shapes(case.p.shape[:-1], case.q.shape[:-1])
        assert 1 <= len(batch) <= 3
        assert all(1 <= side <= 4 for side in batch)
        assert case.p.shape[-1] == case.q.shape[-1]
        seen_broadcast.append(case.p.shape != case.q.shape)

    @FEWER
    @given(batched_pairs())
    def check_same(case):
        assert case.p.shape == case.q.shape
        assert 2 <= case.p.ndim <= 4
        assert all(1 <= side <= 4 for side in case.p.shape[:-1])
        assert 1 <= case.p.shape[-1] <= 16

    check_broadcast()
    check_same()
    assert any(seen_broadcast)


def test_drawing_is_fast():
    start = time.perf_counter()

    # max_size=32: no seeded branch, so this times the element-wise draws alone.
    @settings(max_examples=100, derandomize=True, database=None, deadline=None)
    @given(pairs(max_size=32))
    def draw(case):
        pass

    draw()
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------- (3) each regime is reached

REACHED = {
    "near-equal pair with eps <= 1e-14": (
        pairs(),
        lambda c: (
            (near_equal_exponent(c) or 0) <= -14
            and support_size(c) >= 2
            and not np.array_equal(c.p, c.q)
            and np.abs(c.q[c.p > 0] / c.p[c.p > 0] - 1).max() <= 4e-14
        ),
    ),
    "subnormal entry in p": (pairs(), lambda c: subnormal(c.p).any()),
    "subnormal entry in q": (pairs(), lambda c: subnormal(c.q).any()),
    "subnormal entry in a distribution": (distributions(), lambda c: subnormal(c.p).any()),
    "dynamic range > 1e290": (
        pairs(),
        # In log space: max/min overflows for subnormal minima (numpy 1.26 warns).
        lambda c: np.log10(c.p.max()) - np.log10(c.p[c.p > 0].min()) > 290,
    ),
    "p_i == 0 with q_i > 0": (pairs(), lambda c: ((c.p == 0) & (c.q > 0)).any()),
    "p_i == q_i == 0": (pairs(), lambda c: ((c.p == 0) & (c.q == 0)).any()),
    "n >= 10**4": (pairs(), lambda c: support_size(c) >= 10**4),
    "one-hot p, n >= 2": (
        pairs(),
        lambda c: support_size(c) >= 2 and np.count_nonzero(c.p) == 1,
    ),
    "n == 1": (pairs(), lambda c: support_size(c) == 1),
    "uniform p == q, n >= 2": (
        pairs(),
        lambda c: support_size(c) >= 2 and (c.p == c.p[0]).all() and (c.q == c.p).all(),
    ),
    "identical p and q with zeros": (
        pairs(),
        lambda c: np.array_equal(c.p, c.q) and (c.p == 0).any(),
    ),
    "large near-equal": (
        near_equal_pairs(),
        lambda c: c.recipe is not None and (near_equal_exponent(c) or 0) <= -12,
    ),
    "large subnormal triple": (
        triples(),
        lambda c: c.recipe is not None and subnormal(c.r).any(),
    ),
    "disjoint supports": (
        pairs_q_zero_where_p_positive(),
        lambda c: not ((c.p > 0) & (c.q > 0)).any(),
    ),
    "batched rows of different regimes": (
        batched_pairs(),
        lambda c: c.regime.count(",") >= 1 and "zeros" in c.regime,
    ),
    "broadcast p of shape (n,) against a batched q": (
        batched_pairs(broadcast=True),
        lambda c: c.p.ndim == 1 and c.q.ndim >= 2,
    ),
}


@pytest.mark.parametrize("what", list(REACHED))
def test_regime_is_reached(what):
    strategy, predicate = REACHED[what]
    case = find(strategy, predicate, settings=SEARCH)
    assert_valid(case, finite_kl="disjoint" not in what)


FAMILIES = [
    "generic",
    "uniform",
    "identical",
    "one_hot",
    "size1",
    "zeros",
    "near_equal",
    "dynamic_range",
    "subnormal",
    "large",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_pairs_reaches_every_tagged_regime(family):
    find(pairs(), lambda c: c.regime.split("(")[0] == family, settings=SEARCH)


@pytest.mark.parametrize("exponent", range(-15, -1))
def test_near_equal_pairs_reaches_every_exponent(exponent):
    # A search per exponent, as for the regimes: 200 derandomized draws reach all 14 or
    # not depending on which constants hypothesis finds in the loaded modules.
    find(
        near_equal_pairs(max_size=8),
        lambda case: near_equal_exponent(case) == exponent,
        settings=SEARCH,
    )


def test_near_equal_exponent_bounds_are_respected():
    @FEWER
    @given(near_equal_pairs(max_size=16, min_exponent=-13, max_exponent=-11))
    def check(case):
        assert -13 <= near_equal_exponent(case) <= -11

    check()


def test_subnormals_survive_in_seeded_cases():
    case = build_case("subnormal", n=5000, seed=1)
    assert subnormal(case.p).any()
    assert (case.p == 5e-324).any()
    assert_valid(case)


# ------------------------------------------------------------------- Case itself


def test_case_copies_to_read_only_float64():
    source = np.array([0.25, 0.75], dtype=np.float32)
    listed = [0.5, 0.5]
    case = Case(p=source, q=listed)
    source[0] = 9.0
    listed[0] = 9.0
    assert case.p.dtype == np.float64
    assert case.p.tolist() == [0.25, 0.75]
    assert case.q.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="read-only"):
        case.p[0] = 1.0
    with pytest.raises(AttributeError, match="immutable"):
        case.p = np.ones(2)
    with pytest.raises(AttributeError, match="no array 'r'; it holds p, q"):
        _ = case.r
    arrays = case.arrays
    arrays["r"] = np.ones(2)
    assert list(case.arrays) == ["p", "q"]
    assert case.regime == "given"
    assert case.recipe is None


def test_case_repr_matches_the_documented_form():
    assert repr(Case(p=[0.7, 0.3], q=[0.5, 0.5])) == (
        "Case(p=np.array([0.7, 0.3]), q=np.array([0.5, 0.5]))"
    )
    assert repr(build_case("near_equal", n=20000, seed=3, exponent=-12)) == (
        "build_case('near_equal', n=20000, seed=3, exponent=-12)"
    )


@pytest.mark.parametrize(
    "arrays",
    [
        {"p": [1.0, 5e-324, 1e-310, 2.225073858507201e-308]},
        {"p": [[0.1, 0.9], [1.0, 0.0]], "q": [[[0.2, 0.8]], [[0.3, 0.7]]]},
        {"p": [np.nextafter(1.0, 0.0), 0.1 + 0.2]},
        {"p": [np.inf, -np.inf, np.nan, -0.0]},
        {"p": np.zeros((0, 3)), "q": np.zeros((2, 0))},
        {"p": 0.5},
    ],
    ids=["subnormals", "nested", "last-bits", "non-finite", "empty", "0-d"],
)
def test_repr_rebuilds_bit_for_bit(arrays):
    case = Case(**arrays)
    rebuilt = eval(repr(case), dict(NAMESPACE))
    for name, x in case.arrays.items():
        assert rebuilt.arrays[name].shape == x.shape
        assert rebuilt.arrays[name].tobytes() == x.tobytes()


def test_case_pickles():
    case = build_case("zeros", n=50, seed=4, names="pqr")
    clone = pickle.loads(pickle.dumps(case))
    assert repr(clone) == repr(case)
    assert clone.regime == case.regime
    assert all(clone.arrays[k].tobytes() == v.tobytes() for k, v in case.arrays.items())
    assert not clone.p.flags.writeable


# -------------------------------------------------------------------- build_case

SEEDED = [
    ("generic", {}),
    ("uniform", {}),
    ("identical", {"base": "subnormal"}),
    ("one_hot", {}),
    ("zeros", {}),
    ("near_equal", {"exponent": -15}),
    ("dynamic_range", {}),
    ("subnormal", {}),
]


SEEDED_CALLS = [
    (regime, params, names)
    for regime, params in SEEDED
    for names in ("p", "pq", "pqr")
    if not (names == "p" and regime in ("identical", "near_equal"))  # these need two arrays
]


@pytest.mark.parametrize(("regime", "params", "names"), SEEDED_CALLS)
def test_build_case_is_valid_and_reproducible(regime, params, names):
    case = build_case(regime, n=3000, seed=11, names=names, **params)
    assert list(case.arrays) == list(names)
    assert case.regime.startswith("large(n=3000, ")
    assert_valid(case)
    assert_rebuilds(case)


def test_build_case_q_zero():
    case = build_case("q_zero", n=2, seed=0)
    assert_valid(case, finite_kl=False)
    assert ((case.q == 0) & (case.p > 0)).any()


def test_build_case_accepts_numpy_integers():
    case = build_case("near_equal", n=np.int64(7), seed=np.uint32(3), exponent=np.int8(-9))
    assert repr(case) == "build_case('near_equal', n=7, seed=3, exponent=-9)"
    assert_rebuilds(case)


def test_build_case_depends_on_seed():
    assert not np.array_equal(
        build_case("generic", n=10, seed=1).p, build_case("generic", n=10, seed=2).p
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"regime": "nope", "n": 5, "seed": 0}, ValueError, "regime='nope' is unknown"),
        ({"regime": "zeros", "n": 1, "seed": 0}, ValueError, "n=1 must be >= 2"),
        ({"regime": "generic", "n": 5.0, "seed": 0}, TypeError, "n=5.0 must be an int"),
        ({"regime": "generic", "n": 5, "seed": -1}, ValueError, "seed=-1"),
        ({"regime": "near_equal", "n": 5, "seed": 0, "names": "p"}, ValueError, "2 to 26"),
        ({"regime": "q_zero", "n": 5, "seed": 0, "names": "pqr"}, ValueError, "2 to 2"),
        ({"regime": "generic", "n": 5, "seed": 0, "exponent": -3}, TypeError, "'exponent'"),
        ({"regime": "near_equal", "n": 5, "seed": 0, "exponent": -20}, ValueError, "-15..-2"),
        ({"regime": "generic", "n": 5, "seed": 0, "names": "pp"}, ValueError, "distinct"),
    ],
)
def test_build_case_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        build_case(**kwargs)


# ------------------------------------------------------------- strategy arguments


def test_strategies_have_readable_reprs():
    assert repr(pairs()) == "pairs()"
    assert repr(pairs(max_size=64)) == "pairs(max_size=64)"
    assert repr(batched_pairs(broadcast=True)) == "batched_pairs(broadcast=True)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: pairs(min_size=0),
        lambda: pairs(min_size=5, max_size=4),
        lambda: pairs(max_size=2.5),
        lambda: pairs_with_zeros(max_size=1),
        lambda: pairs_q_zero_where_p_positive(max_size=1),
        lambda: near_equal_pairs(min_exponent=-16),
        lambda: near_equal_pairs(min_exponent=-3, max_exponent=-4),
        lambda: batched_pairs(max_size=100),
    ],
)
def test_bad_strategy_arguments_fail_at_call_time(make):
    with pytest.raises(InvalidArgument):
        make()


# ---------------------------------------------------- the checkers can fail at all


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (Case(p=[0.5, 0.5], q=[1.0, 0.0]), "zero where the first is positive"),
        (Case(p=[0.5, 0.6]), "sums to"),
        (Case(p=[0.0, 0.0]), "all zero"),
        (Case(p=[1.5, -0.5]), "negative"),
        (Case(p=[1.0, -0.0]), "negative"),
        (Case(p=[np.nan, 1.0]), "non-finite"),
    ],
)
def test_checker_rejects_broken_cases(case, message):
    with pytest.raises(AssertionError, match=message):
        assert_valid(case)


def test_rebuild_checker_rejects_a_lossy_repr():
    class Lossy(Case):
        __slots__ = ()

        def __repr__(self):
            return "Case(p=np.array([0.3]))"

    with pytest.raises(AssertionError, match="differs"):
        assert_rebuilds(Lossy(p=[0.30000000000000004]))


def test_data_draws_can_be_labelled():
    @FEWER
    @given(st.data())
    def check(data):
        case = data.draw(pairs(max_size=4), label="case")
        assert_valid(case)

    check()


# ------------------------------------------------ one condition per special-case check

OUTCOME_ROWS = [row for row in SPECIAL_CASES if isinstance(row.condition, Outcome)]


@pytest.mark.parametrize("row", OUTCOME_ROWS, ids=lambda row: row.id)
def test_special_case_inputs_hold_exactly_their_own_hazard(row):
    """A check named for one condition draws inputs where that is the only hazard."""
    (check,) = [k for k in CHECKS if k.name == row.id]
    assert check.hazard == row.condition.hazard

    @DRAWS
    @given(_inputs.with_outcome(row.condition)())
    def holds(case):
        assert_valid(case, finite_kl=row.condition.hazard != "q_zero")
        assert hazards.present(case.arrays) == {row.condition.hazard}, case

    holds()


@DRAWS
@given(clean_pairs())
def test_clean_pairs_hold_no_hazard(case):
    assert hazards.present(case.arrays) == frozenset(), case
    assert min(case.p.min(), case.q.min()) >= 1e-3 / 32


@pytest.mark.parametrize("key", list(hazards.HAZARDS))
def test_each_hazard_is_found_and_removed(key):
    """Every hazard is seen where it is planted, and gone (with nothing new) once removed."""
    plant = {
        "p_zero": ([0.0, 0.5, 0.5], [0.2, 0.4, 0.4]),
        "q_zero": ([0.2, 0.4, 0.4], [0.0, 0.5, 0.5]),
        "both_zero": ([0.0, 0.5, 0.5], [0.0, 0.5, 0.5]),
        "subnormal": ([0.5, 0.5, 1e-310], [0.4, 0.6, 0.0 + 5e-324]),
        "tiny": ([0.5, 0.5 - 1e-9, 1e-9], [0.4, 0.6 - 1e-12, 1e-12]),
    }[key]
    arrays = {"p": np.array(plant[0]), "q": np.array(plant[1])}
    assert hazards.present(arrays) == {key}
    cleaned = hazards.without(arrays, {key})
    assert hazards.present(cleaned) == frozenset()
    assert cleaned["p"].size == 2
    for x in cleaned.values():
        assert abs(math.fsum(x) - 1) <= 2 * EPS


def test_removing_the_only_outcomes_gives_none():
    arrays = {"p": np.array([0.0, 1.0]), "q": np.array([0.0, 1e-310])}
    assert hazards.without(arrays, {"subnormal"}) is None
