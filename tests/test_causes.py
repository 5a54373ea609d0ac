"""Root causes: a failure is blamed on what it needs, conventions are not called inaccuracy.

Each test builds an implementation with one known defect (or one documented
convention), makes a check fail on an input that also holds other hazards, and
asserts that the cause names the defect and nothing else. Negative controls:
an implementation wrong everywhere is not blamed on a hazard, and a value that no
convention gives is not excused by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings

from klspec.conformance import run
from klspec.conformance.causes import Cause, analyse
from klspec.conformance.conventions import (
    FLOAT32,
    GENERALISED,
    MEAN_OVER_ELEMENTS,
    UNNORMALISED,
    clipped,
)
from klspec.conformance.matrix import clause_cell, findings
from klspec.spec import Implementation
from klspec.spec.checks import check_named
from klspec.spec.strategies import Case, near_equal_pairs


def _normalised(x):
    return x / x.sum(axis=-1, keepdims=True)


def correct_kl(p, q):
    return np.maximum(scipy.special.rel_entr(_normalised(p), _normalised(q)).sum(axis=-1), 0.0)


def nan_at_both_zero(p, q):
    """Correct, except NaN where p_i = q_i = 0 (torch.kl_div's 0·(log 0 − log 0))."""
    if ((p == 0) & (q == 0)).any():
        return math.nan
    return correct_kl(p, q)


def biased(p, q):
    return correct_kl(p, q) * (1 + 1e-6)


#: p_i = q_i = 0 at index 0, a subnormal q at index 2 and p_i = 0 < q_i at index 3.
HAZARDOUS = Case(p=[0.0, 0.5, 0.5, 0.0], q=[0.0, 0.4, 1e-310, 0.6 - 1e-310])
DEFINITION = check_named("kl.definition[pairs]")


def _cause(fn, case=HAZARDOUS, check=DEFINITION, symptom=None, **options) -> Cause:
    impl = Implementation("under test", kl=fn, **options)
    with pytest.raises(AssertionError) as info:
        check.prop(impl, case)
    return analyse(check, impl, case, symptom or info.value.symptom, str(info.value))


def test_nan_is_blamed_on_the_both_zero_outcome_alone():
    cause = _cause(nan_at_both_zero)
    assert cause.symptom == "nan"
    assert cause.hazards == ("both_zero",)
    assert cause.text == "returns NaN where p_i = q_i = 0"
    assert not cause.by_convention


def test_a_defect_everywhere_is_not_blamed_on_a_hazard():
    cause = _cause(biased)
    assert cause.hazards == ()
    assert cause.text.startswith("returns a wrong value")


def test_a_subnormal_flush_is_blamed_on_the_subnormal_entry():
    def flushes(p, q):
        return correct_kl(p, np.where(q < 2.2250738585072014e-308, 0.0, q))

    cause = _cause(flushes)
    assert cause.hazards == ("subnormal",)
    assert cause.symptom == "inf"


def test_the_check_own_hazard_is_kept():
    check = check_named("kl(p_i == 0 and q_i == 0) -> term 0")
    case = Case(p=[0.0, 0.5, 0.5], q=[0.0, 0.5, 0.5])
    cause = _cause(nan_at_both_zero, case=case, check=check)
    assert cause.hazards == ("both_zero",)


def test_a_special_case_failed_by_a_defect_everywhere_is_not_blamed_on_its_condition():
    check = check_named("kl(p_i == 0 and q_i > 0) -> term 0")
    cause = _cause(biased, case=Case(p=[0.0, 0.5, 0.5], q=[0.2, 0.3, 0.5]), check=check)
    assert cause.hazards == ()
    nan = _cause(nan_at_both_zero, case=Case(p=[0.0, 0.5, 0.5], q=[0.0, 0.3, 0.7]),
                 check=check_named("kl(p_i == 0 and q_i == 0) -> term 0"))  # fmt: skip
    assert nan.hazards == ("both_zero",)


def test_kl_of_p_with_itself_names_both_zero():
    """kl.zero_iff_equal calls kl(p, p): a zero of p is a zero of both arguments."""
    check = check_named("kl.zero_iff_equal[p == q]")
    cause = _cause(nan_at_both_zero, case=Case(p=[0.0, 1.0]), check=check)
    assert cause.text == "returns NaN where p_i = q_i = 0"


def test_a_declared_convention_explains_the_values():
    def mean_reduction(p, q):
        return scipy.special.rel_entr(p, q).sum() / p.size

    cause = _cause(
        mean_reduction, case=Case(p=[0.7, 0.3], q=[0.5, 0.5]), conventions=(MEAN_OVER_ELEMENTS,)
    )
    assert cause.by_convention
    assert cause.declared
    assert cause.title.startswith("by its documented convention, it reduces with reduction='mean'")
    # The same value, undeclared: not excused by a convention it does not have.
    undeclared = _cause(mean_reduction, case=Case(p=[0.7, 0.3], q=[0.5, 0.5]))
    assert not undeclared.by_convention


def test_clipping_explains_a_finite_value_where_kl_is_infinite():
    def keras(p, q):
        p, q = np.clip(p, 1e-7, 1), np.clip(q, 1e-7, 1)
        return np.sum(p * np.log(p / q))

    check = check_named("kl(p_i > 0 and q_i == 0) -> +inf")
    cause = _cause(
        keras,
        case=Case(p=[0.5, 0.5], q=[0.0, 1.0]),
        check=check,
        conventions=(clipped(1e-7, 1.0, "keras"),),
    )
    assert cause.symptom == "not_inf"
    assert cause.by_convention
    assert "clips p and q to [1e-07, 1]" in cause.title
    # A clip at another bound is not what the value is.
    other = _cause(
        keras,
        case=Case(p=[0.5, 0.5], q=[0.0, 1.0]),
        check=check,
        conventions=(clipped(1e-12, 1.0, "elsewhere"),),
    )
    assert not other.by_convention


NEAR = Case(p=[0.5, 0.5], q=[0.5 + 2**-53, 0.5 - 2**-53 + 2**-54])
NONNEGATIVE = check_named("kl.nonnegative[pairs]")


def test_a_negative_kl_of_the_unnormalised_formula_is_told_apart_from_rounding():
    def literal(p, q):
        return float(scipy.special.rel_entr(p, q).sum())

    case = Case(p=[0.3, 0.7], q=[0.3 + 2**-54, 0.7 + 2**-53])  # Σq > Σp: Σ p log(p/q) < 0
    impl_value = literal(case.p, case.q)
    assert impl_value < 0
    declared = _cause(literal, case=case, check=NONNEGATIVE, conventions=(UNNORMALISED,))
    assert declared.by_convention
    assert "exactly" in declared.note
    assert "< 0" in declared.note
    # Undeclared, a value within the clause's own rounding is put down to rounding.
    undeclared = _cause(literal, case=case, check=NONNEGATIVE)
    assert not undeclared.by_convention
    assert undeclared.note.startswith("rounding: the exact value is")


def test_float32_explains_token_kl_values_within_float32_rounding_only():
    def in_float32(a, b):
        a, b = (np.asarray(x, dtype=np.float32) for x in (a, b))
        la = (
            a
            - np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True))
            - a.max(-1, keepdims=True)
        )
        lb = (
            b
            - np.log(np.exp(b - b.max(-1, keepdims=True)).sum(-1, keepdims=True))
            - b.max(-1, keepdims=True)
        )
        return (np.exp(la) * (la - lb)).sum(-1).astype(np.float64)

    def off_by_10_percent(a, b):
        from klspec.reference import token_kl

        return token_kl(a, b) * 1.1

    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (2, 8))  # KL ~ 0.5: 10% is far beyond float32's rounding
    case = Case(logits_p=a, logits_q=a + rng.normal(0, 1, a.shape))
    check = check_named("token_kl.definition[logits]")
    for fn, explained in ((in_float32, True), (off_by_10_percent, False)):
        impl = Implementation("t", token_kl=fn, conventions=(FLOAT32,))
        with pytest.raises(AssertionError) as info:
            check.prop(impl, case)
        cause = analyse(check, impl, case, info.value.symptom)
        assert cause.by_convention is explained, fn.__name__


