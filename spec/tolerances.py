r"""Tolerances for value checks, derived from the conditioning of the inputs.

A value clause compares an implementation's float64 result with the exact value
of the formula. The comparison allows exactly the error that a *correct*
float64 evaluation of the textbook formula can make on these inputs, and no
more: ``sum(p * log(p / q))`` in float64 passes every value check, while the
same formula in float32, or a result biased by a relative 1e-9, fails.

Every quantity is a sum :math:`S = \sum_i t_i` of terms

* :math:`t_i = P_i \log(P_i/Q_i)` for KL(P‖Q),
* :math:`t_i = -P_i \log P_i` for H(P),
* :math:`t_i = -P_i \log Q_i` for H(P, Q),

over the normalised inputs :math:`P = p/\sum p`, :math:`Q = q/\sum q`. The error
of a float64 evaluation has three sources, each bounded below in terms of the
*magnitude* :math:`M = \sum_i |t_i|` (the scale the rounding errors of a sum are
proportional to: cancellation in S makes ``|S|`` small but not M), the support
size ``n`` and the inputs' *defects* :math:`|\sum p - 1|`. The floor of every
tolerance is about 8u ≈ 1e-15 absolute: below that no float64 evaluation of the
formula can resolve the value (the log of a rounded ratio is already off by u).

Where a property is ill-conditioned (its tolerance would swamp what it states),
checks gate on a computed condition instead of widening these bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

#: Unit roundoff of float64: every correctly rounded operation has relative error <= U.
U = 2.0**-53

#: Smallest positive normal float64; below it, results lose relative precision.
TINY = float(np.finfo(np.float64).tiny)


def gamma(n: int) -> float:
    r"""Higham's :math:`\gamma_n = nu/(1 - nu)`.

    Summing n floats in *any* order (recursive, pairwise, blocked, SIMD) gives
    :math:`|\mathrm{fl}(\sum t_i) - \sum t_i| \le \gamma_{n-1} \sum |t_i|`
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §4.2).
    """
    return n * U / (1.0 - n * U)


def defect(x: np.ndarray) -> float:
    """How far a distribution's entries sum from 1, ``|Σx − 1|``, with the sum exact (fsum).

    A float64 probability vector sums to 1 only within rounding; formulas that
    skip the normalisation carry this defect into their result.
    """
    return abs(math.fsum(np.ravel(x)) - 1.0)


def rounding_error(magnitude: float, n: int) -> float:
    r"""Bound on the rounding error of a float64 evaluation of S = Σ t_i.

    With M = Σ|t_i| and u = 2⁻⁵³, the error is at most :math:`(2\gamma_n + 4u)(M + 2)`:

    * normalising, P̂_i = p_i / fl(Σp), moves each P_i by a relative
      γ_n + u; to first order that moves S by (γ_n + u)·(M + 2), because
      ∂S/∂P_i·P_i and ∂S/∂Q_i·Q_i sum in absolute value to at most M + 1 and 1;
    * the ratio P_i/Q_i is rounded (relative u, so its log is off by u absolute:
      u·P_i per term, u in all), the log is within 2u·|log| and the product
      within u: 3u·M in all;
    * the sum of the computed terms, in any order, is within γ_n·M.

    Results that underflow add at most ~10³·n·2⁻¹⁰⁷⁴ absolute, far below the
    8u floor, so they need no term of their own.
    """
    return (2.0 * gamma(n) + 4.0 * U) * (magnitude + 2.0)


def unnormalised_error(defects: Iterable[float], value: float) -> float:
    r"""Bound on what skipping the normalisation costs, given the inputs' defects.

    The literal formula on raw inputs with Σp = 1 + a, Σq = 1 + b computes, exactly,

    * KL:  (1 + a)·[KL(P‖Q) + log(1 + a) − log(1 + b)],
    * H:   (1 + a)·[H(P) − log(1 + a)],
    * H(P, Q): (1 + a)·[H(P, Q) − log(1 + b)],

    so it is off by at most D·(|S| + 1)·(1 + 2D) with D = |a| + |b| (using
    |log(1 + x)| <= |x|·(1 + |x|) for |x| <= 1/2). This is "the measured
    defects times the derivative": ∂/∂a ≈ S + 1, ∂/∂b ≈ −1.
    """
    d = math.fsum(defects)
    if math.isinf(value):
        return 0.0
    return d * (abs(value) + 1.0) * (1.0 + 2.0 * d)


def value_tolerance(magnitude: float, n: int, defects: Iterable[float], value: float) -> float:
    """How far a correct float64 evaluation of S may be from its exact value.

    ``magnitude`` is M = Σ|t_i| of the exact terms, ``n`` the support size,
    ``defects`` the inputs' ``|Σx − 1|`` (:func:`defect`) and ``value`` the
    exact S. The sum of :func:`rounding_error` and :func:`unnormalised_error`.
    """
    return rounding_error(magnitude, n) + unnormalised_error(defects, value)


def perturbation_error(relative: float, magnitude: float) -> float:
    r"""Bound on how much S moves when every input entry moves by a relative ``relative``.

    For checks that build new inputs from drawn ones (outer products, mixtures,
    merged outcomes, conditionals): each entry of the built distribution is
    within a relative ``relative`` of its exact value. After renormalisation each
    P_i, Q_i moves by at most 2·relative, and by the derivative bound in
    :func:`rounding_error` S moves by at most 2·relative·(M + 2).
    """
    return 2.0 * relative * (magnitude + 2.0)


#: Below this an absolute error is lost to the subnormal grid (a few units of 2**-1074).
SUBNORMAL_SLACK = 2.0**-1070


def model_tolerance(magnitude: float, n: int) -> float:
    """(2γ_n + 8u)·Σ|t_i| for a sum of n terms of the model clauses (losses, likelihoods).

    A handful of roundings per term and a sum in any order; ``magnitude`` is Σ|t_i|
    of the exact terms, or of their parts where a term is a difference that may
    cancel. Plus a few subnormal units per term.
    """
    return (2 * gamma(n) + 8 * U) * magnitude + n * SUBNORMAL_SLACK
