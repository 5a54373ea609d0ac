"""Calling the implementation under test, and assertions with one message shape.

Every message reads ``what=got, but should be expected``; the check that runs
the property appends the clause id (``[kl.nonnegative]``, see checks.py). Every
helper hides its own frame (``__tracebackhide__``) so pytest points at the
property's line.

:func:`observe` is the one place that calls an implementation: whatever goes
wrong inside it (an exception, NaN, a wrong shape or type) becomes an
``AssertionError`` with a clear message, never a crash of the runner.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np

from klspec.spec.interface import ARGUMENTS, Implementation
from klspec.spec.tolerances import model_tolerance

_ARGUMENT_NAMES = ("p", "q")


#: What a violation looks like, for reports: how :mod:`klspec.conformance.causes` names it.
SYMPTOMS: dict[str, str] = {
    "nan": "returns NaN",
    "negative": "returns a negative value",
    "not_inf": "returns a finite value instead of +inf",
    "inf": "returns +inf instead of a finite value",
    "value": "returns a wrong value",
    "raises": "raises an exception",
    "no_result": "does not return a value",
    "crash": "crashes its process",
    "shape": "returns the wrong shape",
    "type": "returns something that is not a number",
    "writes": "writes into its arguments",
    "biased": "is biased by its clamp outside the range it declares",
    "violation": "violates the clause",
}


class Violation(AssertionError):
    """A check's failure; ``symptom`` (a key of :data:`SYMPTOMS`) says what kind."""

    def __init__(self, message: str, symptom: str = "violation") -> None:
        super().__init__(message)
        self.symptom = symptom


def literal(x: Any) -> str:
    """Python source that rebuilds ``x`` exactly (floats round-trip through ``repr``).

    Scalars print as ``0.7`` (``np.inf``, ``np.nan`` for the non-finite ones),
    arrays as ``np.array([...])``; long arrays made of a few runs (uniform,
    one-hot, zero-padded) as ``np.repeat([values], [counts])``.
    """
    if isinstance(x, np.ndarray) and x.ndim > 0:
        flat = x.ravel()
        starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
        if flat.size > 16 and starts.size * 4 <= flat.size:
            counts = np.diff(np.r_[starts, flat.size])
            text = f"np.repeat({_nested(flat[starts].tolist())}, {counts.tolist()})"
            return text if x.ndim == 1 else f"{text}.reshape({x.shape})"
        return f"np.array({_nested(x.tolist())})"
    if isinstance(x, np.ndarray):
        x = x[()]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "np.nan"
        if math.isinf(x):
            return "np.inf" if x > 0 else "-np.inf"
    return repr(x)


def _nested(x: Any) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_nested(v) for v in x) + "]"
    return literal(float(x))


def observe(
    impl: Implementation,
    quantity: str,
    *arrays: Any,
    call: str | None = None,
    shape: tuple[int, ...] = (),
    **options: Any,
) -> Any:
    """Call ``impl``'s ``quantity`` on ``arrays`` and return a float (or an array of ``shape``).

    ``call`` is how the call reads in messages (default ``kl(p, q)``, with
    ``options`` shown). The result must be a real number, or a real array of
    ``shape``, and never NaN; an exception raised by the implementation fails
    the check (see :func:`invoke`).
    """
    __tracebackhide__ = True
    call = call or call_text(quantity, len(arrays), **options)
    got = invoke(call, impl.function(quantity), *arrays, **options)
    try:
        value = np.asarray(got)
    except Exception:
        value = np.asarray(None)
    if value.dtype.kind not in "fiu":
        raise Violation(
            f"{call} returned {type(got).__name__} {_short(_repr(got))}, "
            "but should return a real number",
            "type",
        )
    if value.shape != shape:
        raise Violation(f"{call} has shape {value.shape}, but should have shape {shape}", "shape")
    value = value.astype(np.float64)
    if np.isnan(value).any():
        where = "" if shape == () else f"[{_index(np.isnan(value))}]"
        raise Violation(f"{call}{where}=nan, but should be a number", "nan")
    return float(value) if shape == () else value


class NoResult(Exception):
    """A call that produced no result for a reason other than an exception of its own.

    Raised by the guards around an implementation (:mod:`klspec.conformance.isolation`):
    the message completes ``kl(p, q) ...``, e.g. ``did not return within 2 s``.
    """


def invoke(call: str, fn: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """``fn(*args, **options)``; an exception it raises fails the check, naming ``call``.

    The implementation's warnings are not violations and are ignored; numpy's error
    state and print options are restored after the call, whatever it set.
    """
    __tracebackhide__ = True
    # What the implementation sets in numpy's global state (np.seterr(all="raise"),
    # print options) is put back after the call: it must not change how the checks run.
    errors, printing = np.geterr(), np.get_printoptions()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **options)
    except NoResult as exc:
        raise Violation(f"{call} {exc}, but should return a value", "no_result") from None
    except Exception as exc:
        raise Violation(
            f"{call} raised {describe_exception(exc)}, but should return a value", "raises"
        ) from exc
    finally:
        np.seterr(**errors)
        np.set_printoptions(**printing)


def call_text(quantity: str, n_arrays: int, **options: Any) -> str:
    """``kl(p, q)``, ``entropy(p, base=2.0)``, ``k3(logp, ref_logp)``: how a call reads."""
    names = _ARGUMENT_NAMES if quantity in ("kl", "cross_entropy") else ARGUMENTS.get(quantity)
    names = names or _ARGUMENT_NAMES
    args = [*names[:n_arrays], *(f"{k}={v!r}" for k, v in options.items())]
    return f"{quantity}({', '.join(args)})"


