"""Input validation of entropy, cross_entropy and kl_divergence (klspec.reference.validation).

Each rule of the module docstring is tested through the public functions and through
``validate_distributions`` directly: the exception type, that the message names the
argument (p or q) and the exact position in the caller's coordinates.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from klspec.reference import cross_entropy, entropy, kl_divergence, validation
from klspec.reference.validation import (
    SUM_TOLERANCES,
    sum_tolerance,
    validate_base,
    validate_distributions,
)

pytestmark = pytest.mark.filterwarnings("error")

UNIFORM2 = [0.5, 0.5]


def exactly(message: str) -> str:
    """A pytest.raises(match=...) pattern that accepts only this exact message."""
    return f"^{re.escape(message)}$"


PUBLIC = {"entropy": entropy, "kl_divergence": kl_divergence, "cross_entropy": cross_entropy}


def call_with(name: str, public: str, bad, other=UNIFORM2, **kwargs):
    """Call a public function with ``bad`` as argument ``name`` and ``other`` as the rest."""
    if public == "entropy":
        return entropy(bad, **kwargs)
    p, q = (bad, other) if name == "p" else (other, bad)
    return PUBLIC[public](p, q, **kwargs)


# Which argument of which public function receives the bad input.
TARGETS = [
    pytest.param("p", "entropy", id="entropy(p=bad)"),
    pytest.param("p", "kl_divergence", id="kl_divergence(p=bad, q)"),
    pytest.param("q", "kl_divergence", id="kl_divergence(p, q=bad)"),
    pytest.param("q", "cross_entropy", id="cross_entropy(p, q=bad)"),
]


# ---------------------------------------------------------------- rule 1: type

OBJECT_DTYPE = (
    "{name} has dtype object (it holds something that is not a plain number, e.g. None); "
    "probabilities must be real numbers"
)
TYPE_ERRORS = [
    pytest.param("ab", "{name} has dtype <U2 (text); probabilities must be real numbers", id="str"),
    pytest.param(
        ["0.5", "0.5"],
        "{name} has dtype <U3 (text); probabilities must be real numbers",
        id="list of str",
    ),
    pytest.param(
        b"ab", "{name} has dtype |S2 (bytes); probabilities must be real numbers", id="bytes"
    ),
    pytest.param([1, None], OBJECT_DTYPE, id="[1, None] -> object dtype"),
    pytest.param(np.array([0.5, 0.5], dtype=object), OBJECT_DTYPE, id="object array"),
    pytest.param([0, 2**70], OBJECT_DTYPE, id="int beyond int64 -> object dtype"),
    pytest.param(
        np.array([0.5 + 0j, 0.5]),
        "{name} has dtype complex128; probabilities must be real numbers",
        id="complex128",
    ),
    pytest.param(
        np.array([True, False]),
        "{name} has dtype bool (a boolean mask?); probabilities must be real numbers",
        id="bool mask",
    ),
    pytest.param(
        np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"),
        "{name} has dtype datetime64[D] (datetimes); probabilities must be real numbers",
        id="datetime64",
    ),
    pytest.param(
        np.array([1, 2], dtype="timedelta64[s]"),
        "{name} has dtype timedelta64[s] (timedeltas); probabilities must be real numbers",
        id="timedelta64",
    ),
    pytest.param(
        None,
        "{name} has type NoneType; probabilities must be an array of real numbers",
        id="None",
    ),
]


@pytest.mark.parametrize(("name", "public"), TARGETS)
@pytest.mark.parametrize(("bad", "message"), TYPE_ERRORS)
def test_non_numeric_input_is_a_type_error(name, public, bad, message):
    with pytest.raises(TypeError, match=exactly(message.format(name=name))):
        call_with(name, public, bad)


class ArrayLikeTensor:
    """Stands in for a CPU torch tensor: exposes only __array__."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._values, dtype=dtype)


ACCEPTED = [
    pytest.param([0.25, 0.75], id="list"),
    pytest.param((0.25, 0.75), id="tuple"),
    pytest.param(ArrayLikeTensor([0.25, 0.75]), id="__array__ object"),
    *(
        pytest.param(np.array([0.25, 0.75], dtype=dt), id=f"{np.dtype(dt)}")
        for dt in (np.float16, np.float32, np.float64, np.longdouble)
    ),
    *(
        pytest.param(np.array([0, 1], dtype=dt), id=f"{np.dtype(dt)} one-hot")
        for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64)
    ),
    pytest.param([0, 1], id="list of int one-hot"),
]


