"""Hypothesis strategies that reach the hard numerical regions of KL divergence on purpose.

Every strategy here draws a :class:`Case`: an immutable bundle of named, read-only
float64 arrays (``case.p``, ``case.q``, ``case.r``) with a short ``regime`` tag and a
``repr`` that rebuilds the arrays bit for bit. Property checks draw cases and hand the
arrays to the implementation under test; when a check fails, hypothesis prints the
shrunk case, and its repr is the reproduction line.

Why these regimes
-----------------
A literal ``sum(p * log(p / q))`` is correct on generic inputs and wrong, sometimes by
orders of magnitude, on the inputs below. Each is generated deliberately rather than
hoped for:

``generic``
    Independent positive weights in [1e-3, 1], normalised. The baseline.
``uniform`` / ``uniform(p)``
    ``p`` uniform; ``q`` uniform too (``uniform``: KL is exactly 0) or generic
    (``uniform(p)``: KL(p‖q) = log n - H(q) in closed form).
``identical(<base>)``
    ``q`` is a bitwise copy of ``p`` drawn from ``<base>``; KL must be exactly 0,
    including through zeros and subnormals.
``one_hot``
    ``p`` is a point mass; ``q`` is the same point mass or generic. ``H(p) = 0`` and
    ``KL = -log q_h``; implementations that compute ``0 * log 0`` get NaN.
``size1``
    Support of one outcome: every distribution is ``[1.0]``.
``zeros`` / ``zeros(shared)``
    Exact zeros in ``p`` (where ``0 log 0 = 0`` must be used), with ``q > 0`` there or,
    for ``zeros(shared)``, ``q = 0`` there too (an outcome impossible under both).
``near_equal(1e-k)``
    ``q = p * (1 + 10**-k * z)`` renormalised, ``z_i`` uniform in [-1, 1], k = 2..15.
    KL is O(10**-2k) while each term is O(10**-k): the naive sum cancels
    catastrophically and the rounding of the normalisation alone dominates the answer.
    A base regime other than generic is appended: ``near_equal(1e-12, zeros)``.
``dynamic_range``
    Entries spanning 200 to 300 decades (``10**-300 .. 1``); ``log`` of the ratio
    reaches ±690 and the small terms must not be lost or overflow.
``subnormal``
    Subnormal probabilities (``5e-324``, ``1e-310`` …) next to O(1) entries, in ``p``
    and in ``q``; ``p log(p/q)`` underflows, ``p / q`` overflows, and flush-to-zero
    hardware differs from IEEE.
``q_zero``
    Some ``q_i = 0 < p_i``: KL is +inf. Only :func:`pairs_q_zero_where_p_positive`
    draws it; every other strategy keeps KL finite.
``large(n=N, <regime>)``
    A seeded support of ``N`` elements (up to 10**5) in one of the regimes above, built
    by :func:`build_case`; blocked and pairwise summation errors grow with ``N``.
``batched(...)``
    Arrays of shape ``(*batch, n)`` whose rows mix the regimes above.

Tags are ``name`` or ``name(detail)``; ``case.regime.split("(")[0]`` is the family.

How the strategies are built
----------------------------
Small supports (up to 32 elements) are drawn element by element with hypothesis, so
a failure shrinks to a tiny example. Large supports are drawn as *parameters* (regime,
``n``, ``seed``, exponent …) and built with ``numpy.random.default_rng(seed)`` by
:func:`build_case`; shrinking then works on the parameters, and the repr is the
``build_case(...)`` call. Both kinds are mixed with ``st.one_of``, simplest branch
first, so failures shrink towards small generic cases. Each drawn case records a
hypothesis ``event`` (``regime: <family>``), visible with
``--hypothesis-show-statistics``.

The strategies are ``@st.composite`` strategies, whose ``draw`` cannot take a
descriptive label; label at the point of use instead:
``data.draw(pairs(), label="case")``.

Invariants (tested in ``tests/test_strategies.py``): arrays are float64, read-only,
finite and non-negative; each distribution (each row, if batched) has a positive
entry and sums to 1 within float64 rounding (normalised by dividing by ``math.fsum``;
subnormal entries are added after normalisation, below the rounding of the sum);
``q_i > 0`` wherever ``p_i > 0`` and, for triples, ``r_i > 0`` wherever ``q_i > 0``,
except in :func:`pairs_q_zero_where_p_positive`.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp
from numpy.typing import ArrayLike

__all__ = [
    "LARGE_MAX",
    "SMALL_MAX",
    "Case",
    "batched_pairs",
    "build_case",
    "clean_pairs",
    "distributions",
    "near_equal_pairs",
    "pairs",
    "pairs_q_zero_where_p_positive",
    "pairs_with_zeros",
    "triples",
]

#: Largest support drawn element by element; bigger supports are seeded.
SMALL_MAX = 32
#: Default upper bound on the support size of seeded cases.
LARGE_MAX = 10**5
#: Seeded supports start here when the size bounds allow it.
_LARGE_MIN = 1_000

_SMALLEST_SUBNORMAL = 5e-324
_LARGEST_SUBNORMAL = 2.225073858507201e-308
_MIN_EXPONENT, _MAX_EXPONENT = -15, -2


# --------------------------------------------------------------------------- Case


class Case:
    """An immutable bundle of named float64 arrays drawn by a strategy.

    ``Case(p=[0.7, 0.3], q=np.array([0.5, 0.5]))`` copies each argument into a
    read-only float64 array; the arrays are reachable as attributes (``case.p``) and,
    in order, as ``case.arrays``. ``regime`` is the short tag of the region the case
    comes from; ``recipe`` is the ``build_case(...)`` call that rebuilds a seeded case
    (``None`` for cases given element by element).

    ``repr(case)`` evaluates, with ``numpy as np``, ``Case`` and ``build_case`` in
    scope, to a case with bit-identical arrays: the recipe for seeded cases, else
    ``Case(p=np.array([...]), ...)`` with every element written by
    ``repr(float(x))``, which round-trips exactly (subnormals included).
    """

    __slots__ = ("_arrays", "_recipe", "_regime")

    def __init__(
        self, *, regime: str = "given", recipe: str | None = None, **arrays: ArrayLike
    ) -> None:
        if not arrays:
            raise TypeError("Case() needs at least one named array, e.g. Case(p=[0.5, 0.5])")
        frozen = {}
        for name, value in arrays.items():
            if name.startswith("_"):
                raise TypeError(f"array name {name!r} must not start with an underscore")
            a = np.array(value, dtype=np.float64, copy=True)
            a.flags.writeable = False
            frozen[name] = a
        object.__setattr__(self, "_arrays", frozen)
        object.__setattr__(self, "_regime", str(regime))
        object.__setattr__(self, "_recipe", recipe)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, in argument order (a fresh dict; the arrays are shared)."""
        return dict(self._arrays)

    @property
    def regime(self) -> str:
        """Short tag of the region this case was drawn from, e.g. ``"near_equal(1e-12)"``."""
        return self._regime

    @property
    def recipe(self) -> str | None:
        """The ``build_case(...)`` call that rebuilds this case, or ``None``."""
        return self._recipe

    def __getattr__(self, name: str) -> np.ndarray:
        # Only called when normal lookup fails; slots are looked up normally.
        if not name.startswith("_"):
            arrays = object.__getattribute__(self, "_arrays")
            if name in arrays:
                return arrays[name]
            held = ", ".join(arrays)
            raise AttributeError(f"this Case has no array {name!r}; it holds {held}")
        raise AttributeError(name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Case is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Case is immutable; cannot delete {name!r}")

    def __reduce__(self):
        return (_restore_case, (self._arrays, self._regime, self._recipe))

    def __repr__(self) -> str:
        if self._recipe is not None:
            return self._recipe
        parts = [f"{name}={_array_literal(a)}" for name, a in self._arrays.items()]
        if self._regime != "given":
            parts.append(f"regime={self._regime!r}")
        return f"Case({', '.join(parts)})"


def _restore_case(arrays: Mapping[str, np.ndarray], regime: str, recipe: str | None) -> Case:
    return Case(regime=regime, recipe=recipe, **arrays)


def _float_literal(x: float) -> str:
    # repr(float) is the shortest string that round-trips, subnormals included.
    if math.isfinite(x):
        return repr(x)
    if math.isnan(x):
        return "np.nan"
    return "np.inf" if x > 0 else "-np.inf"


def _nested_literal(a: np.ndarray) -> str:
    if a.ndim == 0:
        return _float_literal(float(a))
    return "[" + ", ".join(_nested_literal(row) for row in a) + "]"


def _array_literal(a: np.ndarray) -> str:
    if a.size == 0:  # a nested [] would lose the shape
        return f"np.zeros({a.shape!r})"
    return f"np.array({_nested_literal(a)})"


# --------------------------------------------------------------- shared helpers


def _normalise(weights: ArrayLike) -> np.ndarray:
    """Divide by the exactly rounded sum, so the result sums to 1 within a few ulps."""
    w = np.asarray(weights, dtype=np.float64)
    return w / math.fsum(w.tolist())


def _family(regime: str) -> str:
    return regime.split("(", 1)[0]


def _public_name(name: str):
    """Name a composite after the public function that returns it, for its repr."""

    def rename(f):
        f.__name__ = f.__qualname__ = name
        return st.composite(f)

    return rename


def _check_sizes(
    min_size: int, max_size: int | None, *, least: int = 1, default_max: int = LARGE_MAX
) -> tuple[int, int]:
    for name, value in (("min_size", min_size), ("max_size", max_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"{name}={value!r} must be an int")
    if min_size < 1:
        raise InvalidArgument(f"min_size={min_size} must be >= 1; a support has an outcome")
    hi = default_max if max_size is None else max_size
    lo = max(min_size, least)
    if hi < lo:
        raise InvalidArgument(
            f"max_size={max_size} is below the smallest support this strategy can draw "
            f"({lo}); raise max_size"
        )
    return lo, hi


def _seeded_range(lo: int, hi: int) -> tuple[int, int] | None:
    """Support sizes for seeded cases: from 1000 if the bounds allow, never below 33."""
    if hi <= SMALL_MAX:
        return None
    start = _LARGE_MIN if hi >= _LARGE_MIN else SMALL_MAX + 1
    return max(lo, start), hi


# ------------------------------------------------ small regimes, element-wise draws
#
# Each function draws ``k`` distributions of size ``n`` with the chain property
# supp(x_1) ⊆ supp(x_2) ⊆ … (so every KL(x_i ‖ x_j), i < j, is finite) and returns
# them with the regime tag.

Draw = Callable[..., object]

_WEIGHT = st.floats(min_value=1e-3, max_value=1.0)
_TINY = st.one_of(
    st.sampled_from([5e-324, 1e-323, 1e-320, 1e-315, 1e-310, _LARGEST_SUBNORMAL]),
    st.floats(min_value=_SMALLEST_SUBNORMAL, max_value=_LARGEST_SUBNORMAL),
)


def _weights(draw: Draw, n: int) -> list[float]:
    return draw(st.lists(_WEIGHT, min_size=n, max_size=n))


def _mask(draw: Draw, n: int) -> list[bool]:
    return draw(st.lists(st.booleans(), min_size=n, max_size=n))


def _two_indices(draw: Draw, n: int) -> tuple[int, int]:
    """Two distinct indices of a support of size n >= 2."""
    a = draw(st.integers(0, n - 1))
    b = (a + 1 + draw(st.integers(0, n - 2))) % n
    return a, b


def _masked_weights(draw: Draw, zero: list[bool]) -> np.ndarray:
    return _normalise([0.0 if z else draw(_WEIGHT) for z in zero])


def _small_generic(draw: Draw, n: int, k: int):
    return [_normalise(_weights(draw, n)) for _ in range(k)], "generic"


def _small_size1(draw: Draw, n: int, k: int):
    return [np.ones(1) for _ in range(k)], "size1"


def _small_uniform(draw: Draw, n: int, k: int):
    out = [_normalise(np.ones(n))]
    for _ in range(k - 1):
        spread = draw(st.booleans())  # shrinks to False: all uniform
        out.append(_normalise(_weights(draw, n) if spread else np.ones(n)))
    all_uniform = all(np.array_equal(x, out[0]) for x in out)
    return out, "uniform" if all_uniform else "uniform(p)"


def _small_one_hot(draw: Draw, n: int, k: int):
    hot = draw(st.integers(0, n - 1))
    point = np.zeros(n)
    point[hot] = 1.0
    out = [point]
    for _ in range(k - 1):
        # Once a distribution is spread, later ones must cover its support.
        if np.count_nonzero(out[-1]) == 1 and not draw(st.booleans()):
            out.append(point.copy())
        else:
            out.append(_normalise(_weights(draw, n)))
    return out, "one_hot"


def _small_zeros(draw: Draw, n: int, k: int):
    zero = _mask(draw, n)
    positive_at, zero_at = _two_indices(draw, n)
    zero[positive_at], zero[zero_at] = False, True
    out = [_masked_weights(draw, zero)]
    for _ in range(k - 1):
        # A later distribution may stay zero only where the earlier one is zero.
        zero = [z and draw(st.booleans()) for z in zero]
        out.append(_masked_weights(draw, zero))
    return out, "zeros(shared)" if k > 1 and any(zero) else "zeros"


def _small_dynamic_range(draw: Draw, n: int, k: int):
    top, bottom = _two_indices(draw, n)
    out = []
    for _ in range(k):
        decades = draw(st.floats(min_value=200.0, max_value=300.0))
        u = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
        u[top], u[bottom] = 0.0, 1.0
        # 10**-300 / n stays normal for n <= 10**5, so normalising loses nothing.
        out.append(_normalise(10.0 ** (-decades * np.array(u))))
    return out, "dynamic_range"


def _small_subnormal(draw: Draw, n: int, k: int):
    big_at, tiny_at = _two_indices(draw, n)
    out = []
    for j in range(k):
        tiny = _mask(draw, n)
        tiny[big_at] = False
        if j == 0:
            tiny[tiny_at] = True
        x = _masked_weights(draw, tiny)
        # Tiny entries go in after normalising: dividing them would round them to 0,
        # and adding them moves the sum by less than its rounding.
        for i in np.flatnonzero(tiny):
            x[i] = draw(_TINY)
        out.append(x)
    return out, "subnormal"


_NEAR_EQUAL_BASES = ("generic", "zeros", "dynamic_range", "uniform")


def _small_near_equal(draw: Draw, n: int, k: int, exponents=(_MIN_EXPONENT, _MAX_EXPONENT)):
    base = draw(st.sampled_from([b for b in _NEAR_EQUAL_BASES if n >= _SMALL[b].min_n]))
    (p,), _ = _SMALL[base].draw(draw, n, 1)
    exponent = -draw(st.integers(-exponents[1], -exponents[0]))
    eps = 10.0**exponent
    out = [p]
    for _ in range(k - 1):
        z = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
        out.append(_normalise(p * (1.0 + eps * z)))
    detail = f"1e{exponent}" if base == "generic" else f"1e{exponent}, {base}"
    return out, f"near_equal({detail})"


def _small_identical(draw: Draw, n: int, k: int):
    bases = [b for b in _IDENTICAL_BASES if _SMALL[b].min_n <= n <= _SMALL[b].max_n]
    base = draw(st.sampled_from(bases))
    (p,), tag = _SMALL[base].draw(draw, n, 1)
    return [p.copy() for _ in range(k)], f"identical({tag})"


def _small_q_zero(draw: Draw, n: int, k: int):
    # p positive at `a` where q is 0; q positive at `b` so that q is a distribution.
    a, b = _two_indices(draw, n)
    p_zero = _mask(draw, n)
    p_zero[a] = False
    q_zero = _mask(draw, n)
    q_zero[a], q_zero[b] = True, False
    return [_masked_weights(draw, p_zero), _masked_weights(draw, q_zero)], "q_zero"


@dataclass(frozen=True)
class _Regime:
    draw: Callable
    min_n: int = 1
    max_n: int = SMALL_MAX
    min_k: int = 1


_SMALL: dict[str, _Regime] = {
    "generic": _Regime(_small_generic),
    "uniform": _Regime(_small_uniform),
    "identical": _Regime(_small_identical, min_k=2),
    "one_hot": _Regime(_small_one_hot),
    "size1": _Regime(_small_size1, max_n=1),
    "zeros": _Regime(_small_zeros, min_n=2),
    "near_equal": _Regime(_small_near_equal, min_k=2),
    "dynamic_range": _Regime(_small_dynamic_range, min_n=2),
    "subnormal": _Regime(_small_subnormal, min_n=2),
    "q_zero": _Regime(_small_q_zero, min_n=2, min_k=2),
}
_IDENTICAL_BASES = ("generic", "uniform", "one_hot", "size1", "zeros", "dynamic_range", "subnormal")
# Simplest first: st.one_of shrinks towards its first branch.
_MIXED = (
    "generic",
    "uniform",
    "identical",
    "one_hot",
    "size1",
    "zeros",
    "near_equal",
    "dynamic_range",
    "subnormal",
)


@st.composite
def _small_case(draw, regime: str, names: str, lo: int, hi: int, **options) -> Case:
    spec = _SMALL[regime]
    n = draw(st.integers(max(lo, spec.min_n), min(hi, spec.max_n)))
    arrays, tag = spec.draw(draw, n, len(names), **options)
    return Case(regime=tag, **dict(zip(names, arrays, strict=True)))


# -------------------------------------------------- seeded regimes, built by numpy


def _rng_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    w = rng.gamma(rng.uniform(0.3, 3.0), size=n)
    return np.maximum(w, np.finfo(np.float64).tiny)  # a 0 here has probability ~1e-90


def _rng_two_indices(rng: np.random.Generator, n: int) -> tuple[int, int]:
    a = int(rng.integers(n))
    return a, (a + 1 + int(rng.integers(n - 1))) % n


def _seeded_generic(rng, n, k):
    return [_normalise(_rng_weights(rng, n)) for _ in range(k)], "generic"


def _seeded_uniform(rng, n, k):
    out = [_normalise(np.ones(n))]
    for _ in range(k - 1):
        out.append(_normalise(np.ones(n) if rng.random() < 0.5 else _rng_weights(rng, n)))
    all_uniform = all(np.array_equal(x, out[0]) for x in out)
    return out, "uniform" if all_uniform else "uniform(p)"


def _seeded_one_hot(rng, n, k):
    point = np.zeros(n)
    point[rng.integers(n)] = 1.0
    out = [point]
    for _ in range(k - 1):
        spread = np.count_nonzero(out[-1]) > 1 or rng.random() < 0.5
        out.append(_normalise(_rng_weights(rng, n)) if spread else point.copy())
    return out, "one_hot"


def _seeded_zeros(rng, n, k):
    zero = rng.random(n) < rng.uniform(0.1, 0.9)
    positive_at, zero_at = _rng_two_indices(rng, n)
    zero[positive_at], zero[zero_at] = False, True
    out = [_normalise(np.where(zero, 0.0, _rng_weights(rng, n)))]
    for _ in range(k - 1):
        zero = zero & (rng.random(n) < rng.uniform(0.0, 1.0))
        out.append(_normalise(np.where(zero, 0.0, _rng_weights(rng, n))))
    return out, "zeros(shared)" if k > 1 and zero.any() else "zeros"


def _seeded_dynamic_range(rng, n, k):
    top, bottom = _rng_two_indices(rng, n)
    out = []
    for _ in range(k):
        u = rng.random(n)
        u[top], u[bottom] = 0.0, 1.0
        out.append(_normalise(10.0 ** (-rng.uniform(200.0, 300.0) * u)))
    return out, "dynamic_range"


def _seeded_subnormal(rng, n, k):
    big_at, tiny_at = _rng_two_indices(rng, n)
    out = []
    for j in range(k):
        tiny = rng.random(n) < rng.uniform(0.01, 0.5)
        tiny[big_at] = False
        if j == 0:
            tiny[tiny_at] = True
        x = _normalise(np.where(tiny, 0.0, _rng_weights(rng, n)))
        # Log-uniform over the subnormal range, a tenth of them the smallest one;
        # inserted after normalising (see _small_subnormal).
        values = np.maximum(10.0 ** -rng.uniform(307.7, 323.3, n), _SMALLEST_SUBNORMAL)
        values[rng.random(n) < 0.1] = _SMALLEST_SUBNORMAL
        x[tiny] = values[tiny]
        out.append(x)
    return out, "subnormal"


def _seeded_near_equal(rng, n, k, *, exponent=-12):
    p = _normalise(_rng_weights(rng, n))
    eps = 10.0**exponent
    out = [p]
    for _ in range(k - 1):
        out.append(_normalise(p * (1.0 + eps * rng.uniform(-1.0, 1.0, n))))
    return out, f"near_equal(1e{exponent})"


def _seeded_identical(rng, n, k, *, base="generic"):
    (p,), tag = _SEEDED[base].build(rng, n, 1)
    return [p.copy() for _ in range(k)], f"identical({tag})"


def _seeded_q_zero(rng, n, k):
    a, b = _rng_two_indices(rng, n)
    p_zero = rng.random(n) < rng.uniform(0.0, 0.5)
    p_zero[a] = False
    q_zero = rng.random(n) < rng.uniform(0.0, 0.5)
    q_zero[a], q_zero[b] = True, False
    p = _normalise(np.where(p_zero, 0.0, _rng_weights(rng, n)))
    q = _normalise(np.where(q_zero, 0.0, _rng_weights(rng, n)))
    return [p, q], "q_zero"


@dataclass(frozen=True)
class _Seeded:
    build: Callable
    min_n: int = 1
    min_k: int = 1
    max_k: int = 26
    params: tuple[str, ...] = ()


_SEEDED: dict[str, _Seeded] = {
    "generic": _Seeded(_seeded_generic),
    "uniform": _Seeded(_seeded_uniform),
    "identical": _Seeded(_seeded_identical, min_k=2, params=("base",)),
    "one_hot": _Seeded(_seeded_one_hot),
    "zeros": _Seeded(_seeded_zeros, min_n=2),
    "near_equal": _Seeded(_seeded_near_equal, min_k=2, params=("exponent",)),
    "dynamic_range": _Seeded(_seeded_dynamic_range, min_n=2),
    "subnormal": _Seeded(_seeded_subnormal, min_n=2),
    "q_zero": _Seeded(_seeded_q_zero, min_n=2, min_k=2, max_k=2),
}
_SEEDED_IDENTICAL_BASES = ("generic", "uniform", "one_hot", "zeros", "dynamic_range", "subnormal")


def _as_int(value: object, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)  # accepts numpy integers, rejects 2.0
    except TypeError:
        raise TypeError(f"{name}={value!r} must be an int") from None


def build_case(regime: str, *, n: int, seed: int, names: str = "pq", **params: object) -> Case:
    """Build a seeded case: the arrays a ``build_case(...)`` reproduction line names.

    ``regime`` is one of ``generic``, ``uniform``, ``identical`` (param ``base``: the
    regime ``p`` is drawn from), ``one_hot``, ``zeros``, ``near_equal`` (param
    ``exponent``: the perturbation is ``10**exponent``, -15..-2), ``dynamic_range``,
    ``subnormal``, ``q_zero`` (pairs only: some ``q_i = 0 < p_i``). ``n`` is the
    support size, ``seed`` seeds ``numpy.random.default_rng``; ``names`` are the
    array names, one letter each, in chain order (``"p"``, ``"pq"``, ``"pqr"``).
    The same arguments always give bit-identical arrays (for a given numpy), and the
    returned case's repr is this call. Its regime is ``large(n=N, <regime tag>)``.
    """
    if regime not in _SEEDED:
        raise ValueError(f"regime={regime!r} is unknown; choose one of {', '.join(_SEEDED)}")
    spec = _SEEDED[regime]
    n, seed = _as_int(n, "n"), _as_int(seed, "seed")
    if n < spec.min_n:
        raise ValueError(f"n={n} must be >= {spec.min_n} for regime {regime!r}")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    letters = isinstance(names, str) and names.isascii() and names.isalpha()
    if not letters or len(set(names)) != len(names):
        raise ValueError(f"names={names!r} must be distinct one-letter names, e.g. 'pq'")
    if not spec.min_k <= len(names) <= spec.max_k:
        raise ValueError(
            f"regime {regime!r} builds {spec.min_k} to {spec.max_k} arrays; got names={names!r}"
        )
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise TypeError(
            f"build_case({regime!r}) got unknown param {unknown[0]!r}; allowed: {allowed}"
        )
    if "exponent" in params:
        params["exponent"] = _as_int(params["exponent"], "exponent")
        if not _MIN_EXPONENT <= params["exponent"] <= _MAX_EXPONENT:
            raise ValueError(f"exponent={params['exponent']} must be in -15..-2")
    if "base" in params and params["base"] not in _SEEDED_IDENTICAL_BASES:
        bases = ", ".join(_SEEDED_IDENTICAL_BASES)
        raise ValueError(f"base={params['base']!r} must be one of {bases}")
    if params.get("base") in ("zeros", "dynamic_range", "subnormal") and n < 2:
        raise ValueError(f"n={n} must be >= 2 for base {params['base']!r}")

    arrays, tag = spec.build(np.random.default_rng(seed), n, len(names), **params)
    call = [repr(regime), f"n={n}", f"seed={seed}"]
    call += [f"{key}={value!r}" for key, value in params.items()]
    if names != "pq":
        call.append(f"names={names!r}")
    return Case(
        regime=f"large(n={n}, {tag})",
        recipe=f"build_case({', '.join(call)})",
        **dict(zip(names, arrays, strict=True)),
    )


@st.composite
def _seeded_case(
    draw, regimes: tuple[str, ...], names: str, lo: int, hi: int, exponents=None
) -> Case:
    regime = draw(st.sampled_from(regimes))
    n = draw(st.integers(lo, hi))
    seed = draw(st.integers(0, 2**32 - 1))
    params: dict[str, object] = {}
    if regime == "near_equal":
        low, high = exponents or (_MIN_EXPONENT, _MAX_EXPONENT)
        params["exponent"] = -draw(st.integers(-high, -low))
    elif regime == "identical":
        params["base"] = draw(st.sampled_from(_SEEDED_IDENTICAL_BASES))
    return build_case(regime, n=n, seed=seed, names=names, **params)


#: About one case in this many is seeded, when both kinds fit the size bounds.
_SEEDED_ODDS = 8


@functools.cache
def _mix(
    names: str, regimes: tuple[str, ...], lo: int, hi: int, exponents=None
) -> tuple[st.SearchStrategy[Case] | None, st.SearchStrategy[Case] | None]:
    """The element-wise strategy (one branch per regime that fits) and the seeded one."""
    k = len(names)
    options = {} if exponents is None else {"exponents": exponents}
    branches = [
        _small_case(r, names, lo, hi, **(options if r == "near_equal" else {}))
        for r in regimes
        if k >= _SMALL[r].min_k and max(lo, _SMALL[r].min_n) <= min(hi, _SMALL[r].max_n)
    ]
    small = st.one_of(branches) if branches else None
    seeded = None
    sizes = _seeded_range(lo, hi)
    fits = tuple(r for r in regimes if r in _SEEDED and k >= _SEEDED[r].min_k)
    if sizes is not None and fits:
        seeded = _seeded_case(fits, names, *sizes, exponents=exponents)
    return small, seeded


def _drawn(draw, mix) -> Case:
    small, seeded = mix
    # The gate shrinks to 0, i.e. towards the element-wise cases.
    if seeded is not None and (
        small is None or draw(st.integers(0, _SEEDED_ODDS - 1)) == _SEEDED_ODDS - 1
    ):
        return _recorded(draw(seeded))
    return _recorded(draw(small))


def _recorded(case: Case) -> Case:
    event(f"regime: {_family(case.regime)}")
    return case


# ----------------------------------------------------------------- public strategies


@_public_name("distributions")
def _distributions(draw, *, min_size: int = 1, max_size: int | None = None) -> Case:
    lo, hi = _check_sizes(min_size, max_size)
    regimes = tuple(r for r in _MIXED if r not in ("identical", "near_equal"))
    return _drawn(draw, _mix("p", regimes, lo, hi))


def distributions(min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[Case]:
    """Single distributions ``Case(p)`` of support size ``min_size..max_size``.

    Reaches ``generic``, ``uniform``, ``one_hot``, ``size1``, ``zeros``,
    ``dynamic_range``, ``subnormal`` and ``large(...)`` (seeded, up to ``max_size``,
    default 10**5, elements). For entropy: ``H`` of a point mass is exactly 0, zeros
    need ``0 log 0 = 0``, and subnormal ``p log p`` underflows.
    """
    _check_sizes(min_size, max_size)
    return _distributions(min_size=min_size, max_size=max_size)


@_public_name("pairs")
def _pairs(draw, *, min_size: int = 1, max_size: int | None = None) -> Case:
    lo, hi = _check_sizes(min_size, max_size)
    return _drawn(draw, _mix("pq", _MIXED, lo, hi))


def pairs(min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[Case]:
    """Pairs ``Case(p, q)`` on one support with finite KL(p‖q): every regime mixed.

    Reaches ``generic``, ``uniform``/``uniform(p)``, ``identical(...)``, ``one_hot``,
    ``size1``, ``zeros``/``zeros(shared)``, ``near_equal(1e-2..1e-15)``,
    ``dynamic_range``, ``subnormal`` and ``large(...)``. ``q_i > 0`` wherever
    ``p_i > 0``. ``max_size`` caps the support (``pairs(max_size=64)`` keeps mpmath
    oracles cheap); seeded cases appear only when ``max_size > 32``.
    """
    _check_sizes(min_size, max_size)
    return _pairs(min_size=min_size, max_size=max_size)


#: Regimes without a hazard of klspec.spec.hazards (no zeros, subnormal or tiny entries).
_CLEAN = ("generic", "uniform", "size1")


@_public_name("clean_pairs")
def _clean_pairs(draw, *, min_size: int = 1, max_size: int = SMALL_MAX) -> Case:
    lo, hi = _check_sizes(min_size, max_size, default_max=SMALL_MAX)
    return _drawn(draw, _mix("pq", _CLEAN, lo, min(hi, SMALL_MAX)))


def clean_pairs(min_size: int = 1, max_size: int = SMALL_MAX) -> st.SearchStrategy[Case]:
    """Pairs with no hazard at all: every entry of ``p`` and ``q`` at least 1e-3/n.

    Tags ``generic``, ``uniform``/``uniform(p)`` and ``size1``, drawn element by
    element on up to 32 outcomes. The base of the special-case inputs, which insert
    the one condition their clause is about (:mod:`klspec.spec.hazards`).
    """
    _check_sizes(min_size, max_size, default_max=SMALL_MAX)
    if max_size > SMALL_MAX:
        raise InvalidArgument(f"max_size={max_size} must be <= {SMALL_MAX}")
    return _clean_pairs(min_size=min_size, max_size=max_size)


@_public_name("near_equal_pairs")
def _near_equal_pairs(
    draw,
    *,
    min_size: int = 1,
    max_size: int | None = None,
    min_exponent: int = _MIN_EXPONENT,
    max_exponent: int = _MAX_EXPONENT,
) -> Case:
    lo, hi = _check_sizes(min_size, max_size)
    return _drawn(draw, _mix("pq", ("near_equal",), lo, hi, (min_exponent, max_exponent)))


def near_equal_pairs(
    min_size: int = 1,
    max_size: int | None = None,
    *,
    min_exponent: int = _MIN_EXPONENT,
    max_exponent: int = _MAX_EXPONENT,
) -> st.SearchStrategy[Case]:
    """Nearly equal pairs: ``q = p * (1 + 10**e * z)`` renormalised, ``z_i`` in [-1, 1].

    ``e`` is drawn from ``min_exponent..max_exponent`` (default -15..-2). Tag
    ``near_equal(1e<e>)``, with the base regime of ``p`` appended when it is not
    generic (zeros, dynamic range, uniform), or ``large(n=N, near_equal(1e<e>))``.
    KL(p‖q) ≈ ½·10**(2e)·Σ p z² is far below the rounding of each term, so a literal
    ``Σ p log(p/q)`` returns noise, often negative: the hardest regime for accuracy.
    """
    _check_sizes(min_size, max_size)
    for name, value in (("min_exponent", min_exponent), ("max_exponent", max_exponent)):
        if not isinstance(value, int) or not _MIN_EXPONENT <= value <= _MAX_EXPONENT:
            raise InvalidArgument(f"{name}={value!r} must be an int in -15..-2")
    if min_exponent > max_exponent:
        raise InvalidArgument(f"min_exponent={min_exponent} exceeds max_exponent={max_exponent}")
    return _near_equal_pairs(
        min_size=min_size,
        max_size=max_size,
        min_exponent=min_exponent,
        max_exponent=max_exponent,
    )


@_public_name("pairs_with_zeros")
def _pairs_with_zeros(draw, *, min_size: int = 1, max_size: int | None = None) -> Case:
    lo, hi = _check_sizes(min_size, max_size, least=2)
    return _drawn(draw, _mix("pq", ("zeros", "one_hot"), lo, hi))


def pairs_with_zeros(min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[Case]:
    """Pairs where ``p_i = 0`` for some ``i``; there ``q_i > 0`` or ``q_i = 0`` too.

    Tags ``zeros``, ``zeros(shared)`` (some outcome has ``p_i = q_i = 0``),
    ``one_hot`` (``n >= 2``) and their ``large(...)`` versions. The term for
    ``p_i = 0`` is 0 by the convention ``0 log(0/q) = 0``, also when ``q_i = 0``;
    ``0 * log 0`` in floating point is NaN. Support size is at least 2.
    ``q_i > 0`` wherever ``p_i > 0``.
    """
    _check_sizes(min_size, max_size, least=2)
    return _pairs_with_zeros(min_size=min_size, max_size=max_size)


@_public_name("pairs_q_zero_where_p_positive")
def _pairs_q_zero(draw, *, min_size: int = 1, max_size: int | None = None) -> Case:
    lo, hi = _check_sizes(min_size, max_size, least=2)
    return _drawn(draw, _mix("pq", ("q_zero",), lo, hi))


def pairs_q_zero_where_p_positive(
    min_size: int = 1, max_size: int | None = None
) -> st.SearchStrategy[Case]:
    """Pairs with some ``q_i = 0 < p_i``, so KL(p‖q) = +inf (tag ``q_zero``).

    ``p`` and ``q`` may have further zeros (disjoint supports included). The only
    strategy whose KL is infinite: implementations must return +inf, not NaN, a
    large finite number or an error. Support size is at least 2.
    """
    _check_sizes(min_size, max_size, least=2)
    return _pairs_q_zero(min_size=min_size, max_size=max_size)


@_public_name("triples")
def _triples(draw, *, min_size: int = 1, max_size: int | None = None) -> Case:
    lo, hi = _check_sizes(min_size, max_size)
    return _drawn(draw, _mix("pqr", _MIXED, lo, hi))


def triples(min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[Case]:
    """Three distributions ``Case(p, q, r)`` on one support, for convexity and
    triangle-inequality witnesses.

    Supports are nested, ``supp p ⊆ supp q ⊆ supp r``, so KL(p‖q), KL(p‖r) and
    KL(q‖r) are finite. Same regimes as :func:`pairs`; in ``near_equal`` both ``q``
    and ``r`` are perturbations of ``p``.
    """
    _check_sizes(min_size, max_size)
    return _triples(min_size=min_size, max_size=max_size)


def _flat_position(full_index: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """Position in an array of batch ``shape`` that broadcasts to ``full_index``."""
    tail = full_index[len(full_index) - len(shape) :]
    index = tuple(0 if side == 1 else i for i, side in zip(tail, shape, strict=True))
    return int(np.ravel_multi_index(index, shape)) if shape else 0


@_public_name("batched_pairs")
def _batched_pairs(draw, *, min_size: int = 1, max_size: int = 16, broadcast: bool = False) -> Case:
    n = draw(st.integers(min_size, max_size))
    if broadcast:
        shapes = draw(
            hnp.mutually_broadcastable_shapes(
                num_shapes=2, min_dims=0, max_dims=3, max_side=4
            ).filter(lambda s: len(s.result_shape) >= 1)
        )
        p_batch, q_batch = shapes.input_shapes
        full = shapes.result_shape
    else:
        full = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
        p_batch = q_batch = full

    # Rows come from a small pool of pairs, each drawn from a regime, so the data
    # drawn stays small however big the batch. Every p row is paired only with q
    # rows of its own pool pair (connected components of the broadcast pairing
    # share one pool entry), which keeps q > 0 wherever p > 0 for every pair.
    p_count, q_count = math.prod(p_batch), math.prod(q_batch)
    parent = list(range(p_count + q_count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for index in np.ndindex(*full):
        a = root(_flat_position(index, p_batch))
        b = root(p_count + _flat_position(index, q_batch))
        parent[a] = b
    components = sorted({root(i) for i in range(len(parent))})

    fits = [r for r in _MIXED if _SMALL[r].min_n <= n <= _SMALL[r].max_n]
    pool_size = draw(st.integers(1, min(len(components), 4)))
    pool = []
    for _ in range(pool_size):
        regime = draw(st.sampled_from(fits))
        pool.append(_SMALL[regime].draw(draw, n, 2))
    choice = {c: draw(st.integers(0, pool_size - 1)) for c in components}

    p = np.empty((*p_batch, n))
    q = np.empty((*q_batch, n))
    p_rows, q_rows = p.reshape(p_count, n), q.reshape(q_count, n)
    used = set()
    for i in range(p_count):
        p_rows[i] = pool[choice[root(i)]][0][0]
        used.add(pool[choice[root(i)]][1])
    for i in range(q_count):
        # In broadcast mode a q row may instead be fully positive: it covers any p.
        if broadcast and draw(st.booleans()):
            q_rows[i] = _normalise(_weights(draw, n))
            used.add("generic")
        else:
            q_rows[i] = pool[choice[root(p_count + i)]][0][1]
            used.add(pool[choice[root(p_count + i)]][1])
    rows = ", ".join(sorted(used))
    shape = f"p={p.shape}, q={q.shape}" if p.shape != q.shape else f"shape={p.shape}"
    return _recorded(Case(p=p, q=q, regime=f"batched({shape}; rows: {rows})"))


def batched_pairs(
    min_size: int = 1, max_size: int = 16, *, broadcast: bool = False
) -> st.SearchStrategy[Case]:
    """Batched pairs ``Case(p, q)`` of shape ``(*batch, n)``, KL taken over the last axis.

    ``batch`` has 1 to 3 dimensions of 1 to 4 each, ``n`` is ``min_size..max_size``
    (default 1..16); each row pair comes from one of the :func:`pairs` regimes (no
    seeded ones), so one batch mixes zeros, subnormals, near-equal rows …, and a
    vectorised implementation must not let one row's handling leak into another.
    With ``broadcast=True`` the batch shapes of ``p`` and ``q`` differ but broadcast
    (e.g. ``p`` of shape ``(n,)`` against ``q`` of ``(3, 1, n)``); the tag then reads
    ``batched(p=(...), q=(...); rows: ...)``. ``q > 0`` wherever the ``p`` row it is
    paired with is positive.
    """
    if not 1 <= min_size <= max_size <= SMALL_MAX:
        raise InvalidArgument(
            f"need 1 <= min_size <= max_size <= {SMALL_MAX}; got {min_size}, {max_size}"
        )
    return _batched_pairs(min_size=min_size, max_size=max_size, broadcast=broadcast)
