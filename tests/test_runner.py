"""The runner: results, skips, clean failures from misbehaving implementations, replay."""

from __future__ import annotations

import math
import shlex

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from implementations_under_test import SCIPY_STATS_ENTROPY, SIGN_ERROR

from klspec.conformance import replay, run
from klspec.conformance import targets as targets_module
from klspec.conformance.runner import PROFILES, run_check
from klspec.spec import Implementation
from klspec.spec._assert import literal
from klspec.spec.checks import check_named

NONNEGATIVE = check_named("kl.nonnegative[pairs]")


def test_failure_has_message_counterexample_and_a_working_reproduction(monkeypatch):
    result = run_check(NONNEGATIVE, SIGN_ERROR, settings=settings())
    assert result.status == "fail"
    assert result.message.startswith("kl(p, q)=-")
    assert result.message.endswith(", but should be >= 0 [kl.nonnegative]")
    # Shrunk to arrays written out, or to the seeded recipe of a large case: both rebuild it.
    assert result.counterexample.startswith(("Case(p=np.array(", "build_case("))
    # The reproduction line reruns the check on the same arrays and fails the same way.
    monkeypatch.setitem(targets_module._TARGETS, "sign_error", lambda: SIGN_ERROR)
    argv = shlex.split(result.reproduce)
    assert argv[:2] == ["python", "-c"]
    with pytest.raises(AssertionError) as info:
        exec(argv[2], {})
    assert str(info.value) == result.message


def test_replay_passes_quietly_on_the_reference(capsys):
    replay("kl.nonnegative[pairs]", "reference", p=np.array([0.7, 0.3]), q=np.array([0.5, 0.5]))
    assert "reference passes" in capsys.readouterr().out


def test_replay_of_a_fixed_input_check_needs_no_arrays(capsys):
    replay("example.weather.reverse")
    assert "passes" in capsys.readouterr().out


def test_checks_an_implementation_cannot_run_are_skipped_with_the_reason():
    result = run_check(NONNEGATIVE, SCIPY_STATS_ENTROPY, settings=settings())
    assert result.status == "skip"
    assert result.reason == "scipy.stats.entropy lacks kl"


def test_report_counts_clauses_and_skips():
    report = run(SCIPY_STATS_ENTROPY, ["entropy.bounds", "kl.nonnegative"], profile="fast")
    assert report.summary == "1 passed, 0 failed, 1 skipped"
    assert report.ok


def _misbehaving(result) -> Implementation:
    return Implementation("misbehaving", kl=lambda p, q: result(p, q))


def _raise(p, q):
    raise ZeroDivisionError("oops")


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (_raise, "kl(p, q) raised ZeroDivisionError('oops'), but should return a value"),
        (lambda p, q: math.nan, "kl(p, q)=nan, but should be a number"),
        (lambda p, q: "0.1", "kl(p, q) returned str '0.1', but should return a real number"),
        (lambda p, q: np.zeros(2), "kl(p, q) has shape (2,), but should have shape ()"),
        (lambda p, q: None, "kl(p, q) returned NoneType None, but should return a real number"),
    ],
    ids=["raises", "nan", "str", "shape", "none"],
)
def test_misbehaviour_is_a_clean_failure(behaviour, message):
    result = run_check(NONNEGATIVE, _misbehaving(behaviour), settings=PROFILES["fast"])
    assert result.status == "fail"
    assert result.message == f"{message} [kl.nonnegative]"


def test_a_check_that_cannot_run_is_an_error_not_a_pass():
    from hypothesis.errors import Unsatisfiable  # noqa: F401  (the error being reported)

    never = check_named("kl.zero_iff_equal[p != q]")
    equal_inputs = never.__class__(
        never.name, never.clause_id, never.needs, lambda: st.just(_equal_case()), never.prop
    )
    result = run_check(equal_inputs, SIGN_ERROR, settings=PROFILES["fast"])
    assert result.status == "error"
    assert "could not run" in result.message


def _equal_case():
    from klspec.spec.strategies import Case

    return Case(p=[0.5, 0.5], q=[0.5, 0.5])


def test_profiles_are_plain_settings():
    assert PROFILES["fast"].max_examples == 25
    assert PROFILES["fast"].derandomize
    assert PROFILES["default"].max_examples == 100
    assert PROFILES["thorough"].max_examples == 2000
    assert all(p.database is None and p.deadline is None for p in PROFILES.values())


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=40),
        elements=st.sampled_from([0.0, 1.0, 0.25, 5e-324, math.inf, 0.1]),
    )
)
def test_literal_rebuilds_arrays_bit_for_bit(x):
    rebuilt = eval(literal(x), {"np": np})
    assert rebuilt.shape == x.shape
    assert rebuilt.tobytes() == x.tobytes()