@pytest.mark.parametrize("p", ACCEPTED)
def test_integer_float_list_and_array_like_inputs_are_accepted(p):
    (out,), batch = validate_distributions({"p": p}, axis=-1)
    assert out.dtype == np.float64
    assert batch == ()
    np.testing.assert_array_equal(out, np.asarray(p, dtype=np.float64))
    assert np.isfinite(entropy(p))
    assert kl_divergence(p, p) == 0.0


# ---------------------------------------------------------------- rule 2: ragged


@pytest.mark.parametrize(
    "ragged",
    [[[0.5, 0.5], [1.0]], [1.0, [0.5, 0.5]], [[[0.5, 0.5]], [[1.0]]]],
    ids=["rows of length 2 and 1", "number next to a list", "ragged at depth 3"],
)
@pytest.mark.parametrize(("name", "public"), TARGETS)
def test_ragged_nested_sequence_is_a_value_error(name, public, ragged):
    message = f"{name} is a ragged nested sequence: every row must have the same length"
    with pytest.raises(ValueError, match=exactly(message)) as info:
        call_with(name, public, ragged)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__, "numpy's own error must not be chained"


# ---------------------------------------------------------------- rule 3: 0-d


@pytest.mark.parametrize(
    "scalar",
    [0.5, 1, np.float64(1.0), np.array(1.0)],
    ids=["float 0.5", "int 1", "np.float64(1.0)", "np.array(1.0)"],
)
@pytest.mark.parametrize(("name", "public"), TARGETS)
def test_zero_dimensional_input_is_a_value_error(name, public, scalar):
    message = f"{name} is 0-d (a single number); a distribution needs an axis of outcomes"
    with pytest.raises(ValueError, match=exactly(message)):
        call_with(name, public, scalar)


# ---------------------------------------------------------------- rule 4: axis


@pytest.mark.parametrize(
    "axis", [1.5, None, "0", True, np.float64(0.0), [0]], ids=lambda a: f"axis={a!r}"
)
def test_non_integer_axis_is_a_type_error(axis):
    with pytest.raises(TypeError, match=exactly(f"axis must be an int, got {axis!r}")):
        kl_divergence(UNIFORM2, UNIFORM2, axis=axis)


@pytest.mark.parametrize("axis", [np.int64(0), np.intp(-1), 0, -1], ids=lambda a: f"axis={a!r}")
def test_integer_like_axis_is_accepted(axis):
    assert kl_divergence(UNIFORM2, UNIFORM2, axis=axis) == 0.0


@pytest.mark.parametrize(
    ("p", "q", "axis", "message"),
    [
        ([[0.5, 0.5]], [[0.5, 0.5]], 2, "axis=2 is out of range for p with 2 dimensions"),
        ([[0.5, 0.5]], [[0.5, 0.5]], -3, "axis=-3 is out of range for p with 2 dimensions"),
        (UNIFORM2, UNIFORM2, 1, "axis=1 is out of range for p with 1 dimension"),
        ([[0.5], [0.5]], UNIFORM2, 0, None),  # in range for both: fine
        ([[0.5, 0.5]], UNIFORM2, 1, "axis=1 is out of range for q with 1 dimension"),
    ],
    ids=[
        "axis=2 on 2-D p",
        "axis=-3 on 2-D p",
        "axis=1 on 1-D p",
        "axis=0 on 2-D p and 1-D q",
        "axis=1 on 2-D p and 1-D q",
    ],
)
def test_axis_out_of_range_names_the_argument(p, q, axis, message):
    if message is None:
        kl_divergence(p, q, axis=axis)
        return
    with pytest.raises(ValueError, match=exactly(message)):
        kl_divergence(p, q, axis=axis)


# ---------------------------------------------------------------- rule 5: empty support


@pytest.mark.parametrize(
    ("p", "axis"),
    [([], -1), (np.zeros(0), 0), (np.zeros((3, 0)), -1), (np.zeros((0, 3)), 0)],
    ids=["[] axis=-1", "zeros(0) axis=0", "zeros((3, 0)) axis=-1", "zeros((0, 3)) axis=0"],
)
def test_empty_support_is_a_value_error(p, axis):
    message = f"p has an empty support: axis {axis} has length 0"
    with pytest.raises(ValueError, match=exactly(message)):
        entropy(p, axis=axis)
    with pytest.raises(ValueError, match=exactly(message.replace("p has", "q has"))):
        kl_divergence(UNIFORM2, p, axis=axis)


