"""Property checks: every clause of the catalog, executable against any implementation.

A :class:`Check` pairs a *property* — a plain function ``prop(impl, case)`` that
raises ``AssertionError`` on a violation — with the strategy drawing its input and
what the implementation must provide (``needs``). Properties see only the
:class:`~klspec.spec.interface.Implementation` interface, so they do not know
whether they check the reference or scipy.

One module per topic, named like the clauses and the reference
(:data:`klspec.spec.interface.TOPICS`): the checks of ``kl.*`` are in
:mod:`klspec.spec.checks.divergences`, beside :mod:`klspec.spec.clauses.divergences`
and :mod:`klspec.reference.divergences`. Each registers its checks on import
(:mod:`klspec.spec.checks._registry`); :data:`CHECKS` orders them by the catalog.

Names read ``clause[input]`` (``kl.nonnegative[near_equal_pairs]``); special cases
are named by their row of the table (``kl(p_i == 0 and q_i > 0) -> term 0``) and
worked examples by their clause id. Every failure message ends with the clause id
in brackets: ``kl(p, q)=-2.1e-17, but should be >= 0 [kl.nonnegative]``.
"""

from __future__ import annotations

from klspec.spec.checks import (  # noqa: F401  (each registers its checks)
    divergences,
    fitting,
    language_models,
    likelihood,
    noise_models,
    preference,
    rlhf,
)
from klspec.spec.checks._registry import REGISTERED, Check
from klspec.spec.clauses import CATALOG
from klspec.spec.clauses._base import lookup

__all__ = ["CHECKS", "Check", "check_named", "checks_for"]

_ORDER = {c.id: i for i, c in enumerate(CATALOG)}

#: Every check, in catalog order.
CHECKS: tuple[Check, ...] = tuple(sorted(REGISTERED, key=lambda c: _ORDER[c.clause_id]))

_BY_NAME = {c.name: c for c in CHECKS}


def checks_for(clause_id: str) -> tuple[Check, ...]:
    """The checks of one clause, in registration order."""
    return tuple(c for c in CHECKS if c.clause_id == clause_id)


def check_named(name: str) -> Check:
    """The check with this name; ``KeyError`` naming close matches if there is none."""
    return lookup(_BY_NAME, name, "check")
