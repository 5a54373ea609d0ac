"""The empirical distribution of observed samples (the post's coin flips H, H, T)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, ItemsView, Iterable, KeysView, Sequence
from collections.abc import Set as AbstractSet

import numpy as np

from klspec.reference.validation import refuse_masked

__all__ = ["empirical_distribution"]


def empirical_distribution(
    samples: Iterable[Hashable], support: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], np.ndarray]:
    """Relative frequencies of ``samples``: P̂(x) = count(x) / n.

    Returns ``(support, probabilities)``. ``support`` defaults to the distinct
    samples in order of first appearance; pass it to fix the outcomes and their
    order (outcomes never observed get probability 0). Each probability is
    ``count / n`` rounded once, so ``("H", "H", "T")`` gives exactly
    ``[2/3, 1/3]``. This is also the maximum-likelihood categorical
    distribution (:func:`klspec.reference.likelihood.categorical_mle`).

    Raises ``ValueError`` for empty ``samples``, duplicates in ``support`` and a
    sample that is not in ``support``; ``TypeError`` for an unhashable sample or
    outcome, a ``set`` or ``frozenset`` as ``support`` (no fixed order), such a set
    as ``samples`` when ``support`` is None (the order of first appearance would
    change with the hash seed) and a masked array.
    """
    support, counts, n = _count(
        samples, support, needs="the empirical distribution", hint=" or leave support=None"
    )
    return support, np.array([c / n for c in counts], dtype=np.float64)


def _count(
    samples: Iterable[Hashable], support: Sequence[Hashable] | None, *, needs: str, hint: str = ""
) -> tuple[list[Hashable], list[int], int]:
    """``(support, counts, n)``: the count of each outcome of ``support``, in its order.

    ``support=None`` takes the distinct samples in order of first appearance.
    ``needs`` completes the error for empty samples: "samples is empty; <needs>
    needs at least one sample"; ``hint`` ends the advice for a sample not in support.
    """
    refuse_masked("samples", samples)
    _check_iterable(samples, "samples")
    if support is None:
        # The support is then the samples in order of first appearance: a set has none.
        _check_ordered(samples, "samples", " (or fix the order with support=[...])")
    samples = list(samples)
    if not samples:
        raise ValueError(f"samples is empty; {needs} needs at least one sample")
    try:
        counts = Counter(samples)
    except TypeError:
        _check_hashable("samples", samples)  # raises, naming the first unhashable sample
        raise
    if support is None:
        support = list(counts)  # a Counter keeps the order of first appearance
    else:
        _check_ordered(support, "support")
        support = list(support)
        _check_hashable("support", support)
        seen: set[Hashable] = set()
        for outcome in support:
            if outcome in seen:
                raise ValueError(
                    f"support lists {outcome!r} more than once; each outcome must be listed once"
                )
            seen.add(outcome)
        missing = [s for s in counts if s not in seen]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValueError(
                f"samples contains {missing[0]!r}{more}, which is not in support; "
                f"list every possible outcome in support{hint}"
            )
    return support, [counts.get(o, 0) for o in support], len(samples)


def _check_ordered(values: object, name: str = "support", advice: str = "") -> None:
    """``values`` fixes the order of the probabilities: a set has none (hash seed order).

    A set or frozenset (any ``collections.abc.Set``) is refused; a dict's keys or
    items view is not, because a dict keeps insertion order.
    """
    refuse_masked(name, values)
    _check_iterable(values, name)
    if isinstance(values, AbstractSet) and not isinstance(values, (KeysView, ItemsView)):
        raise TypeError(
            f"{name} is a {type(values).__name__}, which has no fixed order (it changes "
            f"with the hash seed); pass an ordered sequence, e.g. sorted({name}) or a "
            f"list{advice}"
        )


def _check_iterable(values: object, name: str) -> None:
    """``values`` can be iterated over (a list, tuple, array, generator ...); else name it."""
    try:
        iter(values)  # type: ignore[call-overload]
    except TypeError:
        example = "['H', 'H', 'T']" if name == "samples" else "['H', 'T']"
        raise TypeError(
            f"{name} is {values!r:.60} ({type(values).__name__}), not a collection of "
            f"outcomes; pass a list or tuple, e.g. {name}={example}"
        ) from None


def _check_hashable(name: str, values: list) -> None:
    """Every entry can be counted (is hashable); names the first that is not."""
    for i, v in enumerate(values):
        try:
            hash(v)
        except TypeError:
            raise TypeError(
                f"{name}[{i}] is unhashable ({type(v).__name__}: {v!r:.60}); outcomes must be "
                "hashable, e.g. a tuple instead of a list"
            ) from None
