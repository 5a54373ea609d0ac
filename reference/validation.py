"""Input validation for ``entropy``, ``cross_entropy`` and ``kl_divergence``.

Every public function of :mod:`klspec.reference` passes its distributions through
:func:`validate_distributions` and its ``base`` through :func:`validate_base`. Bad
input is never silently repaired: it raises an error that names the argument, the
problem and where it is, and says what to do, e.g.
``q[3, 17] is negative (-0.001); probabilities must be >= 0``.

Rules
-----
Each distribution argument (``p``, then ``q``) is checked in this order; the first
failing rule raises.

1. **Type** (``TypeError``). The input goes through ``np.asarray``, so lists, numpy
   arrays and anything exposing ``__array__`` (e.g. a CPU torch tensor) are accepted.
   Integer and float dtypes (float16, float32, float64, longdouble) are accepted.
   Rejected: strings, bytes, object dtype (e.g. ``[1, None]``), complex, bool (a mask
   passed by mistake), datetimes and timedeltas, structured records:
   ``p has dtype complex128; probabilities must be real numbers``. A numpy masked
   array is refused too (``np.asarray`` would drop its mask and use the masked
   values): ``p is a masked array; pass .filled(...) or .compressed() ...``.
2. **Ragged nesting** (``ValueError``). ``[[0.5, 0.5], [1.0]]`` raises
   ``p is a ragged nested sequence: every row must have the same length``.
3. **0-d input** (``ValueError``). A single number is not a distribution:
   ``p is 0-d (a single number); a distribution needs an axis of outcomes``.
4. **axis**. It must be an integer (``operator.index``; bool is refused):
   ``TypeError("axis must be an int, got 1.5")``. It may be negative and must be in
   range for every argument: ``ValueError("axis=2 is out of range for p with 2
   dimensions")``. The same ``axis`` is applied to each argument, which may have
   different numbers of dimensions.
5. **Empty support** (``ValueError``): ``p has an empty support: axis -1 has length 0``.
6. **Entries** (``ValueError``). NaN is looked for first, then ``inf``/``-inf``, then
   negative entries. The error names the first offending entry (C order) in the
   caller's own coordinates and counts the others:
   ``p[1] is NaN (and 4 more); probabilities must be finite numbers``,
   ``p[0, 2] is inf; probabilities must be finite numbers``,
   ``q[3, 17] is negative (-0.001); probabilities must be >= 0``.
   Negative zero is allowed.
7. **Sum** (``ValueError``). Each distribution (each row along ``axis``) must sum to 1
   within :func:`sum_tolerance` of the input dtype; the sum is computed in float64.
   The error names the first bad row with ``:`` at the support axis and counts the
   other bad rows: ``p[2, :] sums to 1.3, off from 1 by 0.3 (more than the float64
   tolerance 1.5e-08); pass a normalised distribution, e.g. p / p.sum(axis=-1,
   keepdims=True)``. A 1-D argument reads ``p sums to ...``.

Then across arguments (``ValueError``):

8. **Support sizes** must be equal; the support axis never broadcasts:
   ``p and q have different support sizes along axis -1: 3 vs 4``. The batch shapes
   (every axis but the support axis) must broadcast under numpy's rules:
   ``the batch shapes of p (3,) and q (4,) do not broadcast``.

And for the logarithm base, by :func:`validate_base`:

9. **base**. ``None`` means nats. Otherwise a real number (Python or numpy int or
   float); bool, str and complex raise ``TypeError``. It must be finite, > 0 and
   != 1, else ``ValueError``: ``base=1 is not a valid logarithm base; use a finite
   base > 0 and != 1 (None for nats, 2 for bits)``.

10. **Sum tolerance**: :func:`sum_tolerance` is ``sqrt(finfo(dtype).eps)`` of the
    input dtype: float16 3.1e-02, float32 3.5e-04, float64 1.5e-08; integer and
    longdouble inputs use the float64 value. The table is in its docstring and in
    :data:`SUM_TOLERANCES`.

Validation is vectorised: a valid input costs one float64 conversion (none for
float64 input), one sum and one minimum; positions are located only on failure.
It never emits a numpy warning and never modifies the caller's arrays.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "SUM_TOLERANCES",
    "prepare_distributions",
    "sum_tolerance",
    "validate_base",
    "validate_distributions",
]

_FLOAT64_EPS = float(np.finfo(np.float64).eps)

#: numpy's default floating-point error handling, restored inside the reference.
NUMPY_DEFAULT_ERRSTATE = MappingProxyType(
    {"divide": "warn", "over": "warn", "invalid": "warn", "under": "ignore"}
)

_F = TypeVar("_F", bound=Callable[..., Any])


def own_error_state(func: _F) -> _F:
    """Run ``func`` under numpy's default error state, whatever the caller's.

    An underflow to 0 or a subnormal is the intended result in many places (e.g.
    exp(−800)); a caller that set ``np.seterr(all="raise")`` (or ``under="raise"``)
    must not turn it into a ``FloatingPointError``. Inside, the reference's own
    ``np.errstate`` blocks then work as written; the state is restored on return.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(**NUMPY_DEFAULT_ERRSTATE):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# Why a dtype kind is refused, appended to "p has dtype <dtype>".
