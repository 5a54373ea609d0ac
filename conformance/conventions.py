"""Conventions: departures from the clauses that a library documents and chose on purpose.

A clause defines KL on the normalised inputs P = p/Σp, Q = q/Σq, with 0·log 0 = 0
and KL = +inf where q_i = 0 < p_i. Many libraries compute something else on
purpose: the formula on the inputs as given (no normalisation), on probabilities
clipped to [1e-7, 1] (keras), divided by the number of elements (torch's
``reduction='mean'``), plus Σq − Σp (scipy's ``kl_div``), in float32. A value that
differs from KL for such a reason is not *inaccurate*: it is the exact value of
another formula, and a report should say which.

Each :class:`Convention` gives, for a call of ``kl``, ``entropy``,
``cross_entropy`` or ``token_kl``, the exact value its formula has on those inputs
and the error a float64 evaluation of it can make (:meth:`Convention.value`).
:mod:`klspec.conformance.causes` asks whether a failing call returned that value.
Adapters declare the conventions their library documents
(``Implementation(conventions=...)``); :data:`UNNORMALISED` is also tried for every
target, since the literal formula skips the normalisation, and reported as
"consistent with" rather than "by its convention" when the target did not declare it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import numpy as np

from klspec.spec import oracle
from klspec.spec.interface import DIVERGENCES
from klspec.spec.tolerances import SUBNORMAL_SLACK, U, gamma

#: Unit roundoff of float32 over float64's: float32 rounding errors are this much larger.
FLOAT32_SCALE = 2.0**-24 / U


def _raw(quantity: str, arrays: tuple[np.ndarray, ...]) -> tuple[mpmath.mpf, float] | None:
    """The exact value of the literal formula on the arrays as given (an mpmath number, at
    the oracle's precision), and the error a float64 evaluation of it can make."""
    if quantity not in _EXACT or any(a.ndim != 1 or a.size == 0 for a in arrays):
        return None
    value = _EXACT[quantity](*arrays)
    if mpmath.isinf(value):
        return mpmath.inf, 0.0
    return value, literal_error(quantity, arrays)


def _mass_difference(arrays: tuple[np.ndarray, ...]) -> mpmath.mpf:
    """Σq − Σp exactly (every float64 is an exact binary fraction; 2100 bits hold any sum)."""
    with mpmath.workprec(2200):
        return mpmath.fsum(mpmath.mpf(float(x)) for x in arrays[1]) - mpmath.fsum(
            mpmath.mpf(float(x)) for x in arrays[0]
        )


def literal_error(quantity: str, arrays: tuple[np.ndarray, ...]) -> float:
    """Bound on the error of a float64 evaluation of the formula on the inputs as given.

    Per term: the ratio (or each log's argument) rounds by a relative u, which moves
    its log by u absolute, so the term by u·p_i; the log and the product add 2u·|t_i|;
    the sum of n terms in any order adds γ_n·Σ|t_i|. Plus a few subnormal units per
    term. Unlike :func:`~klspec.spec.tolerances.rounding_error` there is no
    normalisation to account for: the formula skips it.
    """
    terms = _terms(quantity, arrays)
    n = arrays[0].size
    mass = math.fsum(arrays[0]) * (2 if quantity == "entropy" else 1)
    return U * mass + (gamma(n) + 2 * U) * math.fsum(np.abs(terms)) + n * SUBNORMAL_SLACK


def _terms(quantity: str, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
    p = arrays[0]
    with np.errstate(all="ignore"):
        safe_p = np.where(p > 0, p, 1.0)
        if quantity == "entropy":
            return np.where(p > 0, -p * np.log(safe_p), 0.0)
        q = np.where(arrays[1] > 0, arrays[1], 1.0)
        if quantity == "cross_entropy":
            return np.where(p > 0, -p * np.log(q), 0.0)
        return np.where(p > 0, p * (np.log(safe_p) - np.log(q)), 0.0)


_EXACT: dict[str, Callable[..., mpmath.mpf]] = {
    "kl": lambda p, q: oracle.kl_exact(p, q, normalise=False),
    "entropy": lambda p: oracle.entropy_exact(p, normalise=False),
    "cross_entropy": lambda p, q: oracle.cross_entropy_exact(p, q, normalise=False),
}


@dataclass(frozen=True)
class Convention:
    """A documented departure: its words, and the value its formula gives on given inputs.

    ``transform`` maps the call's arrays to those the literal formula is applied to
    (a clip, say); ``scale`` maps the literal value to what is returned (divided by
    the element count, say); ``extra`` adds a term (scipy's Σq − Σp). ``float32``
    marks a convention of precision rather than formula: the value is the clause's
    own, within float32's rounding instead of float64's.
    """

    key: str
    words: str
    transform: Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]] | None = None
    scale: Callable[[tuple[np.ndarray, ...]], float] | None = None
    extra: Callable[[tuple[np.ndarray, ...]], mpmath.mpf] | None = None
    quantities: tuple[str, ...] = DIVERGENCES
    float32: bool = field(default=False)
    #: A formula of its own: (arrays, the clause's (value, tolerance), precision) ->
    #: (value, tolerance), for conventions that are not a transform of the literal one.
    custom: Callable[..., tuple[float, float] | None] | None = None

    def value(
        self,
        quantity: str,
        arrays: tuple[np.ndarray, ...],
        exact: tuple[float, float],
        precision: object = None,
    ) -> tuple[float, float] | None:
        """(value, tolerance) that a call following this convention returns, or None.

        ``exact`` is the clause's own (value, tolerance) for the call: a float32
        convention widens that tolerance, the others replace the value. ``precision``
        is the format the target computes in (default float64).
        """
        if quantity not in self.quantities:
            return None
        if self.custom is not None:
            return self.custom(arrays, exact, precision)
        if self.float32:
            return exact[0], exact[1] * FLOAT32_SCALE
        inputs = self.transform(arrays) if self.transform else arrays
        raw = _raw(quantity, tuple(np.asarray(a, dtype=np.float64) for a in inputs))
        if raw is None:
            return None
        exact_value, tolerance = raw
        if self.extra is not None and not mpmath.isinf(exact_value):
            with mpmath.workprec(2200):  # the extra term cancels the formula's: keep every bit
                exact_value = exact_value + self.extra(arrays)
            tolerance += 4 * U * (math.fsum(arrays[0]) + math.fsum(arrays[1]))
        value = float(exact_value)
        if self.scale is not None:
            factor = self.scale(arrays)
            value, tolerance = value * factor, tolerance * factor + U * abs(value * factor)
        return value, tolerance


