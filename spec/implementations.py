"""What is under test: an :class:`Implementation` is a name, some functions and capabilities.

Properties see only this interface, never a library: "KL(P‖Q) of float64 arrays
over the last axis, in nats". Anything that knows a third party's conventions
(argument order, log-space inputs, reductions, tensors) is an *adapter*: a
function returning an :class:`Implementation`, registered under a target name
(:func:`implementation`). The reference is the first one.

Calling convention
------------------
``kl(p, q)``, ``entropy(p)`` and ``cross_entropy(p, q)`` take float64 numpy
arrays (read-only ones: an implementation must not write into its inputs) and
return the value in nats: a float for 1-D input, an array of the batch shape
for input of shape ``(..., n)`` when the implementation is ``"batched"``. They
are called with keyword ``base=`` only if it declares ``"base"``, ``axis=`` only
if it declares ``"axis"``. With ``"validates"`` they must raise ``ValueError`` or
``TypeError`` naming the argument on bad input (which may then be any
array-like, a ragged list say). ``empirical(samples)`` returns ``(outcomes,
probabilities)`` like :func:`klspec.reference.empirical_distribution`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: The divergences: what adapters of third-party libraries provide (the empirical
#: distribution aside, which is declared as a capability).
DIVERGENCES: tuple[str, ...] = ("entropy", "cross_entropy", "kl")

#: Every function an implementation may provide, with the names of its arguments (how a
#: call reads in messages: ``k3(logp, ref_logp)``). Beyond the divergences: the losses of
#: noise models, maximum likelihood, Gaussian fits, the language-model quantities and the
#: RLHF optimum, each called like the function of :mod:`klspec.reference` of that name.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "entropy": ("p",),
    "cross_entropy": ("p", "q"),
    "kl": ("p", "q"),
    "empirical": ("samples",),
    "gaussian_nll": ("y", "f", "sigma"),
    "mse": ("y", "f"),
    "laplace_nll": ("y", "f", "b"),
    "mae": ("y", "f"),
    "bernoulli_nll": ("y", "p"),
    "poisson_nll": ("y", "rate"),
    "categorical_mle": ("samples",),
    "categorical_log_likelihood": ("samples", "probs", "support"),
    "bernoulli_mle": ("y",),
    "fit_gaussian_to_mixture": ("weights", "means", "sds"),
    "mixture_gaussian_kl": ("weights", "means", "sds", "mean", "sd"),
    "token_kl": ("logits_p", "logits_q"),
    "k1": ("logp", "ref_logp"),
    "k2": ("logp", "ref_logp"),
    "k3": ("logp", "ref_logp"),
    "sequence_log_prob": ("token_logprobs",),
    "sequence_log_ratio": ("logp", "ref_logp"),
    "rlhf_optimal_policy": ("ref_probs", "rewards", "beta"),
    "rlhf_objective": ("policy", "ref_probs", "rewards", "beta"),
    "rlhf_optimal_value": ("ref_probs", "rewards", "beta"),
}

#: The functions an implementation may provide (the empirical distribution aside).
QUANTITIES: tuple[str, ...] = tuple(q for q in ARGUMENTS if q != "empirical")

#: Conventions an implementation may declare, and what each promises.
CAPABILITIES: dict[str, str] = {
    "batched": "accepts inputs of shape (..., n) and reduces the last axis",
    "base": "accepts base= (the result is divided by ln base)",
    "axis": "accepts axis= (the axis holding the outcomes)",
    "validates": "raises ValueError/TypeError naming the argument on bad input",
    "empirical": "provides empirical(samples) -> (outcomes, probabilities)",
}


@dataclass(frozen=True)
class Implementation:
    """An implementation under test: a name, the functions it has and the conventions it keeps.

    Give only the functions that exist; checks needing a missing one, or a
    capability not declared, are skipped with the reason. ``"empirical"`` is
    declared by giving ``empirical``.
    """

    name: str
    kl: Callable[..., Any] | None = None
    entropy: Callable[..., Any] | None = None
    cross_entropy: Callable[..., Any] | None = None
    empirical: Callable[..., Any] | None = None
    gaussian_nll: Callable[..., Any] | None = None
    mse: Callable[..., Any] | None = None
    laplace_nll: Callable[..., Any] | None = None
    mae: Callable[..., Any] | None = None
    bernoulli_nll: Callable[..., Any] | None = None
    poisson_nll: Callable[..., Any] | None = None
    categorical_mle: Callable[..., Any] | None = None
    categorical_log_likelihood: Callable[..., Any] | None = None
    bernoulli_mle: Callable[..., Any] | None = None
    fit_gaussian_to_mixture: Callable[..., Any] | None = None
    mixture_gaussian_kl: Callable[..., Any] | None = None
    token_kl: Callable[..., Any] | None = None
    k1: Callable[..., Any] | None = None
    k2: Callable[..., Any] | None = None
    k3: Callable[..., Any] | None = None
    sequence_log_prob: Callable[..., Any] | None = None
    sequence_log_ratio: Callable[..., Any] | None = None
    rlhf_optimal_policy: Callable[..., Any] | None = None
    rlhf_objective: Callable[..., Any] | None = None
    rlhf_optimal_value: Callable[..., Any] | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    #: Keyword options that rebuild it from its name as a target (``signature=...``), for
    #: reproduction lines: ``replay(check, name, **options)``.
    options: tuple[tuple[str, Any], ...] = ()
    #: Whether ``name`` is a target :func:`implementation` resolves. When it is not (a
    #: function object handed to :func:`klspec.spec.check`), reproduction lines are
    #: Python statements passing the function itself.
    by_name: bool = True

    def __post_init__(self) -> None:
        caps = frozenset(self.capabilities)
        object.__setattr__(self, "capabilities", caps)
        unknown = caps - CAPABILITIES.keys()
        if unknown:
            raise ValueError(
                f"unknown capabilities {sorted(unknown)} for implementation {self.name!r}; "
                f"known: {sorted(CAPABILITIES)}"
            )
        if ("empirical" in caps) != (self.empirical is not None):
            raise ValueError(
                f"implementation {self.name!r}: give the empirical function to declare "
                "'empirical' (it is declared by giving the function)"
            )
        if not any(getattr(self, q) for q in QUANTITIES) and self.empirical is None:
            raise ValueError(f"implementation {self.name!r} provides no function at all")

    @property
    def provides(self) -> frozenset[str]:
        """The quantities it has and the capabilities it declares."""
        return frozenset(q for q in QUANTITIES if getattr(self, q) is not None) | self.capabilities

    def missing(self, needs: Iterable[str]) -> frozenset[str]:
        """Which of ``needs`` (quantities and capabilities) it lacks."""
        return frozenset(needs) - self.provides

    def function(self, quantity: str) -> Callable[..., Any]:
        """The function computing ``quantity``; ``LookupError`` if it has none."""
        fn = getattr(self, quantity) if quantity in ARGUMENTS else None
        if fn is None:
            raise LookupError(f"implementation {self.name!r} has no {quantity}")
        return fn


def reference_implementation() -> Implementation:
    """:mod:`klspec.reference`, with every capability."""
    from klspec import reference

    return Implementation(
        name="reference",
        kl=reference.kl_divergence,
        entropy=reference.entropy,
        cross_entropy=reference.cross_entropy,
        empirical=reference.empirical_distribution,
        token_kl=reference.token_kl,
        k1=functools.partial(reference.kl_estimate, estimator="k1"),
        k2=functools.partial(reference.kl_estimate, estimator="k2"),
        k3=functools.partial(reference.kl_estimate, estimator="k3"),
        sequence_log_prob=reference.sequence_log_prob,
        sequence_log_ratio=reference.sequence_log_ratio,
        gaussian_nll=reference.gaussian_nll,
        mse=reference.mse,
        laplace_nll=reference.laplace_nll,
        mae=reference.mae,
        bernoulli_nll=reference.bernoulli_nll,
        poisson_nll=reference.poisson_nll,
        categorical_mle=reference.categorical_mle,
        categorical_log_likelihood=reference.categorical_log_likelihood,
        bernoulli_mle=reference.bernoulli_mle,
        fit_gaussian_to_mixture=reference.fit_gaussian_to_mixture,
        mixture_gaussian_kl=reference.mixture_gaussian_kl,
        rlhf_optimal_policy=reference.rlhf_optimal_policy,
        rlhf_objective=reference.rlhf_objective,
        rlhf_optimal_value=reference.rlhf_optimal_value,
        capabilities=frozenset(CAPABILITIES),
        description="klspec.reference: exact in every numerical regime",
    )


#: Target name -> zero-argument factory, for implementations defined in Python (tests
#: register theirs here). Adapters for other libraries are in klspec.spec.adapters.
_TARGETS: dict[str, Callable[[], Implementation]] = {
    "reference": reference_implementation,
}


def implementation(target: str, **options: Any) -> Implementation:
    """The implementation a target stands for.

    A name registered here (``"reference"``), a built-in adapter
    (``"scipy.rel_entr"``, see :mod:`klspec.spec.adapters`) or
    ``"package.module:function"`` with ``options`` saying how to call it
    (``signature=``, ``quantity=``, ``batched=``, ``array=``; see
    :func:`klspec.spec.adapters.resolve`).
    """
    from klspec.spec.adapters import resolve

    return resolve(target, **options)
