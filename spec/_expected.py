"""Expected values for value checks, computed independently of any implementation.

Small supports (at most :data:`MPMATH_MAX_SIZE` outcomes) get the exact value
from :mod:`klspec.spec.oracle` (mpmath at a precision set by the inputs' dynamic
range). Larger ones get the textbook formula on the normalised inputs in float64,
summed exactly with ``math.fsum``, together with a bound on its own error, which
the check adds to the implementation's tolerance. Either way the terms are also
computed in float64, for their magnitude Σ|t_i| (tolerances.py).

Everything here works on 1-D arrays and never raises a numpy warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from klspec.spec import oracle
from klspec.spec.tolerances import TINY, U, defect, value_tolerance

#: mpmath costs ~1 ms per 64 outcomes (more with subnormals): use it on small supports only.
MPMATH_MAX_SIZE = 32


@dataclass(frozen=True)
class Expected:
    """The value of a quantity on given inputs, and how close a float64 result must be."""

    value: float  #: the exact value, rounded to float64 (within ``error`` of it); may be +inf
    magnitude: float  #: M = Σ|t_i|, the scale of the rounding errors
    n: int  #: support size
    defects: tuple[float, ...]  #: |Σx − 1| of each input
    error: float  #: bound on |value − exact value|

    @property
    def tolerance(self) -> float:
        """What a correct float64 implementation may be off by, plus this value's own error."""
        return value_tolerance(self.magnitude, self.n, self.defects, self.value) + self.error


def normalised(x: np.ndarray) -> np.ndarray:
    """x / Σx with the sum exact (fsum), as float64: each entry within u of the truth."""
    x = np.asarray(x, dtype=np.float64)
    return x / math.fsum(np.ravel(x))


def kl_terms(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The terms P_i·log(P_i/Q_i) in float64 (+inf where Q_i = 0 < P_i), and bounds on their errors.

    log(P_i/Q_i) when the ratio is a normal float64, else log P_i − log Q_i
    (the ratio would overflow or lose digits to underflow).
    """
    P, Q = normalised(p), normalised(q)
    with np.errstate(all="ignore"):
        ratio = P / Q
        direct = np.isfinite(ratio) & (ratio >= TINY)
        safe_P, safe_Q = np.where(P > 0, P, 1.0), np.where(Q > 0, Q, 1.0)
        log_ratio = np.where(direct, np.log(np.where(direct, ratio, 1.0)), 0.0)
        split = np.log(safe_P) - np.log(safe_Q)
        log_ratio = np.where(direct, log_ratio, split)
        terms = np.where(P > 0, P * log_ratio, 0.0)
        terms = np.where((P > 0) & (Q == 0), np.inf, terms)
        # P, Q within u each (fsum, one division); log within 2u; product within u.
        errors = np.where(
            direct,
            5 * U * P + 4 * U * np.abs(terms),
            U * P * (np.abs(np.log(safe_P)) + np.abs(np.log(safe_Q)) + 4) + 2 * U * np.abs(terms),
        )
    return terms, np.where(P > 0, errors, 0.0)


def entropy_terms(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The terms −P_i·log P_i in float64, and bounds on their errors."""
    P = normalised(p)
    with np.errstate(all="ignore"):
        terms = np.where(P > 0, -P * np.log(np.where(P > 0, P, 1.0)), 0.0)
    return terms, 2 * U * P + 4 * U * np.abs(terms)


def cross_entropy_terms(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The terms −P_i·log Q_i in float64 (+inf where Q_i = 0 < P_i), and bounds on their errors."""
    P, Q = normalised(p), normalised(q)
    with np.errstate(all="ignore"):
        terms = np.where(P > 0, -P * np.log(np.where(Q > 0, Q, 1.0)), 0.0)
        terms = np.where((P > 0) & (Q == 0), np.inf, terms)
    return terms, np.where(P > 0, 2 * U * P + 4 * U * np.abs(terms), 0.0)


_QUANTITIES = {
    "kl": (kl_terms, oracle.kl_exact),
    "entropy": (entropy_terms, oracle.entropy_exact),
    "cross_entropy": (cross_entropy_terms, oracle.cross_entropy_exact),
}


def of(quantity: str, *arrays: np.ndarray, exact: bool = True) -> Expected:
    """The expected value of ``quantity`` ("kl", "entropy" or "cross_entropy") on 1-D ``arrays``.

    ``exact=False`` skips mpmath: for checks that need only the tolerance, or
    compare the implementation with itself.
    """
    terms_of, exact_value = _QUANTITIES[quantity]
    terms, errors = terms_of(*arrays)
    n = int(np.size(arrays[0]))
    defects = tuple(defect(x) for x in arrays)
    if np.isinf(terms).any():
        return Expected(math.inf, math.inf, n, defects, 0.0)
    magnitude = math.fsum(np.abs(terms))
    if exact and n <= MPMATH_MAX_SIZE:
        value = float(exact_value(*arrays))
        return Expected(value, magnitude, n, defects, U * abs(value))
    value = math.fsum(terms)
    return Expected(value, magnitude, n, defects, math.fsum(errors) + U * abs(value))