def violated(message: str, symptom: str = "violation") -> None:
    """Fail with ``message`` (already in the ``what=got, but should be ...`` shape)."""
    __tracebackhide__ = True
    raise Violation(message, symptom)


def _symptom(got: Any, expected: float | None = None, should: str = "") -> str:
    """The kind of a wrong number: NaN, negative where >= 0 is due, inf where finite, ..."""
    try:
        got = float(np.asarray(got, dtype=np.float64))
    except (TypeError, ValueError):
        return "violation"
    if math.isnan(got):
        return "nan"
    if expected is not None and math.isinf(expected) and not math.isinf(got):
        return "not_inf"
    if should == "+inf" and not math.isinf(got):
        return "not_inf"
    if math.isinf(got) and (expected is None or not math.isinf(expected)):
        return "inf"
    if should.startswith(">= 0") and got < 0:
        return "negative"
    return "value"


def require(ok: Any, call: str, got: Any, should: str) -> None:
    """Fail with ``call=got, but should be should`` unless ``ok``.

    ``ok`` and ``got`` may be arrays (batched results): the message then names
    the first offending index.
    """
    __tracebackhide__ = True
    ok = np.asarray(ok)
    if ok.all():
        return
    if ok.ndim:
        index = tuple(int(i) for i in np.argwhere(~ok)[0])
        call = f"{call}[{', '.join(map(str, index))}]"
        got = np.asarray(got)[index]
    raise Violation(f"{call}={show(got)}, but should be {should}", _symptom(got, None, should))


def require_close(
    call: str, got: Any, expected: Any, tolerance: Any, *, expected_text: str = ""
) -> None:
    """``|got − expected| <= tolerance``; an infinite ``expected`` must be met exactly.

    Arrays compare elementwise and the message names the first offending
    element. ``expected_text`` says where the expected value comes from
    (``"kl(p, q)"``); ``{index}`` in it is replaced by that element's index.
    """
    __tracebackhide__ = True
    got, expected, tolerance = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (got, expected, tolerance))
    )
    with np.errstate(invalid="ignore"):
        ok = np.where(np.isinf(expected), got == expected, np.abs(got - expected) <= tolerance)
    if ok.all():
        return
    index = tuple(int(i) for i in np.argwhere(~ok)[0])
    at = ", ".join(map(str, index))
    where = f"[{at}]" if got.ndim else ""
    g, e, t = got[index], expected[index], tolerance[index]
    should = show(e) if np.isinf(e) else f"{show(e)} ± {t:.2g}"
    if expected_text:
        should = f"{expected_text.format(index=at)} = {should}"
    raise Violation(f"{call}{where}={show(g)}, but should be {should}", _symptom(g, float(e)))


def mp(x: Any) -> mpmath.mpf:
    """A float64 number as an exact mpmath number."""
    return mpmath.mpf(float(x))


def require_sum(
    call: str, got: float, terms: Sequence[mpmath.mpf], *, expected_text: str = ""
) -> None:
    """``got`` is Σ terms (exact) within :func:`~klspec.spec.tolerances.model_tolerance`."""
    __tracebackhide__ = True
    value = mpmath.fsum(terms)
    magnitude = float(mpmath.fsum(abs(t) for t in terms))
    require_close(
        call, got, float(value), model_tolerance(magnitude, len(terms)), expected_text=expected_text
    )


def show(x: Any) -> str:
    """A value as messages print it: shortest round-trip repr for floats."""
    if isinstance(x, np.ndarray) and x.ndim:
        return literal(x)
    x = float(np.asarray(x))
    return repr(x) if math.isfinite(x) else str(x)


def names_argument(message: str, names: tuple[str, ...]) -> bool:
    """Whether an error message names one of ``names`` as a word (``q[3]`` names ``q``)."""
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)


def message_of(exc: BaseException) -> str:
    """``str(exc)``, or what it is when the target's exception cannot be printed."""
    return _text(str, exc, "<its message could not be printed: {}>")


def _text(show: Callable[[Any], Any], x: Any, failed: str) -> str:
    """``show(x)`` (``str`` or ``repr`` of the target's object), never raising; ``failed``
    says what went wrong, with ``{}`` for the exception's type."""
    try:
        text = show(x)
    except Exception as exc:
        return failed.format(type(exc).__name__)
    return text if isinstance(text, str) else failed.format("a value that is not a string")


def describe_exception(exc: BaseException) -> str:
    """``ValueError('q[3] is negative')``: an exception as messages show it (first line)."""
    text = message_of(exc)
    text = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}({_short(text)!r})" if text else type(exc).__name__


def printable(x: Any, limit: int = 120) -> str:
    """``repr(x)`` shortened to ``limit`` characters, never raising (for the target's objects)."""
    return _short(x, limit)


def _repr(x: Any) -> str:
    """``repr(x)``, or what it is when its ``__repr__`` raises (a result is the target's object)."""
    return _text(repr, x, "<unprintable: its __repr__ raised {}>")


def _short(x: Any, limit: int = 120) -> str:
    text = x if isinstance(x, str) else _repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _index(mask: np.ndarray) -> str:
    return ", ".join(str(int(i)) for i in np.argwhere(mask)[0])
