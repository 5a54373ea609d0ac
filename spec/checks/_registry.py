"""The registry of checks: :class:`Check`, and the decorator that registers a property.

The check modules, one per topic (:mod:`klspec.spec.checks.divergences`, ...),
decorate plain properties with :func:`check`; :data:`klspec.spec.checks.CHECKS`
orders what they registered by the catalog. Kept apart from the check modules so
that they can share it without importing each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from klspec.spec.interface import Implementation

Property = Callable[[Implementation, Any], None]
StrategySource = st.SearchStrategy | Callable[[], st.SearchStrategy] | None


@dataclass(frozen=True)
class Check:
    """One executable check of a clause.

    ``name`` is unique and stable (test ids, xfail lists); ``needs`` lists the
    quantities and capabilities the implementation must have (else the check is
    skipped); ``strategy`` draws the input (a strategy, a zero-argument factory
    of one, or ``None`` for a check with fixed input, run once with
    ``case=None``); ``prop(impl, case)`` raises ``AssertionError`` on a violation.
    """

    name: str
    clause_id: str
    needs: frozenset[str]
    strategy: StrategySource
    prop: Property
    #: A cap on the examples per run, for checks whose oracle is costly (quadrature).
    max_examples: int | None = None
    #: The hazard (klspec.spec.hazards) the check is about, drawn on purpose: a root-cause
    #: analysis removes the others, never this one.
    hazard: str | None = None
    #: What of the implementation the strategy adapts to, passed to its factory as keywords:
    #: "precision" (the check rounds its inputs to the target's format and derives its
    #: tolerances from it; checks without it run at float64 only), "log_ratio_range", "beta"
    #: (a dpo target's own β; None lets the strategy draw it).
    adapts: tuple[str, ...] = ()
    #: Inputs tried first on every run, whatever the seed: ``examples(precision)`` gives
    #: the known killers of the clause in that format.
    examples: Callable[[Any], list[Any]] | None = None

    def search_strategy(self, impl: Implementation | None = None) -> st.SearchStrategy | None:
        """The strategy, built if it was given as a factory (for ``impl``'s format and range)."""
        if self.strategy is None or isinstance(self.strategy, st.SearchStrategy):
            return self.strategy
        if impl is None or not self.adapts:
            return self.strategy()
        given = {
            "precision": impl.precision,
            "log_ratio_range": impl.log_ratio_range,
            "beta": impl.beta,
        }
        return self.strategy(**{k: given[k] for k in self.adapts})

    def explicit(self, impl: Implementation | None = None) -> list[Any]:
        """The inputs tried first for ``impl`` (its format's killers), possibly none."""
        if self.examples is None:
            return []
        from klspec.spec.precision import FLOAT64

        precision = impl.precision if impl is not None else FLOAT64
        if "log_ratio_range" in self.adapts and impl is not None and impl.log_ratio_range:
            return self.examples(precision, log_ratio_range=impl.log_ratio_range)
        if "beta" in self.adapts and impl is not None and impl.beta is not None:
            return self.examples(precision, beta=impl.beta)
        return self.examples(precision)

    def runs_at(self, impl: Implementation) -> bool:
        """Whether the check can judge ``impl`` in its format (float64, or it adapts)."""
        return impl.dtype == "float64" or "precision" in self.adapts

    @property
    def description(self) -> str:
        """The first line of the property's docstring."""
        return (self.prop.__doc__ or "").strip().splitlines()[0] if self.prop.__doc__ else ""


REGISTERED: list[Check] = []


def _in_clause(prop: Property, clause_id: str) -> Property:
    """``prop`` with ``[clause_id]`` appended to its failure messages."""

    @functools.wraps(getattr(prop, "func", prop))
    def checked(impl: Implementation, case: Any) -> None:
        __tracebackhide__ = True
        try:
            prop(impl, case)
        except AssertionError as exc:
            exc.args = (f"{exc.args[0] if exc.args else 'violated'} [{clause_id}]", *exc.args[1:])
            raise

    return checked


def check(
    clause_id: str,
    *,
    needs: Iterable[str],
    on: dict[str, StrategySource] | None = None,
    name: str | None = None,
    strategy: StrategySource = None,
    max_examples: int | None = None,
    hazard: str | None = None,
    adapts: tuple[str, ...] = (),
    examples: Callable[[Any], list[Any]] | None = None,
) -> Callable[[Property], Property]:
    """Register the decorated property as one check per input, named ``clause_id[label]``.

    ``on`` maps labels to strategies. Without it there is one check, named
    ``name`` (default: the clause id), drawing from ``strategy`` (default:
    none, a fixed input). ``max_examples`` caps the examples of a costly check
    (its oracle integrates numerically, say), whatever the profile asks for;
    ``hazard`` names the hazard the check draws on purpose (a special case);
    ``adapts`` what the strategies adapt to (see :class:`Check`), and ``examples``
    the inputs every run tries first.
    """

    def register(prop: Property) -> Property:
        checked = _in_clause(prop, clause_id)
        if on is None:
            checks = {name or clause_id: strategy}
        else:
            checks = {f"{clause_id}[{label}]": source for label, source in on.items()}
        for check_name, source in checks.items():
            REGISTERED.append(
                Check(
                    check_name,
                    clause_id,
                    frozenset(needs),
                    source,
                    checked,
                    max_examples,
                    hazard,
                    tuple(adapts),
                    examples,
                )
            )
        return prop

    return register
