"""The reference meets every check of the spec.

Each check runs through the runner (as ``klspec check`` does) with the current
hypothesis profile's settings; the test id is the check's name.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from klspec.conformance import reference_implementation
from klspec.conformance.runner import run_check
from klspec.spec import CHECKS

REFERENCE = reference_implementation()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_reference_meets(check):
    result = run_check(check, REFERENCE, settings=settings())
    assert result.status == "pass", f"{result.message}\n{result.counterexample}\n{result.reproduce}"