_REFUSED_KINDS = {
    "b": " (a boolean mask?)",
    "c": "",
    "O": " (it holds something that is not a plain number, e.g. None)",
    "U": " (text)",
    "S": " (bytes)",
    "M": " (datetimes)",
    "m": " (timedeltas)",
    "V": " (structured records)",
}


def sum_tolerance(dtype: DTypeLike) -> float:
    """How far from 1 the sum of a distribution of this dtype may be.

    The tolerance is ``sqrt(finfo(dtype).eps)``: about half the digits the dtype
    carries, loose enough for rounding accumulated when a distribution was
    normalised in that dtype, tight enough to catch unnormalised counts or weights.

    ===========  ===========================  ==========
    input dtype  tolerance                    value
    ===========  ===========================  ==========
    float16      ``sqrt(eps16) = 2**-5``      3.1250e-02
    float32      ``sqrt(eps32) = 2**-11.5``   3.4527e-04
    float64      ``sqrt(eps64) = 2**-26``     1.4901e-08
    integer      as float64                   1.4901e-08
    longdouble   as float64                   1.4901e-08
    ===========  ===========================  ==========

    Dtypes finer than float64 (longdouble) get the float64 tolerance, because the
    reference converts its inputs to float64 and sums in float64. The same values
    are in :data:`SUM_TOLERANCES`. Raises ``TypeError`` for a non-numeric dtype.
    """
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        dt = np.dtype(np.float64)
    elif dt.kind != "f":
        raise TypeError(f"sum_tolerance needs an integer or float dtype, got {dt}")
    return math.sqrt(max(float(np.finfo(dt).eps), _FLOAT64_EPS))


#: The sum tolerance per input dtype, as quoted in the docs of :func:`sum_tolerance`.
SUM_TOLERANCES: Mapping[str, float] = MappingProxyType(
    {
        "float16": sum_tolerance(np.float16),
        "float32": sum_tolerance(np.float32),
        "float64": sum_tolerance(np.float64),
        "integer": sum_tolerance(np.int64),
        "longdouble": sum_tolerance(np.longdouble),
    }
)


