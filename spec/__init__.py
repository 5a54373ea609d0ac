"""klspec.spec — what is required of KL divergence and its neighbours.

- :data:`CATALOG` — every clause (:class:`Clause`), looked up with :func:`clause`;
  one module per topic in :mod:`klspec.spec.clauses`.
- :data:`CHECKS` — every executable :class:`Check` of a clause; one module per
  topic in :mod:`klspec.spec.checks`.
- :class:`Implementation` — the interface every check calls, and
  :data:`~klspec.spec.interface.FUNCTIONS`, the one list of functions.
- :mod:`klspec.spec.strategies` — hypothesis strategies for the hard inputs.
- :mod:`klspec.spec.tolerances`, :mod:`klspec.spec.oracle` — bounds derived
  from the inputs' conditioning, and the mpmath truth.
- :mod:`klspec.spec.derivations` — the sympy derivations, checked step by step.

Running the checks against an implementation is :mod:`klspec.conformance`'s job.
``check``, ``run``, ``replay``, ``ConformanceError`` and
``reference_implementation`` lived here before; they still resolve, to
:mod:`klspec.conformance`, with a DeprecationWarning (the only place this package
names that one, and only when such a name is asked for).
"""

from __future__ import annotations

from typing import Any

from klspec.spec import strategies
from klspec.spec.checks import CHECKS, Check
from klspec.spec.clauses import CATALOG, Clause, clause
from klspec.spec.interface import Implementation

__all__ = ["CATALOG", "CHECKS", "Check", "Clause", "Implementation", "clause", "strategies"]

#: Names that moved to klspec.conformance (resolved on use, with a DeprecationWarning).
MOVED = frozenset({"check", "run", "replay", "ConformanceError", "reference_implementation"})


def __getattr__(name: str) -> Any:
    if name in MOVED:
        import importlib
        import warnings

        warnings.warn(
            f"klspec.spec.{name} moved to klspec.conformance.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("klspec.conformance"), name)
    raise AttributeError(f"module 'klspec.spec' has no attribute {name!r}")
