"""klspec.spec.derivations — the post's derivations, checked step by step with sympy.

A derivation is data (:class:`Derivation`: chains of :class:`Step` s, each with an
expression, a one-line justification and the check that verifies it). :func:`check`
runs it and reports, per step, the level reached — proved, by rule, under
constraint, for sizes, numeric, or asserted (:class:`Level`); an undecided check is a
failure.

- :data:`DERIVATIONS` — every derivation, by id, in the post's reading order.
- :func:`run` / :func:`main_prove` — check some or all (``klspec prove [ID]``).
- :func:`to_latex` (the numbered math of the chains) / :func:`to_markdown` /
  :func:`proof_pages` (pages with the levels the checker reached beside each step).

This is the only part of klspec that imports sympy.
"""

from klspec.spec.derivations._core import (
    Chain,
    ChainResult,
    Derivation,
    DerivationResult,
    Step,
    StepResult,
    check,
    check_step,
    with_step,
)
from klspec.spec.derivations.checks import (
    ByRule,
    ForSizes,
    Level,
    Numeric,
    Proved,
    Rule,
    UnderConstraint,
    reduce_to_zero,
)
from klspec.spec.derivations.prove import main_prove, run
from klspec.spec.derivations.registry import DERIVATIONS
from klspec.spec.derivations.render import proof_pages, to_latex, to_markdown

__all__ = [
    "DERIVATIONS",
    "ByRule",
    "Chain",
    "ChainResult",
    "Derivation",
    "DerivationResult",
    "ForSizes",
    "Level",
    "Numeric",
    "Proved",
    "Rule",
    "Step",
    "StepResult",
    "UnderConstraint",
    "check",
    "check_step",
    "main_prove",
    "proof_pages",
    "reduce_to_zero",
    "run",
    "to_latex",
    "to_markdown",
    "with_step",
]