def real_scalar(value: object, type_error: str) -> float:
    """``value`` as a float: a real number (Python or numpy int/float), else
    ``TypeError(type_error)``; bool is refused (a flag passed by mistake). An int beyond
    the float range becomes ±inf, for the caller's range check to name. The one rule
    behind every scalar parameter (``base``, ``beta``, ``label_smoothing``, a fit's
    ``mean``/``sd``); each caller states its own range and message.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(type_error)
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range, e.g. 10**400
        return math.inf if value > 0 else -math.inf


def validate_base(base: float | None) -> float | None:
    """Check a logarithm base and return its natural log (``None`` for nats).

    ``None`` means natural logarithms and returns ``None``. Otherwise ``base`` must be
    a real number (Python or numpy int/float; bool, str and complex raise
    ``TypeError``) that is finite, > 0 and != 1, else ``ValueError``:
    ``base=1 is not a valid logarithm base; use a finite base > 0 and != 1 (None for
    nats, 2 for bits)``. Returns ``math.log(float(base))``.
    """
    if base is None:
        return None
    value = real_scalar(
        base, f"base must be a real number (None for nats, 2 for bits), got {base!r}"
    )
    if not (math.isfinite(value) and value > 0 and value != 1):
        raise ValueError(
            f"base={base} is not a valid logarithm base; "
            "use a finite base > 0 and != 1 (None for nats, 2 for bits)"
        )
    return math.log(value)


def validate_distributions(
    named: Mapping[str, ArrayLike], *, axis: int
) -> tuple[tuple[np.ndarray, ...], tuple[int, ...]]:
    """Check distributions and bring them to a common layout.

    ``named`` maps argument names to inputs in argument order, e.g.
    ``{"p": p, "q": q}``; the names appear in error messages. ``axis`` is the
    support axis (the axis of outcomes), applied to every input.

    Returns ``(arrays, batch_shape)``: one read-only float64 array per input, in
    order, with the support axis moved last and the other (batch) axes broadcast to
    ``batch_shape``, the common batch shape. The caller's arrays are never modified
    and never returned as is (a float64 input comes back as a read-only view).

    Raises ``TypeError`` or ``ValueError`` as set out in the module docstring
    (rules 1-8).
    """
    if not named:
        raise ValueError("validate_distributions needs at least one named distribution")
    checked = {name: _validate_one(name, value, axis) for name, value in named.items()}
    return _common_layout(checked, axis)


def _common_layout(
    checked: Mapping[str, np.ndarray], axis: int
) -> tuple[tuple[np.ndarray, ...], tuple[int, ...]]:
    """Rule 8: equal support sizes, broadcast batch shapes; arrays broadcast to them."""
    names = list(checked)
    first = names[0]
    for name in names[1:]:
        n_first, n_other = checked[first].shape[-1], checked[name].shape[-1]
        if n_first != n_other:
            raise ValueError(
                f"{first} and {name} have different support sizes along axis {axis}: "
                f"{n_first} vs {n_other}"
            )

    batch_shapes = {name: x.shape[:-1] for name, x in checked.items()}
    try:
        batch_shape = tuple(np.broadcast_shapes(*batch_shapes.values()))
    except ValueError:
        a, b = _first_clash(batch_shapes)
        raise ValueError(
            f"the batch shapes of {a} {batch_shapes[a]} and {b} {batch_shapes[b]} do not broadcast"
        ) from None

    arrays = tuple(np.broadcast_to(x, (*batch_shape, x.shape[-1])) for x in checked.values())
    return arrays, batch_shape


def prepare_distributions(
    named: Mapping[str, ArrayLike], *, axis: int
) -> tuple[tuple[np.ndarray, ...], tuple[int, ...]]:
    """Rules 1-5 and 8 only: types, shapes, ``axis`` and broadcasting, not the values.

    For callers that check entries and sums themselves while they compute (the
    chunked kernels of :mod:`klspec.reference._chunked` see every value once and
    call :func:`validate_distributions` to raise the error when something is off).
    Returns ``(arrays, batch_shape)`` like :func:`validate_distributions`, but each
    array keeps its own dtype (no float64 copy is made) and is a view of the input
    when the input was an array.
    """
    if not named:
        raise ValueError("prepare_distributions needs at least one named distribution")
    prepared = {}
    for name, value in named.items():
        arr, ax = _prepare_one(name, value, axis)
        prepared[name] = np.moveaxis(arr, ax, -1)
    return _common_layout(prepared, axis)


def _prepare_one(name: str, value: ArrayLike, axis: int) -> tuple[np.ndarray, int]:
    """Rules 1-5 for one argument; returns the array and the support axis, in range."""
    arr = _as_real_array(name, value)
    if arr.ndim == 0:
        raise ValueError(
            f"{name} is 0-d (a single number); a distribution needs an axis of outcomes"
        )
    ax = _normalise_axis(axis, name, arr.ndim)
    if arr.shape[ax] == 0:
        raise ValueError(f"{name} has an empty support: axis {axis} has length 0")
    return arr, ax


def _validate_one(name: str, value: ArrayLike, axis: int) -> np.ndarray:
    """Rules 1-7 for one argument; returns float64 with the support axis last."""
    arr, ax = _prepare_one(name, value, axis)

    # Overflow in the cast (longdouble > 1.8e308) and inf - inf in a sum are reported
    # by the checks below as errors, never as numpy warnings.
    with np.errstate(all="ignore"):
        x = np.asarray(arr, dtype=np.float64)  # no copy for float64 input; never written to
        sums = x.sum(axis=ax)
        lowest = x.min() if x.size else 0.0
    # Fast path: finite sums mean no NaN or inf entry, a minimum >= 0 means no
    # negative one (a NaN minimum fails the test too). Locate entries only on failure.
    if not (np.isfinite(sums).all() and lowest >= 0):
        _check_entries(name, arr)
    _check_sums(name, sums, arr.dtype, ax, axis)
    return np.moveaxis(x, ax, -1)


def _as_real_array(
    name: str, value: ArrayLike, *, what: str = "probabilities", allow_bool: bool = False
) -> np.ndarray:
    """Rules 1-2: convert with np.asarray and refuse non-real dtypes and ragged input.

    ``what`` names the values in the TypeError's advice (``<what> must be real
    numbers``); other modules pass e.g. ``what="y"`` for data that are not
    probabilities. A numpy masked array is refused (:func:`refuse_masked`).
    ``allow_bool=True`` accepts bool input where a bool reads naturally as 0/1
    (e.g. Bernoulli labels) and returns it as a new uint8 array of 0s and 1s, so
    that its float64 values are exactly those of the 0/1 labels; otherwise bool is
    refused (a mask passed by mistake).
    """
    refuse_masked(name, value)
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        if "inhomogeneous" in str(exc):
            raise ValueError(
                f"{name} is a ragged nested sequence: every row must have the same length"
            ) from None
        raise TypeError(f"{name} cannot be converted to an array of numbers: {exc}") from exc
    except (TypeError, OverflowError) as exc:
        raise TypeError(f"{name} cannot be converted to an array of numbers: {exc}") from exc
    if allow_bool and arr.dtype.kind == "b":
        return arr.astype(np.uint8)  # a new array: True -> 1, False -> 0
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind == "O" and arr.ndim == 0:
            raise TypeError(
                f"{name} has type {type(value).__name__}; {what} must be an array of real numbers"
            )
        hint = _REFUSED_KINDS.get(arr.dtype.kind, "")
        raise TypeError(f"{name} has dtype {arr.dtype}{hint}; {what} must be real numbers")
    return arr


def refuse_masked(name: str, value: object) -> None:
    """Rule 1: a numpy masked array is refused, not read without its mask.

    ``np.asarray`` drops the mask and keeps the masked values, so the result would
    silently use entries the caller meant to leave out.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; pass .filled(...) or .compressed() "
            "(the reference does not read masks)"
        )


