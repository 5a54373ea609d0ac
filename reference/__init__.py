"""klspec.reference — one implementation of every quantity in the spec.

Exact in every numerical regime (nearly equal distributions, zeros, subnormals,
huge supports) and never silently wrong on bad input.

- Divergences: :func:`entropy`, :func:`cross_entropy`, :func:`kl_divergence`.
- Noise models: :func:`gaussian_nll`, :func:`mse`, :func:`laplace_nll`, :func:`mae`,
  :func:`bernoulli_nll`, :func:`binary_cross_entropy`, :func:`poisson_nll`.
- Maximum likelihood: :func:`empirical_distribution`, :func:`categorical_mle`,
  :func:`categorical_log_likelihood`, :func:`bernoulli_mle`.
- Forward and reverse fits: :func:`fit_gaussian_to_mixture`, :func:`mixture_gaussian_kl`.
- Language models: :func:`token_kl`, :func:`kl_estimate`, :func:`sequence_log_prob`,
  :func:`sequence_log_ratio`.
- RLHF: :func:`rlhf_optimal_policy`, :func:`rlhf_objective`, :func:`rlhf_optimal_value`.
- Preference losses: :func:`dpo_loss`, :func:`dpo_implicit_reward`.
"""

from klspec.reference.divergences import cross_entropy, entropy, kl_divergence
from klspec.reference.empirical import empirical_distribution
from klspec.reference.fitting import GaussianFit, fit_gaussian_to_mixture, mixture_gaussian_kl
from klspec.reference.language_models import (
    kl_estimate,
    sequence_log_prob,
    sequence_log_ratio,
    token_kl,
)
from klspec.reference.likelihood import bernoulli_mle, categorical_log_likelihood, categorical_mle
from klspec.reference.noise_models import (
    bernoulli_nll,
    binary_cross_entropy,
    gaussian_nll,
    laplace_nll,
    mae,
    mse,
    poisson_nll,
)
from klspec.reference.preference import dpo_implicit_reward, dpo_loss
from klspec.reference.rlhf import rlhf_objective, rlhf_optimal_policy, rlhf_optimal_value

__all__ = [
    "GaussianFit",
    "bernoulli_mle",
    "bernoulli_nll",
    "binary_cross_entropy",
    "categorical_log_likelihood",
    "categorical_mle",
    "cross_entropy",
    "dpo_implicit_reward",
    "dpo_loss",
    "empirical_distribution",
    "entropy",
    "fit_gaussian_to_mixture",
    "gaussian_nll",
    "kl_divergence",
    "kl_estimate",
    "laplace_nll",
    "mae",
    "mixture_gaussian_kl",
    "mse",
    "poisson_nll",
    "rlhf_objective",
    "rlhf_optimal_policy",
    "rlhf_optimal_value",
    "sequence_log_prob",
    "sequence_log_ratio",
    "token_kl",
]
