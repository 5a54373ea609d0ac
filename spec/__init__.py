"""klspec.spec — what is required of KL divergence, and how to check it.

- :data:`CATALOG` — every clause (:class:`Clause`), looked up with :func:`clause`.
- :data:`CHECKS` — every executable :class:`Check` of a clause.
- :class:`Implementation` — what is under test; :func:`reference_implementation`.
- :func:`run` — run the checks against an implementation, report per clause;
  :func:`replay` — rerun one check on one input (what a report's reproduction
  line calls).
- :func:`check` — check a function (or a built-in adapter, see
  :mod:`klspec.spec.adapters`) and raise an AssertionError carrying the report
  if a required clause fails: the API for a user's own test suite.
- :mod:`klspec.spec.strategies` — hypothesis strategies for the hard inputs.
"""

from klspec.spec import strategies
from klspec.spec.checks import CHECKS, Check
from klspec.spec.clauses import CATALOG, Clause, clause
from klspec.spec.conformance import ConformanceError, check
from klspec.spec.implementations import Implementation, reference_implementation
from klspec.spec.runner import replay, run

__all__ = [
    "CATALOG",
    "CHECKS",
    "Check",
    "Clause",
    "ConformanceError",
    "Implementation",
    "check",
    "clause",
    "reference_implementation",
    "replay",
    "run",
    "strategies",
]