def _check_float64_range(name: str, arr: np.ndarray, x: np.ndarray, rule: str) -> None:
    """A longdouble entry beyond the float64 range (|x| > 1.8e308) is an error.

    ``x`` is ``arr`` converted to float64, where such an entry became ±inf, which
    would then read as a legitimate infinity (e.g. a −inf log-probability). Only
    dtypes wider than float64 can hold one, so float64 and narrower input costs nothing.
    """
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        _raise_at_first(name, arr, np.isinf(x) & np.isfinite(arr), _shown, rule)


def _shown(v: object) -> str:
    """A value as the caller would write it: 0, -1, 2.5, 1e-300, inf; flags float64 rounding."""
    text = str(v)
    if text.endswith(".0"):
        text = text[:-2]
    with np.errstate(over="ignore", under="ignore"):
        as_float64 = np.float64(v)
    if np.isfinite(v) and not np.isfinite(as_float64):
        text += " (beyond the float64 range)"
    elif v != 0 and as_float64 == 0:
        text += " (0 in float64)"
    return text


def _normalise_axis(axis: int, name: str, ndim: int) -> int:
    """Rule 4: axis as a non-negative int in range for an array of ``ndim`` dims."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an int, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        dims = "dimension" if ndim == 1 else "dimensions"
        raise ValueError(f"axis={ax} is out of range for {name} with {ndim} {dims}")
    return ax % ndim


def _check_entries(name: str, arr: np.ndarray) -> None:
    """Rule 6: NaN, then inf/-inf, then negative entries, in the caller's coordinates."""
    finite_rule = "probabilities must be finite numbers"
    if arr.dtype.kind == "f":
        _raise_at_first(name, arr, np.isnan(arr), lambda v: "NaN", finite_rule)
        _raise_at_first(name, arr, np.isinf(arr), str, finite_rule)
    if arr.dtype.kind != "u":
        _raise_at_first(
            name, arr, arr < 0, lambda v: f"negative ({v!s})", "probabilities must be >= 0"
        )


