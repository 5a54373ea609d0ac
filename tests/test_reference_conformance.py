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


#: Checks about what the reference does not declare (a clamp, with its range).
NOT_APPLICABLE = {k.name for k in CHECKS if "log_ratio_range" in k.needs}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_reference_meets(check):
    result = run_check(check, REFERENCE, settings=settings())
    if check.name in NOT_APPLICABLE:
        assert result.status == "skip", result.message
        return
    assert result.status == "pass", f"{result.message}\n{result.counterexample}\n{result.reproduce}"