def test_empty_batch_with_non_empty_support_is_accepted():
    (p,), batch = validate_distributions({"p": np.zeros((0, 3))}, axis=-1)
    assert p.shape == (0, 3)
    assert batch == (0,)


# ---------------------------------------------------------------- rule 6: entries


def with_entries(shape, entries, fill=None, dtype=np.float64):
    """An array of ``shape`` (uniform along the last axis unless ``fill``) with entries set."""
    a = np.full(shape, 1.0 / shape[-1] if fill is None else fill, dtype=dtype)
    for index, value in entries.items():
        a[index] = value
    return a


NAN, INF = math.nan, math.inf

ENTRY_CASES = [
    pytest.param(
        [0.5, NAN, 0.5],
        -1,
        "{name}[1] is NaN; probabilities must be finite numbers",
        id="1-D NaN -> p[1] is NaN",
    ),
    pytest.param(
        [0.5, INF],
        -1,
        "{name}[1] is inf; probabilities must be finite numbers",
        id="1-D inf -> p[1] is inf",
    ),
    pytest.param(
        [-INF, 1.0],
        -1,
        "{name}[0] is -inf; probabilities must be finite numbers",
        id="1-D -inf -> p[0] is -inf (not negative)",
    ),
    pytest.param(
        [0.5, -0.001, 0.501],
        -1,
        "{name}[1] is negative (-0.001); probabilities must be >= 0",
        id="1-D negative -> p[1] is negative",
    ),
    pytest.param(
        with_entries((4, 20), {(3, 17): -0.001}),
        -1,
        "{name}[3, 17] is negative (-0.001); probabilities must be >= 0",
        id="2-D negative -> p[3, 17]",
    ),
    pytest.param(
        with_entries((2, 3), {(0, 2): INF}),
        -1,
        "{name}[0, 2] is inf; probabilities must be finite numbers",
        id="2-D inf -> p[0, 2]",
    ),
    pytest.param(
        with_entries((3, 2), {(2, 1): NAN}, fill=1 / 3),
        0,
        "{name}[2, 1] is NaN; probabilities must be finite numbers",
        id="axis=0 NaN -> p[2, 1] in the caller's coordinates",
    ),
    pytest.param(
        with_entries((2, 2), {(0, 1): NAN, (1, 0): NAN}, fill=0.5),
        0,
        "{name}[0, 1] is NaN (and 1 more); probabilities must be finite numbers",
        id="axis=0 first in C order of the caller's array -> p[0, 1]",
    ),
    pytest.param(
        with_entries((2, 3, 2), {(1, 2, 0): -2.0}, fill=1 / 3),
        1,
        "{name}[1, 2, 0] is negative (-2.0); probabilities must be >= 0",
        id="3-D axis=1 negative -> p[1, 2, 0]",
    ),
    pytest.param(
        [INF, NAN],
        -1,
        "{name}[1] is NaN; probabilities must be finite numbers",
        id="NaN is reported before an earlier inf",
    ),
    pytest.param(
        [-0.5, INF, 0.5],
        -1,
        "{name}[1] is inf; probabilities must be finite numbers",
        id="inf is reported before an earlier negative",
    ),
    pytest.param(
        [INF, -INF],
        -1,
        "{name}[0] is inf (and 1 more); probabilities must be finite numbers",
        id="inf and -inf count together (and 1 more)",
    ),
    pytest.param(
        [NAN, 0.5, NAN, NAN, 0.5, NAN, NAN],
        -1,
        "{name}[0] is NaN (and 4 more); probabilities must be finite numbers",
        id="five NaN -> (and 4 more)",
    ),
    pytest.param(
        with_entries((3, 4), {(1, 2): -1e-3, (1, 3): -1.0, (2, 0): -5.0}),
        -1,
        "{name}[1, 2] is negative (-0.001) (and 2 more); probabilities must be >= 0",
        id="three negatives -> (and 2 more)",
    ),
    pytest.param(
        np.array([2, -1]),
        -1,
        "{name}[1] is negative (-1); probabilities must be >= 0",
        id="int64 negative -> p[1] is negative (-1)",
    ),
    pytest.param(
        np.array([0.5, -0.001, 0.501], dtype=np.float32),
        -1,
        "{name}[1] is negative (-0.001); probabilities must be >= 0",
        id="float32 negative prints as -0.001",
    ),
    pytest.param(
        np.array([NAN, 1.0], dtype=np.float16),
        -1,
        "{name}[0] is NaN; probabilities must be finite numbers",
        id="float16 NaN -> p[0]",
    ),
    pytest.param(
        [-5e-324, 1.0],
        -1,
        "{name}[0] is negative (-5e-324); probabilities must be >= 0",
        id="negative subnormal is negative",
    ),
]