def _raise_at_first(
    name: str, arr: np.ndarray, mask: np.ndarray, problem: Callable[[object], str], rule: str
) -> None:
    """Raise ValueError naming the first True entry of ``mask`` (C order), if any.

    The message reads ``<name>[i, j] is <problem(value)> (and N more); <rule>``.
    """
    count = int(np.count_nonzero(mask))
    if count == 0:
        return
    index = np.unravel_index(int(np.argmax(mask)), mask.shape)
    more = f" (and {count - 1} more)" if count > 1 else ""
    raise ValueError(f"{_position(name, index)} is {problem(arr[index])}{more}; {rule}")


def _check_sums(name: str, sums: np.ndarray, dtype: np.dtype, ax: int, axis: int) -> None:
    """Rule 7: every row sums to 1 within sum_tolerance(dtype).

    ``sums`` has the caller's shape without the support axis ``ax``; ``axis`` is the
    support axis as the caller spelled it, quoted in the advice.
    """
    tol = sum_tolerance(dtype)
    with np.errstate(all="ignore"):
        off = np.abs(sums - 1.0)
    bad = off > tol
    count = int(np.count_nonzero(bad))
    if count == 0:
        return
    batch_index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    s, d = float(sums[batch_index]), float(off[batch_index])
    row = (*batch_index[:ax], ":", *batch_index[ax:])
    where = name if sums.ndim == 0 else _position(name, row)
    others = ""
    if count > 1:
        others = ", and 1 more row is off" if count == 2 else f", and {count - 1} more rows are off"
    if s == 0:
        raise ValueError(
            f"{where} sums to 0 (every entry is 0){others}; a distribution needs positive mass"
        )
    raise ValueError(
        f"{where} sums to {_format_sum(s, d)}, off from 1 by {d:.2g} "
        f"(more than the {dtype} tolerance {tol:.2g}){others}; pass a normalised "
        f"distribution, e.g. {name} / {name}.sum(axis={axis}, keepdims=True)"
    )


def _format_sum(s: float, off: float) -> str:
    """``s`` with enough digits that its distance ``off`` from 1 shows (1.0000001, not 1)."""
    digits = 3
    if math.isfinite(off) and off < 1e-2:
        digits = math.ceil(-math.log10(off)) + 2
    return f"{s:.{digits}g}"


def _position(name: str, index: tuple) -> str:
    """``p[3, 17]`` or ``p[2, :]`` for an index tuple of ints and ``":"``; ``p`` if 0-d."""
    return f"{name}[{', '.join(str(i) for i in index)}]" if index else name


def _first_clash(shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, str]:
    """The first pair of names whose shapes do not broadcast together."""
    names = list(shapes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            try:
                np.broadcast_shapes(shapes[a], shapes[b])
            except ValueError:
                return a, b
    return names[0], names[-1]  # unreachable when the joint broadcast failed pairwise
