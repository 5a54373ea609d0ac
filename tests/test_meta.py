"""Meta-tests: every check rejects a deliberately broken implementation, and every
required clause accepts correct implementations that are built differently from the
reference (advisory clauses are the reference's own promises: see clauses.py, Levels).

A test that cannot fail is a defect (docs/design.md). The broken implementations, one
bug each, and the table of which check must reject which, live in
implementations_under_test.py; test_catalog.py makes sure every check is listed.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from implementations_under_test import (
    ACCEPTED,
    SCIPY_STATS_KL,
    TEXTBOOK,
    UNCLAMPED,
    broken_for,
)

from klspec.conformance.runner import run_check
from klspec.spec import CHECKS, clause
from klspec.spec.checks import check_named


def _rejection_settings() -> settings:
    # Search at least 200 inputs for a violation; shrinking is not needed to see one.
    base = settings()
    return settings(
        base, max_examples=max(200, base.max_examples), phases=[Phase.explicit, Phase.generate]
    )


REJECTIONS = [(check, impl) for check in CHECKS for impl in broken_for(check)]


@pytest.mark.parametrize(
    ("check", "impl"), REJECTIONS, ids=[f"{c.name}-{i.name}" for c, i in REJECTIONS]
)
def test_check_rejects_broken_implementation(check, impl):
    result = run_check(check, impl, settings=_rejection_settings())
    assert result.status == "fail", f"{impl.name} was not rejected: {result.status} {result.reason}"
    assert result.message.endswith(f"[{check.clause_id}]")
    assert ", but should " in result.message


ACCEPTANCES = [
    (check, impl)
    for impl in ACCEPTED
    for check in CHECKS
    if not impl.missing(check.needs) and clause(check.clause_id).level == "required"
]


@pytest.mark.parametrize(
    ("check", "impl"), ACCEPTANCES, ids=[f"{c.name}-{i.name}" for c, i in ACCEPTANCES]
)
def test_correct_implementation_is_accepted(check, impl):
    result = run_check(check, impl, settings=settings())
    assert result.status == "pass", f"{result.message}\n{result.counterexample}"


def test_accepted_implementations_cover_every_quantity():
    assert {"kl", "entropy", "cross_entropy"} <= TEXTBOOK.provides
    assert any(impl.name == "scipy.stats.entropy" for impl in ACCEPTED)


@pytest.mark.parametrize("impl", [UNCLAMPED, SCIPY_STATS_KL], ids=lambda i: i.name)
def test_literal_kl_is_negative_on_nearly_equal_inputs(impl):
    """The headline finding: Σ P log(P/Q) in float64, without a clamp, is accurate to its
    rounding (it passes kl.definition) yet returns negative values on nearly equal inputs."""
    nonnegative = run_check(
        check_named("kl.nonnegative[near_equal_pairs]"), impl, settings=settings()
    )
    assert nonnegative.status == "fail"
    assert "but should be >= 0 [kl.nonnegative]" in nonnegative.message
    assert nonnegative.message.startswith("kl(p, q)=-")
    for name in ("kl.definition[pairs]", "kl.definition[near_equal_pairs]"):
        assert run_check(check_named(name), impl, settings=settings()).status == "pass"