@pytest.mark.parametrize(("name", "public"), TARGETS)
@pytest.mark.parametrize(("bad", "axis", "message"), ENTRY_CASES)
def test_bad_entry_names_argument_and_first_position(name, public, bad, axis, message):
    other = np.full(np.shape(bad), 1.0 / np.shape(bad)[axis])
    with pytest.raises(ValueError, match=exactly(message.format(name=name))):
        call_with(name, public, bad, other, axis=axis)


def test_negative_zero_is_accepted():
    assert entropy([-0.0, 1.0]) == 0.0


def test_first_bad_entry_of_a_large_array_is_found():
    p = np.full((1000, 1000), 1e-3)
    p[999, 998] = NAN
    p[500, 3] = -1.0
    with pytest.raises(
        ValueError, match=exactly("p[999, 998] is NaN; probabilities must be finite numbers")
    ):
        entropy(p)


# ---------------------------------------------------------------- rule 7: sums

SUM_CASES = [
    pytest.param(
        [0.5, 0.8],
        -1,
        "{name} sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance 1.5e-08); "
        "pass a normalised distribution, e.g. {name} / {name}.sum(axis=-1, keepdims=True)",
        id="1-D -> p sums to 1.3",
    ),
    pytest.param(
        [[0.5, 0.5], [0.5, 0.5], [0.5, 0.8]],
        -1,
        "{name}[2, :] sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance "
        "1.5e-08); pass a normalised distribution, e.g. {name} / {name}.sum(axis=-1, "
        "keepdims=True)",
        id="2-D -> p[2, :] sums to 1.3",
    ),
    pytest.param(
        [[0.5, 0.5], [0.5, 0.8]],
        0,
        "{name}[:, 1] sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance "
        "1.5e-08); pass a normalised distribution, e.g. {name} / {name}.sum(axis=0, "
        "keepdims=True)",
        id="axis=0 -> p[:, 1] sums to 1.3",
    ),
    pytest.param(
        with_entries((2, 3, 2), {(1, 0, 0): 0.5, (1, 1, 0): 0.5, (1, 2, 0): 0.3}, fill=1 / 3),
        1,
        "{name}[1, :, 0] sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance "
        "1.5e-08); pass a normalised distribution, e.g. {name} / {name}.sum(axis=1, "
        "keepdims=True)",
        id="3-D axis=1 -> p[1, :, 0]",
    ),
    pytest.param(
        [[0.5, 0.8], [0.5, 0.5], [0.1, 0.1], [2.0, 0.0]],
        -1,
        "{name}[0, :] sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance "
        "1.5e-08), and 2 more rows are off; pass a normalised distribution, e.g. "
        "{name} / {name}.sum(axis=-1, keepdims=True)",
        id="three bad rows -> and 2 more rows are off",
    ),
    pytest.param(
        [[0.5, 0.8], [0.1, 0.1]],
        -1,
        "{name}[0, :] sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance "
        "1.5e-08), and 1 more row is off; pass a normalised distribution, e.g. "
        "{name} / {name}.sum(axis=-1, keepdims=True)",
        id="two bad rows -> and 1 more row is off",
    ),
    pytest.param(
        [0.5, 0.5000001],
        -1,
        "{name} sums to 1.0000001, off from 1 by 1e-07 (more than the float64 tolerance "
        "1.5e-08); pass a normalised distribution, e.g. {name} / {name}.sum(axis=-1, "
        "keepdims=True)",
        id="1.0000001 does not print as 1",
    ),
    pytest.param(
        [0.5, 0.49999],
        -1,
        "{name} sums to 0.99999, off from 1 by 1e-05 (more than the float64 tolerance "
        "1.5e-08); pass a normalised distribution, e.g. {name} / {name}.sum(axis=-1, "
        "keepdims=True)",
        id="0.99999 does not print as 1",
    ),
    pytest.param(
        [0.0, 0.0],
        -1,
        "{name} sums to 0 (every entry is 0); a distribution needs positive mass",
        id="all zeros -> needs positive mass",
    ),
    pytest.param(
        [1e308, 1e308],
        -1,
        "{name} sums to inf, off from 1 by inf (more than the float64 tolerance 1.5e-08); "
        "pass a normalised distribution, e.g. {name} / {name}.sum(axis=-1, keepdims=True)",
        id="finite entries whose sum overflows -> sums to inf",
    ),
    pytest.param(
        np.array([np.longdouble("1e400"), 0.0], dtype=np.longdouble),
        -1,
        f"{{name}} sums to inf, off from 1 by inf (more than the {np.dtype(np.longdouble)} "
        "tolerance 1.5e-08); pass a normalised distribution, e.g. "
        "{name} / {name}.sum(axis=-1, keepdims=True)",
        id="longdouble beyond float64 -> sums to inf, no overflow warning",
        marks=pytest.mark.skipif(
            np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
            reason="longdouble is float64 on this platform",
        ),
    ),
    pytest.param(
        np.array([1, 1], dtype=np.int64),
        -1,
        "{name} sums to 2, off from 1 by 1 (more than the int64 tolerance 1.5e-08); "
        "pass a normalised distribution, e.g. {name} / {name}.sum(axis=-1, keepdims=True)",
        id="int64 counts -> sums to 2",
    ),
]


