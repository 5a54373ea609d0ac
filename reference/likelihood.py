r"""Maximum likelihood for categorical and Bernoulli data, and why it is forward-KL minimisation.

For samples x_1..x_n with counts n_x and empirical distribution P̂(x) = n_x/n,
the average log-likelihood of a candidate distribution Q is

    ℓ̄(Q) = (1/n) Σ_i log Q(x_i) = Σ_x P̂(x) log Q(x) = −H(P̂, Q) = −H(P̂) − KL(P̂‖Q).

H(P̂) depends on the data only, so maximising the likelihood over any family of
candidates is minimising the forward KL(P̂‖Q) (docs/proofs/mle_forward_kl.md).
Over all categorical distributions the maximum is at Q = P̂, where KL = 0:
:func:`categorical_mle`.

``categorical_mle(samples, support=None)``
    The maximum-likelihood categorical distribution: the empirical frequencies.
``categorical_log_likelihood(samples, probs, support)``
    ℓ̄(Q) for one or several candidate distributions ``probs`` at once.
``bernoulli_mle(y)``
    The maximum-likelihood success probability of 0/1 observations: their mean.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from klspec.reference.empirical import _check_ordered, _count, empirical_distribution
from klspec.reference.exact_arithmetic import dd_sum, two_prod, two_sum
from klspec.reference.validation import (
    _raise_at_first,
    own_error_state,
    refuse_masked,
    validate_distributions,
)

__all__ = ["bernoulli_mle", "categorical_log_likelihood", "categorical_mle"]


@own_error_state
def categorical_mle(
    samples: Iterable[Hashable], support: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], np.ndarray]:
    """The maximum-likelihood categorical distribution of ``samples``: q_x = n_x / n.

    Why the empirical frequency: the log-likelihood of q is Σ_x n_x log q_x.
    Maximising it on the simplex Σ_x q_x = 1 with a Lagrange multiplier λ gives
    n_x / q_x = λ for every observed x, so q_x = n_x / n (λ = n), and q_x = 0
    for outcomes never observed (mass there only lowers the likelihood).
    Equivalently (Gibbs): (1/n) Σ_x n_x log q_x = −H(P̂) − KL(P̂‖q) ≤ −H(P̂),
    with equality only at q = P̂. It is unique.

    Returns ``(support, probabilities)`` exactly as
    :func:`klspec.reference.empirical_distribution` does (which it calls):
    ``support`` defaults to the distinct samples in order of first appearance,
    and each probability is ``n_x / n`` rounded once, so the coin flips
    H, H, T give exactly (2/3, 1/3). Same errors as that function.
    """
    return empirical_distribution(samples, support)


@own_error_state
def categorical_log_likelihood(
    samples: Iterable[Hashable], probs: ArrayLike, support: Sequence[Hashable]
) -> np.float64 | np.ndarray:
    """The average log-likelihood (1/n) Σ_i log Q(x_i) = Σ_x P̂(x) log Q(x) = −H(P̂, Q).

    Parameters
    ----------
    samples : iterable of hashable outcomes
        The data x_1..x_n (n >= 1); every sample must be in ``support``.
    probs : array_like, shape (..., len(support))
        Candidate distributions Q: ``probs[..., k]`` is the probability of
        ``support[k]``; leading axes are a batch of candidates, each scored on
        the same samples. Validated like every distribution of
        :mod:`klspec.reference` and treated as ``probs / probs.sum(-1)``.
    support : sequence of hashable outcomes
        The outcomes, each listed once, in the order of ``probs``' last axis.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        In nats, <= 0: a scalar for 1-D ``probs``, else an array of its batch
        shape. ``-inf`` when an observed outcome has probability 0 (outcomes
        never observed may have probability 0). Computed from the counts as
        Σ_x n_x log Q(x) / n with log Q(x) free of cancellation (log1p for
        Q(x) > 1/2), the products n_x·log Q(x) error-free and the non-positive
        terms summed in double-double: within a few ulps
        (tests/test_likelihood.py, against mpmath).

    Raises
    ------
    TypeError, ValueError
        For invalid ``probs`` (naming it and the position), empty ``samples``,
        a sample not in ``support``, duplicates in ``support``, or a
        ``support`` whose length differs from the last axis of ``probs``;
        ``TypeError`` for a ``set`` as ``support`` (it has no fixed order) and
        unhashable samples or outcomes.
    """
    if support is None:
        raise TypeError(
            "support is required: probs[..., k] is the probability of support[k] "
            "(pass the outcomes in that order)"
        )
    (q,), _ = validate_distributions({"probs": probs}, axis=-1)
    _check_ordered(support)
    support = list(support)
    if len(support) != q.shape[-1]:
        raise ValueError(
            f"probs has {q.shape[-1]} outcomes on its last axis but support lists "
            f"{len(support)}; probs[..., k] is the probability of support[k]"
        )
    _, counts, n = _count(samples, support, needs="the log-likelihood")
    c = np.array(counts, dtype=np.float64)  # exact: counts below 2**53
    s_hi, s_lo = (a[..., None] for a in dd_sum(q))
    observed = (c > 0) & (q > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # log Q = log(q/Σq): from log1p of Q − 1 = (q − Σq)/Σq where Q > 1/2 (that
        # subtraction is exact, Sterbenz), else log q − log Σq kept as an exact
        # pair, which cannot cancel there: near-certain outcomes keep their tiny
        # log Q [mle.likelihood_plus_kl].
        near_one = np.log1p(((q - s_hi) - s_lo) / s_hi)
        far_hi, far_lo = two_sum(np.log(q), -np.log1p((s_hi - 1.0) + s_lo))
        near = q > 0.5 * s_hi
        log_hi = np.where(observed, np.where(near, near_one, far_hi), 0.0)
        log_lo = np.where(observed & ~near, far_lo, 0.0)
    # n_x·log Q(x) error-free (Dekker), summed in double-double: one rounding in
    # the log, one in the final division by n.
    t1, t2 = two_prod(np.broadcast_to(c, log_hi.shape), log_hi)
    t_hi, t_lo = dd_sum(np.concatenate((t1, t2 + c * log_lo), axis=-1))
    impossible = ((c > 0) & (q == 0)).any(axis=-1)
    value = np.where(impossible, -np.inf, (t_hi + t_lo) / n) + 0.0
    return value[()] if value.ndim == 0 else value


@own_error_state
def bernoulli_mle(y: ArrayLike) -> np.float64:
    """The maximum-likelihood success probability of 0/1 observations: their mean k/n.

    The log-likelihood k log θ + (n − k) log(1 − θ) of k ones in n observations
    has derivative k/θ − (n − k)/(1 − θ), zero at θ = k/n; it is concave, so
    that is the maximum (θ = 0 or 1 when all observations agree). It is the
    categorical MLE on the outcomes {0, 1}.

    ``y`` holds the observations (any shape; every entry counts): 0 or 1 as
    ints, floats or booleans. Returns ``k / n`` rounded once, as float64:
    ``[1, 1, 0]`` gives exactly 2/3. Raises ``TypeError`` for non-numeric
    input and ``ValueError`` for an empty or 0-d ``y`` or an entry other than
    0 or 1 (naming the first, e.g. ``y[2] is 0.5``).
    """
    refuse_masked("y", y)
    try:
        arr = np.asarray(y)
    except ValueError as exc:
        if "inhomogeneous" in str(exc):
            raise ValueError(
                "y is a ragged nested sequence: every row must have the same length"
            ) from None
        raise TypeError(f"y cannot be converted to an array of numbers: {exc}") from exc
    except (TypeError, OverflowError) as exc:
        raise TypeError(f"y cannot be converted to an array of numbers: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"y has dtype {arr.dtype}; observations must be 0 or 1 (or booleans)")
    if arr.ndim == 0:
        raise ValueError("y is 0-d (a single number); pass the observations as a sequence")
    if arr.size == 0:
        raise ValueError("y is empty; the Bernoulli MLE needs at least one observation")
    with np.errstate(invalid="ignore"):
        bad = (arr != 0) & (arr != 1)  # NaN is neither
    _raise_at_first("y", arr, bad, str, "observations must be 0 or 1")
    return np.float64(int(np.count_nonzero(arr)) / arr.size)
