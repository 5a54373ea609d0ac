"""High-precision truth for accuracy claims, computed with mpmath.

Every float64 input is converted to an mpmath number exactly, the inputs are
normalised exactly (the reference's numerical definition, docs/design.md), and the
textbook formula is evaluated at a working precision chosen from the inputs'
dynamic range: ``log(Σq/Σp)`` can be ~1e-53 next to terms of order 1 when the
inputs span 50 decades, so a fixed 50 digits is not enough. We carry
``GUARD_DIGITS`` digits beyond twice the widest decade span, which leaves well
over 30 correct digits in the result for every float64 input.

These functions are slow (a few microseconds per element per digit): use them
on supports up to ~10^5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import mpmath
import numpy as np

GUARD_DIGITS = 60


def _digits(*arrays: np.ndarray) -> int:
    """Working precision: GUARD_DIGITS plus twice the largest |log10| of a positive entry."""
    span = 0.0
    for a in arrays:
        positive = a[a > 0]
        if positive.size:
            span = max(span, -math.log10(float(positive.min())), math.log10(float(positive.max())))
    return GUARD_DIGITS + 2 * math.ceil(span)


def _mp(values: Iterable[float]) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(v)) for v in values]


def kl_exact(p: np.ndarray, q: np.ndarray, *, normalise: bool = True) -> mpmath.mpf:
    """KL(P‖Q) of the exactly normalised 1-D inputs; +inf if some q_i = 0 < p_i.

    ``normalise=False``: the exact value of Σ p_i log(p_i/q_i) on the inputs as given
    (what a formula that skips the normalisation computes, without its rounding).
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with mpmath.workdps(_digits(p, q)):
        P, Q = _mp(p), _mp(q)
        sp, sq = (mpmath.fsum(P), mpmath.fsum(Q)) if normalise else (mpmath.mpf(1), mpmath.mpf(1))
        terms = []
        for a, b in zip(P, Q, strict=True):
            if a == 0:
                continue
            if b == 0:
                return mpmath.inf
            terms.append(a / sp * mpmath.log((a * sq) / (b * sp)))
        return +mpmath.fsum(terms)


def entropy_exact(p: np.ndarray, *, normalise: bool = True) -> mpmath.mpf:
    """H(P) of the exactly normalised 1-D input (``normalise=False``: −Σ p_i log p_i as given)."""
    p = np.asarray(p, dtype=np.float64)
    with mpmath.workdps(_digits(p)):
        P = _mp(p)
        sp = mpmath.fsum(P) if normalise else mpmath.mpf(1)
        return +(-mpmath.fsum(a / sp * mpmath.log(a / sp) for a in P if a > 0))


def cross_entropy_exact(p: np.ndarray, q: np.ndarray, *, normalise: bool = True) -> mpmath.mpf:
    """H(P, Q) = H(P) + KL(P‖Q) of the exactly normalised 1-D inputs (or as given)."""
    return entropy_exact(p, normalise=normalise) + kl_exact(p, q, normalise=normalise)


def relative_error(value: float, exact: mpmath.mpf) -> float:
    """|value − exact| / |exact|; 0 when both are 0 or both +inf; inf when only one is."""
    if mpmath.isinf(exact) or math.isinf(value):
        return 0.0 if (mpmath.isinf(exact) and value == math.inf) else math.inf
    if exact == 0:
        return 0.0 if value == 0 else math.inf
    with mpmath.workdps(30):
        return float(abs(mpmath.mpf(float(value)) - exact) / abs(exact))


#: Spacing of float64 numbers below the smallest normal (2.2e-308): 2**-1074 = 4.9e-324.
SUBNORMAL_UNIT = 2.0**-1074


def accuracy_error(value: float, exact: mpmath.mpf) -> float:
    """Relative error, allowing one unit of the subnormal grid where the exact value underflows.

    A result below 2.2e-308 is a subnormal number, whose resolution is 4.9e-324
    absolute: H(1, 5e-324) = 3.68e-321 cannot be nearer than 0.5 units to the
    truth, a relative 1.3e-4. Accuracy bounds are stated "relative, short of
    underflow", and this is the measure they use.
    """
    if 0 < abs(exact) < np.finfo(np.float64).tiny and math.isfinite(value):
        with mpmath.workdps(30):
            excess = abs(mpmath.mpf(float(value)) - exact) - SUBNORMAL_UNIT
            return max(0.0, float(excess / abs(exact)))
    return relative_error(value, exact)