@pytest.mark.parametrize(("name", "public"), TARGETS)
@pytest.mark.parametrize(("bad", "axis", "message"), SUM_CASES)
def test_unnormalised_row_names_argument_row_and_tolerance(name, public, bad, axis, message):
    other = np.full(np.shape(bad), 1.0 / np.shape(bad)[axis])
    with pytest.raises(ValueError, match=exactly(message.format(name=name))):
        call_with(name, public, bad, other, axis=axis)


@pytest.mark.parametrize(
    ("dtype", "off", "passes", "tolerance_text"),
    [
        pytest.param(np.float64, 1e-9, True, "float64 tolerance 1.5e-08", id="float64 off 1e-9 ok"),
        pytest.param(np.float64, 1e-7, False, "float64 tolerance 1.5e-08", id="float64 off 1e-7"),
        pytest.param(np.float32, 1e-5, True, "float32 tolerance 0.00035", id="float32 off 1e-5 ok"),
        pytest.param(np.float32, 1e-3, False, "float32 tolerance 0.00035", id="float32 off 1e-3"),
        pytest.param(np.float16, 1e-2, True, "float16 tolerance 0.031", id="float16 off 1e-2 ok"),
        pytest.param(np.float16, 1e-1, False, "float16 tolerance 0.031", id="float16 off 1e-1"),
    ],
)
def test_sum_tolerance_follows_the_input_dtype(dtype, off, passes, tolerance_text):
    p = np.array([0.5, 0.5 + off], dtype=dtype)
    if passes:
        validate_distributions({"p": p}, axis=-1)
        assert math.isfinite(entropy(p))
        return
    with pytest.raises(ValueError, match=re.escape(tolerance_text)):
        entropy(p)
    with pytest.raises(ValueError, match=f"^q sums to .*{re.escape(tolerance_text)}"):
        kl_divergence(UNIFORM2, p)


def test_integer_one_hot_rows_are_accepted():
    one_hot = np.eye(4, dtype=np.int64)
    (out,), batch = validate_distributions({"p": one_hot}, axis=-1)
    assert batch == (4,)
    np.testing.assert_array_equal(out, np.eye(4))
    np.testing.assert_array_equal(entropy(one_hot), np.zeros(4))


# ---------------------------------------------------------------- rule 8: across arguments


