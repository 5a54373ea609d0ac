"""Every derivation, in the order the post tells the story."""

from __future__ import annotations

from types import MappingProxyType

from klspec.spec.derivations._core import Derivation
from klspec.spec.derivations.autoregressive import AUTOREGRESSIVE_LOG_RATIO, KL_CHAIN_RULE
from klspec.spec.derivations.cross_entropy import KL_CROSS_ENTROPY
from klspec.spec.derivations.dpo import DPO
from klspec.spec.derivations.gaussian_kl import GAUSSIAN_KL
from klspec.spec.derivations.gibbs import GIBBS
from klspec.spec.derivations.mle import MLE_BERNOULLI, MLE_FORWARD_KL
from klspec.spec.derivations.moment_matching import MOMENT_MATCHING
from klspec.spec.derivations.noise_models import (
    BERNOULLI_NLL_BCE,
    GAUSSIAN_NLL_MSE,
    LAPLACE_NLL_MAE,
    POISSON_NLL_DEVIANCE,
)
from klspec.spec.derivations.rlhf import RLHF_OPTIMUM
from klspec.spec.derivations.weather import WEATHER_NUMBERS

_ORDER: tuple[Derivation, ...] = (
    # Where MSE comes from.
    GAUSSIAN_NLL_MSE,
    # What KL measures: cross-entropy minus entropy, and never negative.
    KL_CROSS_ENTROPY,
    GIBBS,
    # MLE is forward-KL minimisation.
    MLE_FORWARD_KL,
    MLE_BERNOULLI,
    # Forward vs reverse: the normal closed form, and mass-covering moment matching.
    GAUSSIAN_KL,
    MOMENT_MATCHING,
    # RLHF: per-token log-ratios, the chain rule, the optimum.
    AUTOREGRESSIVE_LOG_RATIO,
    KL_CHAIN_RULE,
    RLHF_OPTIMUM,
    # DPO: the optimum solved for the reward, Z cancelling in Bradley–Terry.
    DPO,
    # The post's numbers.
    WEATHER_NUMBERS,
    # The noise model behind each common loss.
    BERNOULLI_NLL_BCE,
    LAPLACE_NLL_MAE,
    POISSON_NLL_DEVIANCE,
)

#: id → derivation, in reading order (read-only).
DERIVATIONS = MappingProxyType({d.id: d for d in _ORDER})

if len(DERIVATIONS) != len(_ORDER):  # pragma: no cover - a duplicated id is a spec bug
    raise RuntimeError("two derivations share an id")
