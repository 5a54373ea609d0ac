"""Inputs for the checks: the project's strategies, and a few built on top of them.

Every function here is a zero-argument strategy factory (checks build their
strategies lazily, on first run). The base draws always come from
:mod:`klspec.spec.strategies`; the ones built here impose what a clause is
about on those draws: an outcome with given zeros inserted into a drawn pair,
one-hot and uniform distributions, independent pairs, joint distributions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from klspec.spec import strategies
from klspec.spec.special_cases import Outcome, Shape

#: The support size of inputs whose truth comes from mpmath (cost grows with it).
SMALL = 32

Factory = Callable[[], st.SearchStrategy]


def pairs() -> st.SearchStrategy:
    return strategies.pairs()


def small_pairs() -> st.SearchStrategy:
    return strategies.pairs(max_size=SMALL)


def distributions() -> st.SearchStrategy:
    return strategies.distributions()


def near_equal_pairs() -> st.SearchStrategy:
    return strategies.near_equal_pairs()


def small_near_equal_pairs() -> st.SearchStrategy:
    return strategies.near_equal_pairs(max_size=SMALL)


def batched_pairs() -> st.SearchStrategy:
    return strategies.batched_pairs()


def triples() -> st.SearchStrategy:
    return strategies.triples()


def _case(regime: str, **arrays: np.ndarray):
    return strategies.Case(regime=regime, **arrays)


#: Values for the special outcome, by the sign its condition asks for: positive values
#: are not small enough to be a hazard of their own (klspec.spec.hazards).
_VALUES = {
    "> 0": st.floats(min_value=1e-3, max_value=0.9),
    "subnormal": st.one_of(
        st.sampled_from([5e-324, 1e-320, 1e-310, 2.225073858507201e-308]),
        st.floats(min_value=5e-324, max_value=2.225073858507201e-308, exclude_max=True),
    ),
    "< 1e-7": st.one_of(
        st.sampled_from([9.9e-8, 1e-9, 1e-16, 1e-100, 1e-300]),
        st.floats(min_value=2.2250738585072014e-308, max_value=1e-7, exclude_max=True),
    ),
}


def _insert(x: np.ndarray, k: int, value: float) -> np.ndarray:
    """x with ``value`` inserted at k, the others scaled by 1 − value (the sum stays ~1)."""
    return np.insert(x * (1.0 - value), k, value)


def with_outcome(condition: Outcome) -> Factory:
    """Hazard-free pairs (or distributions) with one more outcome, where ``condition`` holds.

    The base pair comes from :func:`klspec.spec.strategies.clean_pairs` (every entry
    above 3e-6 after the insertion): the inserted outcome is the only place where a
    hazard of :mod:`klspec.spec.hazards` holds, so a failure is about the condition.
    """

    @st.composite
    def build(draw):
        base = draw(strategies.clean_pairs(max_size=SMALL - 1), label="base")
        arrays = {"p": base.p} if condition.q is None else {"p": base.p, "q": base.q}
        k = draw(st.integers(0, base.p.size), label="k")
        signs = {"p": condition.p, "q": condition.q}
        built = {}
        for name, x in arrays.items():
            sign = signs[name]
            value = 0.0 if sign == "== 0" else draw(_VALUES[sign], label=f"{name}_k")
            built[name] = _insert(x, k, value)
        return _case(f"{base.regime}, with {condition}", **built)

    return lambda: build()


def shaped(shape: Shape) -> Factory:
    """One-hot or uniform distributions on 1 to 10**5 outcomes."""
    sizes = st.one_of(st.integers(1, SMALL), st.sampled_from([100, 1000, 4096, 10**5]))

    @st.composite
    def build(draw):
        n = draw(sizes, label="n")
        if shape.kind == "uniform":
            return _case("uniform", p=np.full(n, 1.0 / n))
        p = np.zeros(n)
        p[draw(st.integers(0, n - 1), label="k")] = 1.0
        return _case("one_hot", p=p)

    return lambda: build()


def independent_pairs() -> st.SearchStrategy:
    """Two independent small pairs (p1, q1) and (p2, q2), for KL of product distributions."""

    @st.composite
    def build(draw):
        a = draw(strategies.pairs(max_size=8), label="first")
        b = draw(strategies.pairs(max_size=8), label="second")
        return _case(f"{a.regime} ⊗ {b.regime}", p1=a.p, q1=a.q, p2=b.p, q2=b.q)

    return build()


def joint_pairs() -> st.SearchStrategy:
    """Joint distributions p, q of shape (rows, columns): a drawn pair reshaped."""

    @st.composite
    def build(draw):
        rows = draw(st.integers(1, 5), label="rows")
        columns = draw(st.integers(1, 5), label="columns")
        n = rows * columns
        base = draw(strategies.pairs(min_size=n, max_size=n))
        shape = (rows, columns)
        return _case(f"joint({base.regime})", p=base.p.reshape(shape), q=base.q.reshape(shape))

    return build()