@pytest.mark.parametrize(
    ("p", "q", "axis", "message"),
    [
        pytest.param(
            UNIFORM2,
            [0.2, 0.3, 0.5],
            -1,
            "p and q have different support sizes along axis -1: 2 vs 3",
            id="support 2 vs 3",
        ),
        pytest.param(
            np.ones((3, 1)),
            np.full((3, 4), 0.25),
            -1,
            "p and q have different support sizes along axis -1: 1 vs 4",
            id="support 1 vs 4 does not broadcast",
        ),
        pytest.param(
            np.full((3, 2), 1 / 3),
            np.full((4, 2), 0.25),
            0,
            "p and q have different support sizes along axis 0: 3 vs 4",
            id="support along axis=0",
        ),
        pytest.param(
            np.full((3, 2), 0.5),
            np.full((4, 2), 0.5),
            -1,
            "the batch shapes of p (3,) and q (4,) do not broadcast",
            id="batch (3,) vs (4,)",
        ),
        pytest.param(
            np.full((2, 3, 2), 0.5),
            np.full((4, 2), 0.5),
            -1,
            "the batch shapes of p (2, 3) and q (4,) do not broadcast",
            id="batch (2, 3) vs (4,)",
        ),
    ],
)
def test_arguments_must_agree(p, q, axis, message):
    with pytest.raises(ValueError, match=exactly(message)) as info:
        kl_divergence(p, q, axis=axis)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("p_shape", "q_shape", "axis", "batch"),
    [
        ((3, 1, 2), (4, 2), -1, (3, 4)),
        ((2,), (5, 2), -1, (5,)),
        ((2, 5), (2,), 0, (5,)),
        ((2, 3, 4), (1, 3, 4), 1, (2, 4)),
    ],
    ids=lambda v: str(v),
)
def test_batch_axes_broadcast_and_support_moves_last(p_shape, q_shape, axis, batch):
    p = np.full(p_shape, 1.0 / p_shape[axis])
    q = np.full(q_shape, 1.0 / q_shape[axis])
    (p_out, q_out), batch_out = validate_distributions({"p": p, "q": q}, axis=axis)
    assert batch_out == batch
    assert p_out.shape == q_out.shape == (*batch, p_shape[axis])
    assert p_out.dtype == q_out.dtype == np.float64
    assert np.shape(kl_divergence(p, q, axis=axis)) == batch


def test_values_are_moved_not_reordered():
    rng = np.random.default_rng(0)
    p = rng.random((2, 3, 4))
    p /= p.sum(axis=1, keepdims=True)
    (out,), batch = validate_distributions({"p": p}, axis=1)
    assert batch == (2, 4)
    np.testing.assert_array_equal(out, np.moveaxis(p, 1, -1))


def test_at_least_one_distribution_is_required():
    with pytest.raises(ValueError, match="at least one"):
        validate_distributions({}, axis=-1)


# ---------------------------------------------------------------- caller's arrays


CALLER_INPUTS = [
    pytest.param(lambda: np.array([[0.25, 0.75], [0.5, 0.5]]), id="float64"),
    pytest.param(lambda: np.asfortranarray([[0.25, 0.75], [0.5, 0.5]]), id="float64 F-order"),
    pytest.param(lambda: np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32), id="float32"),
    pytest.param(lambda: np.array([[0, 1], [1, 0]]), id="int64"),
    pytest.param(lambda: np.array([[0.25, NAN], [0.5, 0.5]]), id="float64 with NaN (raises)"),
    pytest.param(lambda: np.array([[0.25, 0.5], [0.5, 0.5]]), id="float64 unnormalised (raises)"),
]


@pytest.mark.parametrize("make", CALLER_INPUTS)
def test_callers_arrays_are_unchanged_and_not_returned(make):
    p, q = make(), make()
    p_before, q_before = p.copy(), q.copy()
    calls = [
        lambda: validate_distributions({"p": p, "q": q}, axis=-1),
        lambda: validate_distributions({"p": p, "q": q}, axis=0),
        lambda: entropy(p),
        lambda: kl_divergence(p, q),
        lambda: cross_entropy(p, q, axis=0),
    ]
    for call in calls:
        try:
            result = call()
        except ValueError:
            result = None
        for mine, before in ((p, p_before), (q, q_before)):
            assert mine.dtype == before.dtype
            assert mine.tobytes() == before.tobytes(), "the caller's array was modified"
        if isinstance(result, tuple):
            for out in result[0]:
                assert out is not p
                assert out is not q
                shared = np.shares_memory(out, p) or np.shares_memory(out, q)
                assert not (shared and out.flags.writeable), "a writeable view of caller data"


def test_list_input_is_not_modified():
    p = [[0.25, 0.75], [0.5, 0.5]]
    validate_distributions({"p": p}, axis=-1)
    assert p == [[0.25, 0.75], [0.5, 0.5]]


# ---------------------------------------------------------------- rule 9: base


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (None, None),
        (2, math.log(2)),
        (2.0, math.log(2)),
        (np.float32(2.0), math.log(2)),
        (np.int64(10), math.log(10)),
        (math.e, 1.0),
        (0.5, math.log(0.5)),
        (10**300, math.log(1e300)),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_valid_base_returns_its_log(base, expected):
    assert validate_base(base) == expected


@pytest.mark.parametrize(
    "base", [True, False, np.bool_(True), "2", 2j, [2]], ids=lambda v: f"base={v!r}"
)
def test_non_real_base_is_a_type_error(base):
    with pytest.raises(TypeError, match=r"^base must be a real number"):
        validate_base(base)
    with pytest.raises(TypeError, match=r"^base must be a real number"):
        entropy(UNIFORM2, base=base)


