r"""Hazards: the conditions on probability vectors where KL code goes wrong, as data.

A hazard is a condition that holds at some outcome i of the inputs: ``p_i = 0 <
q_i``, ``q_i = 0 < p_i``, ``p_i = q_i = 0``, a subnormal entry, an entry below a
library's epsilon. Each has words (how a report names it), a test (where it holds)
and a removal (the same inputs with those outcomes left out and renormalised).

Two uses:

* **One condition per check.** A special-case check draws inputs where its own
  hazard is the only one (:func:`present` of its draws is exactly that hazard:
  ``tests/test_strategies.py``), so a failure is about what its name says.
* **Root causes.** When a check fails, :mod:`klspec.conformance.causes` tries the
  shrunk counterexample with each hazard removed (:func:`without`) and keeps the
  ones the failure needs: "NaN where p_i = q_i = 0".

Hazards are evaluated per outcome over a *group* of aligned arrays, in argument
order (``p, q`` or ``p, q, r``): arrays of the same shape in a case form a group
(``p1, q1`` and ``p2, q2`` are two groups), and the outcome axis is the last one.
An earlier array is the "P side", a later one the "Q side": for ``p, q, r``,
``q_i = 0 < r_i`` is a "zero on the P side" of KL(q‖r).

Conditions that cannot be removed without changing what a case is (two nearly
equal distributions, say) are *described* instead (:func:`conditions`): the report
says "on nearly equal p and q (relative difference 1e-12)".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Smallest positive normal float64; below it an entry is subnormal.
TINY = float(np.finfo(np.float64).tiny)

#: Entries below this (and normal) are "tiny": keras clips probabilities at 1e-7, and
#: float32 code loses them relative to 1 (its epsilon is 1.2e-7).
EPSILON = 1e-7

Arrays = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Hazard:
    """A condition that holds at some outcomes of a group of aligned arrays.

    ``words`` name it for two or more arrays (``p_i = q_i = 0``), ``single`` for one
    (entropy's ``p_i = 0``); ``at(arrays)`` is the boolean mask of the outcomes where
    it holds (last axis; for batched arrays, where it holds in any row).
    """

    key: str
    words: str
    single: str
    at: Callable[[Arrays], np.ndarray]

    def phrase(self, arity: int) -> str:
        return self.single if arity == 1 else self.words


def _any_rows(mask: np.ndarray) -> np.ndarray:
    """Reduce a mask over the batch axes: an outcome is hit if any row is."""
    return mask.reshape(-1, mask.shape[-1]).any(axis=0) if mask.ndim > 1 else mask


def _zero_first(arrays: Arrays) -> np.ndarray:
    # A zero on the P side with mass on the Q side: 0·log(0/q) = 0 must be used.
    if len(arrays) == 1:
        return _any_rows(arrays[0] == 0)
    hit = np.zeros(arrays[0].shape, dtype=bool)
    for k, x in enumerate(arrays[:-1]):
        later = np.logical_or.reduce([y > 0 for y in arrays[k + 1 :]])
        hit |= (x == 0) & later
    return _any_rows(hit)


def _zero_later(arrays: Arrays) -> np.ndarray:
    # Mass on the P side where the Q side has none: KL is +inf.
    hit = np.zeros(arrays[0].shape, dtype=bool)
    for k, x in enumerate(arrays[:-1]):
        later = np.logical_or.reduce([y == 0 for y in arrays[k + 1 :]])
        hit |= (x > 0) & later
    return _any_rows(hit)


def _zero_everywhere(arrays: Arrays) -> np.ndarray:
    if len(arrays) == 1:
        return np.zeros(arrays[0].shape[-1], dtype=bool)
    return _any_rows(np.logical_and.reduce([x == 0 for x in arrays]))


def _subnormal(arrays: Arrays) -> np.ndarray:
    return _any_rows(np.logical_or.reduce([(x > 0) & (x < TINY) for x in arrays]))


def _tiny(arrays: Arrays) -> np.ndarray:
    return _any_rows(np.logical_or.reduce([(x >= TINY) & (x < EPSILON) for x in arrays]))


#: Every hazard, by key, in the order reports name them.
HAZARDS: dict[str, Hazard] = {
    h.key: h
    for h in (
        Hazard("p_zero", "p_i = 0 < q_i", "p_i = 0", _zero_first),
        Hazard("q_zero", "q_i = 0 < p_i", "q_i = 0 < p_i", _zero_later),
        Hazard("both_zero", "p_i = q_i = 0", "p_i = q_i = 0", _zero_everywhere),
        Hazard(
            "subnormal", "an entry is subnormal (below 2.2e-308)", "p_i is subnormal", _subnormal
        ),
        Hazard("tiny", "an entry is below 1e-7 (a library's epsilon)", "p_i is below 1e-7", _tiny),
    )
}


def groups(arrays: Mapping[str, np.ndarray]) -> list[tuple[str, ...]]:
    """The names of the arrays, grouped by shape (aligned arrays), in argument order."""
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for name, x in arrays.items():
        x = np.asarray(x)
        if x.dtype.kind == "f" and x.ndim >= 1 and x.shape[-1] > 0:
            by_shape.setdefault(x.shape, []).append(name)
    return [tuple(names) for names in by_shape.values()]


def _is_probabilities(arrays: Arrays) -> bool:
    return all(np.isfinite(x).all() and (x >= 0).all() and (x > 0).any() for x in arrays)


def present(arrays: Mapping[str, np.ndarray]) -> frozenset[str]:
    """The keys of the hazards that hold somewhere in these arrays (probability vectors)."""
    found = set()
    for names in groups(arrays):
        group = tuple(np.asarray(arrays[n]) for n in names)
        if not _is_probabilities(group):
            continue
        found.update(key for key, h in HAZARDS.items() if h.at(group).any())
    return frozenset(found)


def arity(arrays: Mapping[str, np.ndarray]) -> int:
    """How many aligned arrays the largest group has (1 for entropy's p alone)."""
    return max((len(g) for g in groups(arrays)), default=0)


def _normalised(x: np.ndarray) -> np.ndarray:
    sums = np.array([math.fsum(row) for row in x.reshape(-1, x.shape[-1])])
    return (x.reshape(-1, x.shape[-1]) / sums[:, None]).reshape(x.shape)


def without(
    arrays: Mapping[str, np.ndarray], keys: frozenset[str] | set[str], *, fill: float | None = None
) -> dict | None:
    """The arrays with every outcome where one of these hazards holds left out, renormalised.

    With ``fill``, those outcomes are kept and set to ``fill`` in every array of the
    group instead (for a check whose input must keep its size or stay unequal).
    Arrays that are not probability vectors pass through unchanged. None when the
    removal leaves nothing to compute with (an empty support, or a distribution with
    no mass left).
    """
    out = {name: np.asarray(x) for name, x in arrays.items()}
    for names in groups(arrays):
        group = tuple(out[n] for n in names)
        if not _is_probabilities(group):
            continue
        drop = np.zeros(group[0].shape[-1], dtype=bool)
        for key in keys:
            drop |= HAZARDS[key].at(group)
        if not drop.any():
            continue
        if fill is not None:
            for name, x in zip(names, group, strict=True):
                out[name] = _normalised(np.where(drop, fill, x))
            continue
        keep = ~drop
        if not keep.any():
            return None
        for name, x in zip(names, group, strict=True):
            kept = x[..., keep]
            rows = kept.reshape(-1, kept.shape[-1])
            if not (rows > 0).any(axis=1).all():
                return None
            out[name] = _normalised(kept)
    return out


# --- conditions that are described, not removed -------------------------------------


def near_equal(p: np.ndarray, q: np.ndarray) -> float | None:
    """The largest relative difference of p and q where both are positive, if they are nearly
    equal: the same zeros and every positive entry within a relative 1e-6; else None."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or not ((p > 0) == (q > 0)).all() or not (p > 0).any():
        return None
    both = p > 0
    difference = float(np.max(np.abs(p[both] - q[both]) / np.maximum(p[both], q[both])))
    return difference if difference <= 1e-6 else None


def conditions(arrays: Mapping[str, np.ndarray], precision: Any = None) -> list[str]:
    """Conditions of these inputs that a report should mention, in words.

    A log-ratio counts as small below √u of the ``precision`` the target computes in
    (1.5e-8 in float64, 2.4e-4 in float32), where e^d − 1 − d starts to cancel.
    """
    found = []
    names = list(arrays)
    for a, b in (("p", "q"), ("logits_p", "logits_q")):
        if a in names and b in names:
            x, y = np.asarray(arrays[a]), np.asarray(arrays[b])
            if x.shape == y.shape and np.array_equal(x, y):
                found.append(f"equal {a} and {b}")
            elif a == "p" and (d := near_equal(x, y)) is not None:
                found.append(f"nearly equal p and q (relative difference {d:.0e})")
            elif a == "logits_p" and x.shape == y.shape and np.isfinite(x).all():
                gap = float(np.max(np.abs(x - y)))
                if 0 < gap <= 1e-6 * max(1.0, float(np.max(np.abs(x)))):
                    found.append(f"nearly equal logits (largest difference {gap:.0e})")
    if "logp" in names and "ref_logp" in names:
        d = np.abs(np.asarray(arrays["ref_logp"]) - np.asarray(arrays["logp"]))
        root_u = math.sqrt(2.0**-53 if precision is None else precision.u)
        small = d[(d > 0) & (d < root_u)]
        if small.size:
            found.append(f"a log-ratio as small as {float(small.min()):.0e}")
    return found
