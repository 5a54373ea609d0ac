"""Derivations as data, and the checker that runs them step by step.

A :class:`Derivation` is a title, a statement, its assumptions (in words and as the
sympy symbols that carry them) and one or more :class:`Chain` s. A chain starts from
an expression and lists :class:`Step` s; each step states a relation to the previous
expression (``=``, ``≥``, ``≤``, ``≈``, or ``⇒`` for a consequence), gives the new
expression, one line of justification, and the check that verifies it
(:mod:`.checks`). :func:`check` runs every step and reports the level it reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import sympy as sp

from klspec.spec.derivations.checks import (
    RELATIONS,
    BudgetExceeded,
    Check,
    Level,
    Outcome,
    integrable,
    time_budget,
)
from klspec.spec.derivations.claims import Context, in_context

#: Seconds one step's check may take before it counts as undecided (the slowest step
#: takes about 2.5 s on a 2-core machine).
STEP_BUDGET = 60.0

__all__ = [
    "Chain",
    "ChainResult",
    "Derivation",
    "DerivationResult",
    "Step",
    "StepResult",
    "check",
    "with_step",
]


@dataclass(frozen=True)
class Step:
    """One line: ``relation`` to the previous expression, the new ``expr``, ``why``, ``check``."""

    expr: sp.Basic
    why: str
    check: Check
    relation: str = "="

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation {self.relation!r} is not one of {RELATIONS}")


@dataclass(frozen=True)
class Chain:
    """``lhs`` (how the docs name the start; defaults to ``start``), ``start``, ``steps``."""

    start: sp.Basic
    steps: tuple[Step, ...]
    lhs: sp.Basic | None = None
    title: str = ""


@dataclass(frozen=True)
class Derivation:
    """A checked derivation.

    ``id`` is stable (``derivation.gaussian_nll_mse``) and is also the id of the
    catalog clause the derivation stands for; ``statement`` is one line;
    ``assumptions`` say in words what ``symbols`` declare to sympy; ``conclusion`` is
    what the chains establish; ``clause_ids`` other catalog clauses it proves;
    ``numeric_crosscheck`` names the hypothesis test that checks the result
    numerically; ``honesty`` says plainly which parts are not proved in general.
    """

    id: str
    title: str
    statement: str
    assumptions: tuple[str, ...]
    symbols: Mapping[str, sp.Basic]
    chains: tuple[Chain, ...]
    conclusion: str
    clause_ids: tuple[str, ...] = ()
    numeric_crosscheck: str = ""
    honesty: str = ""
    #: Integrals the hypotheses say exist (e.g. ∫p log p for finite entropy): the checker
    #: merges integrals only when each exists (:func:`.checks.integrable`).
    integrable: tuple[sp.Integral, ...] = ()

    @property
    def start(self) -> sp.Basic:
        return self.chains[0].start

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.chains[0].steps

    @property
    def result(self) -> sp.Basic:
        """The last expression of the first chain that is not a consequence (``⇒``)."""
        exprs = [self.chains[0].start] + [s.expr for s in self.chains[0].steps if s.relation != "⇒"]
        return exprs[-1]


@dataclass(frozen=True)
class StepResult:
    """What the checker found for one step."""

    step: Step
    claimed: Level
    level: Level | None
    ok: bool
    seconds: float
    detail: str
    label: str

    @property
    def as_claimed(self) -> bool:
        """Passed, at exactly the level the step claims."""
        return self.ok and self.level == self.claimed

    @property
    def level_text(self) -> str:
        return self.label if self.ok else "FAILED"

    @property
    def sizes(self) -> tuple | None:
        """The concrete sizes of a step checked "for sizes" (else None)."""
        return getattr(self.step.check, "sizes", None) if self.level is Level.FOR_SIZES else None


@dataclass(frozen=True)
class ChainResult:
    chain: Chain
    steps: tuple[StepResult | None, ...]  # None: not selected for checking


@dataclass(frozen=True)
class DerivationResult:
    derivation: Derivation
    chains: tuple[ChainResult, ...]
    seconds: float

    @property
    def step_results(self) -> list[StepResult]:
        return [r for c in self.chains for r in c.steps if r is not None]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.step_results)

    @property
    def as_claimed(self) -> bool:
        return all(r.as_claimed for r in self.step_results)


def check_step(prev: sp.Basic, step: Step, *, budget: float | None = STEP_BUDGET) -> StepResult:
    """Run one step's check against the previous expression, within ``budget`` seconds."""
    t0 = time.perf_counter()
    try:
        with time_budget(budget):
            outcome = step.check.verify(prev, step.expr, step.relation)
    except BudgetExceeded as exc:  # undecided
        outcome = Outcome(False, None, f"undecided: {exc}")
    except Exception as exc:  # a check that crashes proves nothing
        outcome = Outcome(False, None, f"check raised {type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - t0
    return StepResult(
        step=step,
        claimed=step.check.level,
        level=outcome.level if outcome.ok else None,
        ok=outcome.ok,
        seconds=seconds,
        detail=outcome.detail,
        label=outcome.label,
    )


def check(
    derivation: Derivation,
    *,
    select: Callable[[int, int], bool] | None = None,
    on_step: Callable[[int, int, StepResult], None] | None = None,
    budget: float | None = STEP_BUDGET,
) -> DerivationResult:
    """Check every step of ``derivation`` (or those ``select(chain, step)`` picks).

    A step whose check is undecided fails; a failure does not stop the others. Steps
    not selected are taken as stated: a selected step that relies on an earlier
    consequence or chain result (:class:`~.claims.Context`) is checked given them.
    """
    t0 = time.perf_counter()
    chains = []
    with integrable(derivation.integrable):
        chains = _check_chains(derivation, select, on_step, budget)
    return DerivationResult(derivation, tuple(chains), time.perf_counter() - t0)


def _check_chains(derivation, select, on_step, budget) -> list[ChainResult]:
    chains = []
    established: list[sp.Basic] = []  # ⇒ consequences that passed
    known: dict[sp.Basic, sp.Basic] = {}  # start → result of earlier all-"=" chains
    for ci, chain in enumerate(derivation.chains):
        prev, results = chain.start, []
        same = [chain.start]  # shown equal to prev (see claims.Context)
        for si, step in enumerate(chain.steps):
            if select is None or select(ci, si):
                ctx = Context(tuple(same), tuple(established), dict(known))
                with in_context(ctx):
                    result = check_step(prev, step, budget=budget)
                if on_step is not None:
                    on_step(ci, si, result)
                results.append(result)
                if step.relation == "⇒" and result.ok:
                    established.append(step.expr)
            else:  # not checked now: taken as the rest of the derivation states it
                results.append(None)
                if step.relation == "⇒":
                    established.append(step.expr)
            if step.relation == "=":
                same.append(step.expr)
            elif step.relation != "⇒":
                same = [step.expr]
            if step.relation != "⇒":
                prev = step.expr
        if chain.steps and all(
            s.relation == "⇒" or (s.relation == "=" and (r is None or r.ok))
            for s, r in zip(chain.steps, results, strict=True)
        ):
            known[chain.start] = prev
        chains.append(ChainResult(chain, tuple(results)))
    return chains


def with_step(derivation: Derivation, chain: int, step: int, **changes) -> Derivation:
    """A copy of ``derivation`` with one step changed (for negative controls)."""
    chains = list(derivation.chains)
    steps = list(chains[chain].steps)
    steps[step] = replace(steps[step], **changes)
    chains[chain] = replace(chains[chain], steps=tuple(steps))
    return replace(derivation, chains=tuple(chains))