@pytest.mark.parametrize(
    "base",
    [1, 1.0, np.float64(1.0), 0, 0.0, -2, math.inf, -math.inf, math.nan, 10**400],
    ids=lambda v: f"base={str(v)[:10]}",
)
def test_invalid_base_is_a_value_error(base):
    message = (
        f"base={base} is not a valid logarithm base; "
        "use a finite base > 0 and != 1 (None for nats, 2 for bits)"
    )
    with pytest.raises(ValueError, match=exactly(message)):
        validate_base(base)
    with pytest.raises(ValueError, match=exactly(message)):
        kl_divergence(UNIFORM2, UNIFORM2, base=base)


def test_base_two_gives_bits():
    assert entropy(UNIFORM2, base=2) == pytest.approx(1.0, rel=1e-15)


# ---------------------------------------------------------------- rule 10: sum_tolerance


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float16, 2.0**-5),
        ("float32", math.sqrt(2.0**-23)),
        (np.dtype("f8"), 2.0**-26),
        (np.int8, 2.0**-26),
        (np.uint64, 2.0**-26),
        (np.longdouble, 2.0**-26),
    ],
    ids=lambda v: str(v),
)
def test_sum_tolerance_values(dtype, expected):
    assert sum_tolerance(dtype) == expected


@pytest.mark.parametrize("dtype", [np.complex128, np.bool_, object, "U3"], ids=str)
def test_sum_tolerance_refuses_non_numeric_dtypes(dtype):
    with pytest.raises(TypeError, match="sum_tolerance needs an integer or float dtype"):
        sum_tolerance(dtype)


def test_documented_tolerance_table_matches_the_code():
    rows = {line.split()[0]: line for line in sum_tolerance.__doc__.splitlines() if line.strip()}
    assert set(SUM_TOLERANCES) == {"float16", "float32", "float64", "integer", "longdouble"}
    for dtype_name, value in SUM_TOLERANCES.items():
        assert f"{value:.4e}" in rows[dtype_name], f"docs row for {dtype_name} is stale"
        if dtype_name != "integer":
            assert value == sum_tolerance(np.dtype(dtype_name))


def test_documented_messages_are_the_real_messages():
    """Each example message quoted in the module docstring is what the code raises."""
    docs = " ".join(validation.__doc__.split())
    examples = [
        (
            lambda: entropy(np.array([0.5 + 0j, 0.5])),
            TypeError,
            "p has dtype complex128; probabilities must be real numbers",
        ),
        (
            lambda: entropy([[0.5, 0.5], [1.0]]),
            ValueError,
            "p is a ragged nested sequence: every row must have the same length",
        ),
        (
            lambda: entropy(0.5),
            ValueError,
            "p is 0-d (a single number); a distribution needs an axis of outcomes",
        ),
        (lambda: entropy(UNIFORM2, axis=1.5), TypeError, "axis must be an int, got 1.5"),
        (
            lambda: entropy([UNIFORM2], axis=2),
            ValueError,
            "axis=2 is out of range for p with 2 dimensions",
        ),
        (lambda: entropy([]), ValueError, "p has an empty support: axis -1 has length 0"),
        (
            lambda: entropy([0.5, NAN, NAN, NAN, NAN, NAN]),
            ValueError,
            "p[1] is NaN (and 4 more); probabilities must be finite numbers",
        ),
        (
            lambda: entropy(with_entries((2, 3), {(0, 2): INF})),
            ValueError,
            "p[0, 2] is inf; probabilities must be finite numbers",
        ),
        (
            lambda: kl_divergence(np.full((4, 20), 0.05), with_entries((4, 20), {(3, 17): -1e-3})),
            ValueError,
            "q[3, 17] is negative (-0.001); probabilities must be >= 0",
        ),
        (
            lambda: entropy([UNIFORM2, UNIFORM2, [0.5, 0.8]]),
            ValueError,
            "p[2, :] sums to 1.3, off from 1 by 0.3 (more than the float64 tolerance 1.5e-08); "
            "pass a normalised distribution, e.g. p / p.sum(axis=-1, keepdims=True)",
        ),
        (
            lambda: kl_divergence([1 / 3] * 3, [0.25] * 4),
            ValueError,
            "p and q have different support sizes along axis -1: 3 vs 4",
        ),
        (
            lambda: kl_divergence([UNIFORM2] * 3, [UNIFORM2] * 4),
            ValueError,
            "the batch shapes of p (3,) and q (4,) do not broadcast",
        ),
        (
            lambda: entropy(UNIFORM2, base=1),
            ValueError,
            "base=1 is not a valid logarithm base; use a finite base > 0 and != 1 "
            "(None for nats, 2 for bits)",
        ),
    ]
    for call, error, message in examples:
        assert message in docs, f"module docstring no longer quotes {message!r}"
        with pytest.raises(error, match=exactly(message)):
            call()


