"""Error-free transformations and double-double sums, vectorised over numpy arrays.

The reference needs a few quantities to about twice float64 precision: the sums
Σp and Σq (whose rounding is what makes every literal Σ p·log(p/q) lose all
accuracy on nearly equal distributions) and the differences p_i·Σq − q_i·Σp.
These are the classic building blocks (Knuth's TwoSum, Dekker's TwoProduct), in
plain numpy so they work on any platform without an FMA instruction.

A double-double value is a pair ``(hi, lo)`` of float64 arrays with
``|lo| <= ulp(hi) / 2``; it represents ``hi + lo`` exactly.
"""

from __future__ import annotations

import numpy as np

# 2**27 + 1: splits a float64 into two halves of 26 bits each (Dekker 1971).
_SPLITTER = 134217729.0


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s + e == a + b`` exactly, with ``s = fl(a + b)`` (Knuth's TwoSum).

    Exact for any finite a, b (including subnormals) as long as ``a + b`` does
    not overflow.
    """
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p + e == a * b`` exactly, with ``p = fl(a * b)`` (Dekker's TwoProduct).

    Exact when neither the product nor the splitting overflows and the error
    term does not underflow: callers scale their operands into the normal range
    first (see :mod:`klspec.reference.divergences`).
    """
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def dd_sum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum over the last axis to double-double precision.

    Pairwise summation in which every addition is made error-free with
    :func:`two_sum`; the rounding errors, each at most half an ulp of a partial
    sum, are added up separately. The result ``hi + lo`` has a relative error
    of order ``log2(n) * 2**-106`` for non-negative inputs, far below float64
    resolution, and ``hi`` alone is the correctly rounded sum up to a
    rare last-bit tie. Cost: about 10 flops per element, memory one copy of x.
    """
    s = x
    errors = np.zeros(x.shape[:-1])
    while s.shape[-1] > 1:
        m = s.shape[-1] // 2
        t, e = two_sum(s[..., 0 : 2 * m : 2], s[..., 1 : 2 * m : 2])
        errors += e.sum(axis=-1)
        s = np.concatenate((t, s[..., 2 * m :]), axis=-1) if s.shape[-1] % 2 else t
    if s.shape[-1] == 0:
        return errors, np.zeros_like(errors)
    return two_sum(s[..., 0], errors)
