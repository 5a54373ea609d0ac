r"""The clause catalog: what klspec requires of entropy, cross-entropy and KL divergence.

A clause is stated once, here, with a stable id (``kl.nonnegative``). Checks
(:mod:`klspec.spec.checks`), the runner's report, xfail lists and the docs all
refer to clauses by id. :data:`CATALOG` is ordered for reading: definitions,
special cases, the post's worked examples, properties, then what the API
promises about inputs.

Quantities are defined on the *normalised* inputs P = p/Σp and Q = q/Σq, with
0·log 0 = 0: floating-point probability vectors sum to 1 only within rounding,
and the definition must not depend on that rounding (docs/design.md, "The numerical
definition"). Where a clause is checked with a tolerance, its ``notes`` say how
the tolerance is derived from the inputs' conditioning (:mod:`klspec.spec.tolerances`).

Levels
------
A clause is **required** or **advisory** (:attr:`Clause.level`). Required
clauses are what every correct implementation meets: the value of the formula
within the error a correct float64 evaluation can make (so the textbook
formula in float64 passes, float32 or a relative bias of 1e-9 does not), the
conventions at zero, the theorems that follow from the definition (within
the same tolerances), and not writing into the inputs. Non-negativity is
required and exact: a negative KL is wrong however small, and clamping at
zero is a legitimate fix. Checks that need a capability (batching, ``base=``,
``axis=``) run only for implementations declaring it, so requiring them
asks only that what is offered be right. Advisory clauses are promises the
reference makes beyond that — accuracy far below the rounding of the inputs,
and validating inputs with errors that name the argument; they are reported
but do not decide a conformance run's exit status. Each advisory clause says
why in its notes.
"""

from __future__ import annotations

from klspec.spec.clauses import (
    divergences,
    fitting,
    language_models,
    likelihood,
    noise_models,
    preference,
    rlhf,
)
from klspec.spec.clauses._base import KINDS, LEVELS, Clause, Kind, Level, lookup
from klspec.spec.interface import TOPIC_KEYS

__all__ = [
    "CATALOG",
    "KINDS",
    "LEVELS",
    "Clause",
    "Kind",
    "Level",
    "clause",
    "clause_anchor",
    "derivation_clauses",
]

_MODULES = {
    "divergences": divergences,
    "noise_models": noise_models,
    "likelihood": likelihood,
    "fitting": fitting,
    "language_models": language_models,
    "rlhf": rlhf,
    "preference": preference,
}
assert tuple(_MODULES) == TOPIC_KEYS, "one clause module per topic, in reading order"

#: Every clause, ordered for reading: by topic, then by kind.
CATALOG: tuple[Clause, ...] = tuple(
    sorted(
        (c for module in _MODULES.values() for c in module.CLAUSES),
        key=lambda c: (TOPIC_KEYS.index(c.topic), KINDS.index(c.kind)),
    )
)

_BY_ID = {c.id: c for c in CATALOG}


def derivation_clauses() -> tuple[Clause, ...]:
    """The clauses the sympy derivations establish, one per derivation, in reading order.

    They are about the mathematics, not an implementation, so they are not in
    :data:`CATALOG` (which ``klspec check`` runs against implementations): each is
    checked step by step by ``klspec prove ID`` and numerically by the test named in
    its notes. Built from the derivation objects themselves, so the statement is the
    one the checker proves. Imports sympy.
    """
    from klspec.spec.derivations import DERIVATIONS  # sympy: only when asked

    out = []
    for d in DERIVATIONS.values():
        notes = f"Checked step by step by `klspec prove {d.id.removeprefix('derivation.')}`"
        if d.numeric_crosscheck:
            notes += f"; numerically by `{d.numeric_crosscheck}`"
        if d.clause_ids:
            notes += "; also establishes " + ", ".join(f"`{c}`" for c in d.clause_ids)
        out.append(Clause(d.id, d.statement, "", "derivation", (), notes + "."))
    return tuple(out)


def clause(id: str) -> Clause:
    """The clause with this id; ``KeyError`` naming close matches if there is none."""
    return lookup(_BY_ID, id, "clause")


def clause_anchor(clause_id: str) -> str:
    """The anchor of a clause in docs/index.md: ``kl.decomposition`` -> ``kl-decomposition``."""
    return clause_id.replace(".", "-").replace("_", "-")
