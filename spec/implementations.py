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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: The functions an implementation may provide (the empirical distribution aside).
QUANTITIES: tuple[str, ...] = ("entropy", "cross_entropy", "kl")

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
        fn = getattr(self, quantity) if quantity in (*QUANTITIES, "empirical") else None
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