def test_a_value_that_is_right_within_rounding_is_not_called_wrong():
    """kl.accuracy failing on the literal formula: accurate to float64 rounding, said so."""

    def literal(p, q):
        return float(np.maximum(scipy.special.rel_entr(p, q).sum(), 0))

    case = Case(p=[0.25, 0.75], q=[0.25 * (1 + 1e-12), 0.75 - 0.25e-12])
    cause = _cause(literal, case=case, check=check_named("kl.accuracy[pairs]"))
    assert cause.text.startswith("is accurate to float64 rounding, not to the clause's bound")


def test_findings_group_one_bug_across_clauses():
    impl = Implementation("torch-like", kl=nan_at_both_zero, capabilities={"batched"})
    report = run(
        impl,
        ["kl.special.both_zero", "kl.pinsker", "kl.special.p_zero", "kl.nonnegative"],
        profile="fast",
    )
    row = {"target": "t", "clauses": {c.clause.id: clause_cell(c) for c in report.clauses}}
    assert row["clauses"]["kl.special.p_zero"]["status"] == "pass"
    (finding,) = findings(row)
    assert finding["cause"] == "returns NaN where p_i = q_i = 0"
    assert "kl.special.both_zero" in finding["clauses"]
    assert len(finding["clauses"]) >= 2  # the same bug, met by a clause drawing zeros too
    assert finding["example"]["clause"] == "kl.special.both_zero"


