"""TEMPORARY minimal stand-in; the real module is being written to the contract below.

Contract
--------
validate_distributions(named, *, axis) -> (arrays, batch_shape)
    named: dict name -> array-like, in argument order (e.g. {"p": p, "q": q}).
    Returns a tuple of float64 arrays, each with the support axis moved last and
    the batch axes broadcast to the common batch shape, plus that batch shape.
    Never modifies or returns the caller's array object. Raises TypeError /
    ValueError with messages naming the argument, the problem and the position.
validate_base(base) -> float | None
    None for nats; otherwise log(base) as a float. Raises for bad bases.
sum_tolerance(dtype) -> float
    How far from 1 a distribution's sum may be for inputs of that dtype.
"""

from __future__ import annotations

import math

import numpy as np


def sum_tolerance(dtype) -> float:
    return float(np.sqrt(np.finfo(np.result_type(dtype, np.float16)).eps))


def validate_base(base):
    if base is None:
        return None
    return math.log(base)


def validate_distributions(named, *, axis):
    arrays = [np.moveaxis(np.array(v, dtype=np.float64), axis, -1) for v in named.values()]
    batch = np.broadcast_shapes(*(a.shape[:-1] for a in arrays))
    arrays = tuple(np.broadcast_to(a, (*batch, a.shape[-1])) for a in arrays)
    return arrays, batch