UNNORMALISED = Convention(
    "unnormalised",
    "does not normalise: it computes Σ p_i·log(p_i/q_i) of the inputs as given, not of "
    "p/Σp and q/Σq (the two differ by the inputs' rounding, ~1e-16)",
)


def clipped(
    low: float,
    high: float,
    library: str,
    *,
    zeros: bool = True,
    normalise: bool = False,
    bounds: str = "",
    low_name: str = "",
) -> Convention:
    """Probabilities clipped to [low, high] before the formula (keras: [1e-7, 1]).

    ``zeros=False``: zeros are not clipped (their terms stay 0, or +inf where
    q_i = 0 < p_i); ``normalise``: the inputs are normalised before the clip;
    ``bounds`` and ``low_name`` how the interval and its lower end read in words
    (default: their numbers).
    """

    def transform(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        out = []
        for a in arrays:
            a = a / math.fsum(a) if normalise else a
            out.append(
                np.clip(a, low, high) if zeros else np.where(a > 0, np.clip(a, low, high), 0)
            )
        return tuple(out)

    what = "p and q" if zeros else "the nonzero entries of p and q"
    low_name = low_name or f"{low:.3g}"
    then = "a zero counts as" if zeros else f"an entry below {low_name} counts as"
    interval = bounds or f"[{low:.3g}, {high:.17g}]"
    return Convention(
        f"clip({low:.3g}, {high:.17g})",
        f"{'normalises, then ' if normalise else ''}clips {what} to {interval} before the "
        f"formula ({library}): {then} {low_name}",
        transform=transform,
    )


MEAN_OVER_ELEMENTS = Convention(
    "mean over elements",
    "reduces with reduction='mean', which divides the sum by the number of elements: one "
    "distribution of n outcomes gives KL/n",
    scale=lambda arrays: 1.0 / arrays[0].size,
    quantities=("kl",),
)

GENERALISED = Convention(
    "generalised KL",
    "adds Σq − Σp: its terms p·log(p/q) − p + q are those of the KL of unnormalised "
    "measures, and do not normalise",
    extra=_mass_difference,
    quantities=("kl",),
)

FLOAT32 = Convention(
    "float32",
    "computes in float32: its values carry float32's rounding (2^29 times float64's)",
    quantities=("kl", "entropy", "cross_entropy", "token_kl"),
    float32=True,
)


def _token_cross_entropy(
    arrays: tuple[np.ndarray, ...], exact: tuple[float, float], precision: object
) -> tuple[float, float] | None:
    """H(softmax(a), softmax(b)) = KL + H(P) for one row, with KL's tolerance plus H's."""
    a = np.asarray(arrays[0], dtype=np.float64)
    if a.ndim != 1 or not np.isfinite(a).all() or math.isinf(exact[0]):
        return None
    u = getattr(precision, "u", U)
    with mpmath.workdps(50):
        logits = [mpmath.mpf(float(x)) for x in a]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in logits))
        entropy = -mpmath.fsum(mpmath.exp(x - lse) * (x - lse) for x in logits)
    h = float(entropy)
    n = a.size
    return exact[0] + h, exact[1] + (2 * n * u + 8 * u) * (h + 1)


CROSS_ENTROPY_FOR_KL = Convention(
    "cross-entropy for KL",
    "returns the cross-entropy H(P, Q) = KL(P‖Q) + H(P) where a KL is asked for: it leaves "
    "out the teacher's entropy H(P), a constant in the student, so its gradient is the "
    "KL's but its value is not (H(P) > 0 even where the rows are equal)",
    quantities=("token_kl",),
    custom=_token_cross_entropy,
)
