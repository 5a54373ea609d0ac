"""TEMPORARY naive stand-in with the final signatures; replaced by the exact algorithm."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference.validation import validate_base, validate_distributions


def _finish(value: np.ndarray, log_base: float | None):
    if log_base is not None:
        value = value / log_base
    return value[()] if value.ndim == 0 else value


def entropy(p: ArrayLike, *, axis: int = -1, base: float | None = None):
    (p,), _ = validate_distributions({"p": p}, axis=axis)
    lb = validate_base(base)
    P = p / p.sum(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        t = np.where(P > 0, -P * np.log(np.where(P > 0, P, 1.0)), 0.0)
    return _finish(t.sum(axis=-1), lb)


def kl_divergence(p: ArrayLike, q: ArrayLike, *, axis: int = -1, base: float | None = None):
    (p, q), _ = validate_distributions({"p": p, "q": q}, axis=axis)
    lb = validate_base(base)
    P = p / p.sum(axis=-1, keepdims=True)
    Q = q / q.sum(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        t = np.where(P > 0, P * (np.log(np.where(P > 0, P, 1.0)) - np.log(Q)), 0.0)
    return _finish(np.maximum(t.sum(axis=-1), 0.0), lb)


def cross_entropy(p: ArrayLike, q: ArrayLike, *, axis: int = -1, base: float | None = None):
    h = entropy(p, axis=axis, base=base)
    return h + kl_divergence(p, q, axis=axis, base=base)
