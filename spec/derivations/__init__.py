"""klspec.spec.derivations — the post's derivations, checked step by step with sympy.

A derivation is data (:class:`Derivation`: chains of :class:`Step` s, each with an
expression, a one-line justification and the check that verifies it). :func:`check`
runs it and reports, per step, the level reached — proved, by rule, under
constraint, for sizes, numeric, or asserted (:class:`Level`); an undecided check is a
failure.

- :data:`DERIVATIONS` — every derivation, by id, in the post's reading order.
- :func:`run` / :func:`main_prove` — check some or all (``klspec prove [ID]``).
- Your own derivations: write them with the names exported here (:class:`Derivation`,
  :class:`Chain`, :class:`Step`, the checks, :func:`notation`, :mod:`.rules`) and check
  them with ``klspec prove --module mypkg.derivations`` (:func:`discover` says which
  objects count) or :func:`run_derivations`. The guide is docs/derivations.md; a
  worked example to copy is examples/label_smoothing.py in the repository.
- :func:`to_latex` (the numbered math of the chains) / :func:`to_markdown` /
  :func:`proof_pages` (pages with the levels the checker reached beside each step).

This is the only part of klspec that imports sympy.
"""

from klspec.spec.derivations import rules  # the named rewrites a ByRule step may use
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
    Zero,
    equations,
    moments,
    reduce_to_zero,
    sums_to_one,
)
from klspec.spec.derivations.claims import argmax, argmin
from klspec.spec.derivations.notation import notation, opaque
from klspec.spec.derivations.prove import discover, main_prove, run, run_derivations
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
    "Zero",
    "argmax",
    "argmin",
    "check",
    "check_step",
    "discover",
    "equations",
    "main_prove",
    "moments",
    "notation",
    "opaque",
    "proof_pages",
    "reduce_to_zero",
    "rules",
    "run",
    "run_derivations",
    "sums_to_one",
    "to_latex",
    "to_markdown",
    "with_step",
]
