"""klspec.reference — one implementation of every quantity in the spec.

Exact in every numerical regime (nearly equal distributions, zeros, subnormals,
huge supports) and never silently wrong on bad input.
"""

from klspec.reference.divergences import cross_entropy, entropy, kl_divergence
from klspec.reference.empirical import empirical_distribution
from klspec.reference.language_models import (
    kl_estimate,
    sequence_log_prob,
    sequence_log_ratio,
    token_kl,
)

__all__ = [
    "cross_entropy",
    "empirical_distribution",
    "entropy",
    "kl_divergence",
    "kl_estimate",
    "sequence_log_prob",
    "sequence_log_ratio",
    "token_kl",
]