def test_causes_reach_the_report_text():
    from klspec.conformance.report import describe

    impl = Implementation("torch-like", kl=nan_at_both_zero)
    report = run(impl, ["kl.special.both_zero"], profile="fast", isolate=True, timeout=5)
    assert "    cause: returns NaN where p_i = q_i = 0\n" in describe(report)


def _dies(*args, **kwargs):
    import os

    os._exit(5)


def test_a_crash_during_the_analysis_keeps_the_failure(monkeypatch):
    """The worker sends the failure before analysing it: if the analysis kills it, the
    failure stands, without a cause, and the next clause still runs."""
    import klspec.conformance.causes as causes

    monkeypatch.setattr(causes, "analyse", _dies)
    impl = Implementation("torch-like", kl=nan_at_both_zero)
    report = run(
        impl,
        ["kl.special.both_zero", "example.weather.forward"],
        profile="fast",
        isolate=True,
        timeout=5,
    )
    both_zero, example = report.clauses  # catalog order: special cases first
    (failure,) = both_zero.failures
    assert failure.message.startswith("kl(p, q)=nan, but should be a number")
    assert failure.cause is None
    assert example.verdict == "pass"


# --- inputs.unmodified judges bytes only ---------------------------------------------


def returns_nan(p, q):
    return math.nan


def writes_and_returns_nan(p, q):
    q[...] = q[::-1]
    return math.nan


@pytest.mark.parametrize(
    ("fn", "verdict"), [(returns_nan, "pass"), (writes_and_returns_nan, "fail")]
)
def test_inputs_unmodified_fails_only_when_bytes_change(fn, verdict):
    report = run(Implementation(fn.__name__, kl=fn), ["inputs.unmodified"], profile="fast")
    (result,) = report.clauses
    assert result.verdict == verdict
    if verdict == "fail":
        assert "changed q[" in result.failures[0].message
        assert result.failures[0].symptom == "writes"


def nan_at_any_zero_p(p, q):
    """0·log 0 unguarded: NaN wherever p_i = 0, whatever q_i."""
    with np.errstate(all="ignore"):
        return float(np.sum(p * np.log(p / q)))


def test_nan_at_p_zero_and_at_both_zero_is_one_finding():
    impl = Implementation("textbook", kl=nan_at_any_zero_p)
    report = run(impl, ["kl.special.p_zero", "kl.special.both_zero"], profile="fast")
    row = {"target": "t", "clauses": {c.clause.id: clause_cell(c) for c in report.clauses}}
    (finding,) = findings(row)
    assert finding["cause"] == "returns NaN where p_i = 0, whatever q_i"
    assert finding["clauses"] == ["kl.special.p_zero", "kl.special.both_zero"]
    from klspec.conformance.report import root_causes

    assert root_causes(report) == [
        ("returns NaN where p_i = 0, whatever q_i", ["kl.special.p_zero", "kl.special.both_zero"])
    ]


@settings(max_examples=50, derandomize=True, database=None, deadline=None)
@given(near_equal_pairs(max_size=32))
def test_the_generalised_kl_of_scipy_is_never_negative_in_exact_arithmetic(case):
    """Σ p log(p/q) − p + q ≥ 0 term by term: the convention's exact value keeps that
    (summing Σq − Σp in float64 would not, and would excuse a negative result)."""
    value, _ = GENERALISED.value("kl", (case.p, case.q), (0.0, 0.0))
    assert value >= 0


def test_rounding_is_claimed_only_when_every_call_is_within_it():
    """kl.decomposition calls kl (right here), then cross_entropy and entropy: a wrong
    entropy must not be put down to rounding because the first call was fine."""

    def entropy_off(p):
        return float(scipy.special.entr(_normalised(p)).sum()) * (1 + 1e-9)

    def cross_entropy(p, q):
        return float(-scipy.special.xlogy(_normalised(p), _normalised(q)).sum())

    check = check_named("kl.decomposition[pairs]")
    impl = Implementation(
        "entropy off", kl=correct_kl, cross_entropy=cross_entropy, entropy=entropy_off
    )
    case = Case(p=[0.2, 0.3, 0.5], q=[0.5, 0.25, 0.25])
    with pytest.raises(AssertionError) as info:
        check.prop(impl, case)
    cause = analyse(check, impl, case, info.value.symptom)
    assert cause.convention != "rounding"
    assert not cause.by_convention
