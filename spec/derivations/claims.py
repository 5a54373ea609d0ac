r"""Structured consequences for ``⇒`` steps: argmin, argmax, and what the chain knows.

A ``⇒`` step states a consequence of the chain so far: "argmin_f (−ln L) = argmin_f
MSE(f)", "argmin_θ D_KL = a/(a + b)". The claim is built from sympy objects, not
written as text, and its TeX is generated from them, so the rule that licenses it reads
exactly what the page shows: :data:`.rules.AFFINE_ARGMIN` takes the two objectives and
the variables from the claim, and checks that the left one is the chain's own
expression. A claim whose words say something the checker did not check cannot be
written.

- :func:`argmin`, :func:`argmax`: the set of minimisers (maximisers) of an objective
  over some variables, as a sympy expression (``Argmin(objective, (vars,))``).
- A claim is ``sp.Eq(argmin(F, f), argmin(G, f))``, ``sp.Eq(argmin(F, θ), value)``,
  or ``sp.And`` of such equations.
- :class:`Context` is what the checker knows when it reaches a step: the expressions
  the chain has shown equal to the previous line, the consequences checked so far in
  the derivation, and the results of earlier chains (:func:`context`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import sympy as sp

__all__ = [
    "Argmax",
    "Argmin",
    "Context",
    "argmax",
    "argmin",
    "components",
    "context",
    "in_context",
]


class _Optimisers(sp.Function):
    """The set of optimisers of ``objective`` over the variables ``over`` (a Tuple)."""

    nargs = 2
    operator = ""

    @property
    def objective(self) -> sp.Basic:
        return self.args[0]

    @property
    def over(self) -> tuple[sp.Basic, ...]:
        return tuple(self.args[1])

    def doit(self, **hints):  # a set of points is not a number: nothing to evaluate
        return self

    def _latex(self, printer) -> str:
        variables = ", ".join(printer._print(v) for v in self.over)
        body = printer._print(self.objective)
        if isinstance(self.objective, sp.Add):
            body = rf"\left({body}\right)"
        return rf"\operatorname*{{{self.operator}}}_{{{variables}}} {body}"

    def _sympystr(self, printer) -> str:
        return f"{type(self).__name__}({printer._print(self.objective)}, {self.over})"


class Argmin(_Optimisers):
    """argmin over ``over`` of ``objective`` (the set of minimisers)."""

    operator = "argmin"


class Argmax(_Optimisers):
    """argmax over ``over`` of ``objective`` (the set of maximisers)."""

    operator = "argmax"


def argmin(objective: sp.Basic, *over: sp.Basic) -> Argmin:
    """``Argmin(objective, over)``: the minimisers of ``objective`` over the variables."""
    if not over:
        raise TypeError("argmin needs the variables it minimises over")
    return Argmin(objective, sp.Tuple(*over))


def argmax(objective: sp.Basic, *over: sp.Basic) -> Argmax:
    """``Argmax(objective, over)``: the maximisers of ``objective`` over the variables."""
    if not over:
        raise TypeError("argmax needs the variables it maximises over")
    return Argmax(objective, sp.Tuple(*over))


def components(claim: sp.Basic) -> tuple[sp.Basic, ...]:
    """The equations a claim is made of: the arguments of an ``And``, or the claim."""
    return tuple(claim.args) if isinstance(claim, sp.And) else (claim,)


@dataclass(frozen=True)
class Context:
    """What the checker knows at a step, so a rule can tie a claim to the chain.

    ``same``: expressions the chain has shown equal to the previous line (the start
    and every "=" step since the last inequality; a ``≥``/``≤``/``≈`` step starts
    afresh). ``established``: the ``⇒`` consequences checked so far in this
    derivation, each of which passed. ``known``: start → result of each earlier chain
    made only of "=" steps, all of which passed.
    """

    same: tuple[sp.Basic, ...] = ()
    established: tuple[sp.Basic, ...] = ()
    known: Mapping[sp.Basic, sp.Basic] = field(default_factory=dict)


_CONTEXT: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "klspec_derivation_context", default=None
)


def context() -> Context:
    """The :class:`Context` of the step being checked (empty outside a derivation)."""
    ctx = _CONTEXT.get()
    return Context() if ctx is None else ctx


@contextlib.contextmanager
def in_context(ctx: Context) -> Iterator[None]:
    """Check a step with ``ctx`` as its :func:`context`."""
    token = _CONTEXT.set(ctx)
    try:
        yield
    finally:
        _CONTEXT.reset(token)
