"""klspec.conformance — running the spec's checks against any implementation.

- :func:`check` — check a function, a ``module:function`` or a built-in adapter
  and raise an ``AssertionError`` carrying the report if a required clause
  fails: the API for a user's own test suite (:mod:`klspec.conformance.api`).
- :func:`run` — run the checks, report per clause; :func:`replay` — rerun one
  check on one input (what a report's reproduction line calls).
- :func:`resolve` — what a target stands for (:mod:`klspec.conformance.targets`);
  :data:`ADAPTERS` — the built-in adapters of scipy, torch, jax, optax, keras.
- :mod:`klspec.conformance.causes` — why a check failed, in words.
- :mod:`klspec.conformance.matrix` — every adapter against every clause, as
  docs/conformance.md and docs/conformance.json.
- :mod:`klspec.conformance.pytest_plugin` — ``pytest --kl-impl TARGET``.

Everything here uses :mod:`klspec.spec` (what is required) and never the other way
round. The names are imported on first use, so that importing the pytest plugin,
which lives in this package, costs nothing when it is not asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module defining it.
_PUBLIC = {
    "check": "klspec.conformance.api",
    "ConformanceError": "klspec.conformance.api",
    "run": "klspec.conformance.runner",
    "replay": "klspec.conformance.runner",
    "run_check": "klspec.conformance.runner",
    "Report": "klspec.conformance.runner",
    "ClauseResult": "klspec.conformance.runner",
    "CheckResult": "klspec.conformance.runner",
    "PROFILES": "klspec.conformance.runner",
    "resolve": "klspec.conformance.targets",
    "reference_implementation": "klspec.conformance.targets",
    "TargetError": "klspec.conformance.targets",
    "ADAPTERS": "klspec.conformance.adapters",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'klspec.conformance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