# ---------------------------------------------------------------- property: random junk

JUNK = {
    "NaN": lambda dtype: np.nan,
    "inf": lambda dtype: np.inf,
    "-inf": lambda dtype: -np.inf,
    "small negative": lambda dtype: -1e-3,
    "large negative": lambda dtype: -5.0,
    "negative subnormal": lambda dtype: -np.finfo(dtype).smallest_subnormal,
}


def first_bad_entry(a: np.ndarray) -> tuple[tuple[int, ...], str]:
    """Independent oracle for rule 6: the first entry (C order) that is NaN, else inf or
    -inf, else < 0, and how the message must describe it."""
    for is_bad, describe in (
        (math.isnan, lambda v: "NaN"),
        (math.isinf, lambda v: "inf" if v > 0 else "-inf"),
        (lambda v: v < 0, lambda v: "negative ("),
    ):
        for index in np.ndindex(a.shape):
            value = float(a[index])
            if is_bad(value):
                return index, describe(value)
    raise AssertionError("the generator injected no junk")


def reports_first_bad_entry(call):
    """The property: junk injected into p or q raises ValueError naming its first position."""

    @given(data=st.data())
    def check(data):
        shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3), label="shape")
        shape = tuple(shape)
        axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
        dtype = data.draw(st.sampled_from([np.float64, np.float32, np.float16]), label="dtype")
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        target = data.draw(st.sampled_from(["p", "q"]), label="target")
        junk = data.draw(
            st.lists(
                st.tuples(st.integers(0, math.prod(shape) - 1), st.sampled_from(sorted(JUNK))),
                min_size=1,
                max_size=4,
            ),
            label="junk (flat position, kind)",
        )
        rng = np.random.default_rng(seed)
        args = {}
        for name in ("p", "q"):
            a = rng.random(shape) + 0.1
            args[name] = (a / a.sum(axis=axis, keepdims=True)).astype(dtype)
        bad = args[target]
        for position, kind in junk:
            bad.reshape(-1)[position] = JUNK[kind](dtype)

        index, problem = first_bad_entry(bad)
        expected = f"{target}[{', '.join(map(str, index))}] is {problem}"
        try:
            call(args["p"], args["q"], axis=axis)
        except ValueError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"no error, but should raise ValueError [{expected}...]")
        assert message.startswith(expected), (
            f"message={message!r}, but should start with {expected!r} "
            f"[kl_divergence(p, q, axis={axis})]"
        )

    return check


def test_random_junk_reports_the_exact_first_position():
    reports_first_bad_entry(kl_divergence)()


def _reports_moved_coordinates(p, q, *, axis):
    """Broken: validates after moving the support axis last, so positions are wrong."""
    return kl_divergence(np.moveaxis(p, axis, -1), np.moveaxis(q, axis, -1))


def _nan_as_negative(p, q, *, axis):
    """Broken: treats NaN as a negative entry, so NaN is not reported first."""
    p, q = (np.where(np.isnan(a), -1.0, a) for a in (p, q))
    return kl_divergence(p, q, axis=axis)


@pytest.mark.parametrize(
    "broken",
    [_reports_moved_coordinates, _nan_as_negative],
    ids=["positions after moveaxis", "NaN checked as negative"],
)
def test_junk_property_rejects_a_broken_validator(broken):
    # Generation alone finds the bug; shrinking would only slow the suite down.
    check = settings(database=None, phases=[Phase.generate])(reports_first_bad_entry(broken))
    with pytest.raises(AssertionError):
        check()


def test_bool_is_read_as_0_1_only_where_the_caller_allows_it():
    mask = np.array([True, False, True])
    with pytest.raises(TypeError, match=re.escape("y has dtype bool (a boolean mask?); y must")):
        validation._as_real_array("y", mask, what="y")
    got = validation._as_real_array("y", mask, what="y", allow_bool=True)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [1, 0, 1])
    got[0] = 7  # a new array: the caller's is untouched
    np.testing.assert_array_equal(mask, [True, False, True])
    assert validation._as_real_array("y", True, allow_bool=True).tolist() == 1
