"""The empirical distribution of observed samples (the post's coin flips H, H, T)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np


def empirical_distribution(
    samples: Iterable[Hashable], outcomes: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], np.ndarray]:
    """Relative frequencies of ``samples``: P̂(x) = count(x) / n.

    Returns ``(outcomes, probabilities)``. ``outcomes`` defaults to the distinct
    samples in order of first appearance; pass it to fix the support (outcomes
    never observed get probability 0). Each probability is ``count / n``
    rounded once, so ``("H", "H", "T")`` gives exactly ``[2/3, 1/3]``.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("samples is empty; the empirical distribution needs at least one sample")
    counts = Counter(samples)
    if outcomes is None:
        outcomes = list(dict.fromkeys(samples))
    else:
        outcomes = list(outcomes)
        if len(set(outcomes)) != len(outcomes):
            raise ValueError("outcomes contains duplicates; each outcome must be listed once")
        missing = [s for s in counts if s not in set(outcomes)]
        if missing:
            raise ValueError(
                f"samples contains {missing[0]!r}, which is not in outcomes; "
                "list every possible outcome or leave outcomes=None"
            )
    n = len(samples)
    return outcomes, np.array([counts.get(o, 0) / n for o in outcomes], dtype=np.float64)
