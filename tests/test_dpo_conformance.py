"""``klspec check --quantity dpo``: the reference passes every dpo clause, each common DPO bug
is rejected by the clauses meant to catch it with its root cause named, stable forms pass.

The mutants and stable forms are those of preference_implementations_under_test.py (the
meta-tests in test_meta.py run each check against them one by one); here they go through
the whole path a user's function takes: ``resolve`` with ``quantity="dpo"`` and ``--beta``,
the signature, the runner in a worker, the cause analysis and the report.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
import preference_implementations_under_test as dpo
import pytest

from klspec import reference
from klspec.commands import main
from klspec.conformance import replay
from klspec.conformance.report import root_causes
from klspec.conformance.runner import run
from klspec.conformance.signatures import SignatureError
from klspec.conformance.targets import resolve
from klspec.spec import CATALOG
from klspec.spec.checks.preference import exact_loss

DPO_CLAUSES = [c.id for c in CATALOG if c.topic == "preference"]


def check_fn(fn, **options):
    impl = resolve(fn, quantity="dpo", **options)
    return run(impl, DPO_CLAUSES, profile="fast", isolate=False)


def failed(report) -> set[str]:
    """The required clauses that failed (dpo.accuracy is advisory: the reference's promise)."""
    return {c.clause.id for c in report.clauses if c.status == "fail"}


def test_a_float64_logaddexp_meets_every_required_clause_but_not_the_reference_s_accuracy():
    assert check_fn(dpo.logaddexp_dpo).ok
    impl = resolve(dpo.logaddexp_dpo, quantity="dpo")
    report = run(impl, ["dpo.accuracy"], profile="fast")  # in a worker: causes analysed
    assert report.ok  # advisory
    (accuracy,) = report.clauses
    assert accuracy.failures
    cause = accuracy.failures[0].cause
    assert "accurate to float64 rounding" in cause.text


def test_the_preference_topic_has_the_issue_s_clauses():
    assert DPO_CLAUSES == [
        "dpo.definition",
        "dpo.accuracy",
        "dpo.limits",
        "dpo.swap_symmetry",
        "dpo.shift_invariant",
        "dpo.bradley_terry",
        "dpo.gradient_weight",
        "dpo.label_smoothing",
    ]


def test_the_reference_passes_every_dpo_clause():
    report = run(resolve("reference"), DPO_CLAUSES, profile="default", isolate=False)
    assert report.ok, [c.clause.id for c in report.clauses if c.status != "pass"]
    assert {c.clause.id for c in report.clauses if c.status == "pass"} == set(DPO_CLAUSES)


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_stable_forms_pass_at_the_beta_given(beta):
    for fn in (dpo.logaddexp_dpo, dpo.torch_logsigmoid_dpo):
        report = check_fn(fn, beta=beta)
        assert report.ok, (fn.__name__, failed(report))


#: mutant -> (clauses that must fail, words of its root cause).
MUTANTS = {
    "literal_dpo": ({"dpo.definition", "dpo.limits"}, "computes −log σ(β·m) literally"),
    "clipped_sigmoid_dpo": ({"dpo.definition", "dpo.limits", "dpo.swap_symmetry"}, "saturates"),
    "swapped_dpo": ({"dpo.definition", "dpo.swap_symmetry"}, "swaps chosen and rejected"),
    "no_reference_dpo": ({"dpo.definition", "dpo.shift_invariant"}, "leaves the reference"),
    "no_beta_dpo": ({"dpo.definition", "dpo.gradient_weight"}, "leaves β out"),
    "float32_margin_dpo": ({"dpo.definition"}, "forms the margin from float32"),
    "mean_dpo": ({"dpo.definition"}, "one number for the whole batch"),
}


@pytest.mark.parametrize("name", MUTANTS)
def test_each_mutant_is_rejected_with_its_cause_in_words(name):
    must_fail, words = MUTANTS[name]
    report = check_fn(getattr(dpo, name))
    assert must_fail <= failed(report), failed(report)
    # One bug, one finding, whatever required clauses it breaks (the advisory dpo.accuracy
    # may shrink to an input where the mutant is merely float64-rounded).
    causes = [c for c in root_causes(report) if set(c[1]) != {"dpo.accuracy"}]
    assert len(causes) == 1, causes
    title, clauses = causes[0]
    assert words in title
    assert must_fail <= set(clauses)


def test_label_smoothing_mutants_are_rejected_when_the_signature_names_it():
    signature = (
        "f(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta, label_smoothing)"
    )
    ignored = check_fn(dpo.smoothing_ignored_dpo, signature=signature)
    assert {"dpo.definition", "dpo.label_smoothing"} <= failed(ignored)
    assert "ignores it" in root_causes(ignored)[0][0]
    half = check_fn(dpo.smoothing_half_dpo, signature=signature)
    assert "dpo.label_smoothing" in failed(half)
    good = check_fn(dpo.torch_logsigmoid_dpo, signature=signature, array="torch")
    assert good.ok, failed(good)
    assert any(c.clause.id == "dpo.label_smoothing" and c.status == "pass" for c in good.clauses)


def test_float32_code_is_judged_as_float32():
    """The float32 margin passes as float32 code and fails, with that cause, as float64."""
    assert check_fn(dpo.logaddexp_dpo, dtype="float32").ok
    as_float64 = check_fn(dpo.float32_margin_dpo)
    assert not as_float64.ok
    assert "float32" in root_causes(as_float64)[0][0]


def test_beta_is_handed_over_as_a_python_float_and_arrays_in_the_target_format():
    seen = {}

    def spy(lc, lr, rc, rr, beta):
        seen["beta"], seen["dtype"] = beta, lc.dtype
        return np.logaddexp(0.0, -beta * ((lc - rc) - (lr - rr)))

    impl = resolve(spy, quantity="dpo", beta=0.25, dtype="float32")
    assert impl.beta == 0.25
    impl.dpo(*(np.array([-1.0, -2.0]),) * 4, beta=0.25)
    assert type(seen["beta"]) is float
    assert seen["beta"] == 0.25
    assert seen["dtype"] == np.float32


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"beta": 0.0}, "must be a finite number > 0"),
        ({"beta": -1.0}, "must be a finite number > 0"),
        ({"signature": "f(logp_chosen, logp_rejected, beta)"}, "must take"),
    ],
)
def test_bad_dpo_options_are_usage_errors(options, words):
    with pytest.raises(SignatureError, match=words):
        resolve(dpo.logaddexp_dpo, quantity="dpo", **options)


def test_beta_is_only_for_dpo():
    with pytest.raises(SignatureError, match="--beta applies to dpo"):
        resolve(dpo.logaddexp_dpo, quantity="k3", beta=0.2)


def test_cli_check_of_a_module_function(tmp_path, monkeypatch):
    (tmp_path / "mydpo.py").write_text(
        "import numpy as np\n"
        "def loss(lc, lr, rc, rr, beta):\n"
        "    return -np.log(1 / (1 + np.exp(-beta * ((lc - rc) - (lr - rr)))))\n"
        "def good(lc, lr, rc, rr, beta):\n"
        "    return np.logaddexp(0.0, -beta * ((lc - rc) - (lr - rr)))\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = io.StringIO()
    status = main(
        ["check", "mydpo:good", "--quantity", "dpo", "--beta", "0.5", "--profile", "fast"], out=out
    )
    assert status == 0, out.getvalue()
    out = io.StringIO()
    status = main(["check", "mydpo:loss", "--quantity", "dpo", "--profile", "fast"], out=out)
    text = out.getvalue()
    assert status == 1
    assert "1 root cause" in text
    assert "computes −log σ(β·m) literally" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("reproduce:"))
    command = line.split("reproduce: ", 1)[1]
    assert command.count("beta=") == 1  # the target's β and the case's are one
    done = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "AssertionError" in done.stderr or "Violation" in done.stderr, done.stderr[-500:]


def test_replay_with_a_beta_option_builds_the_case_with_it():
    lc, lr, rc, rr = (np.array([x]) for x in (-5.0, -6.0, -5.5, -5.0))
    replay(
        "dpo.definition[pairs]",
        dpo.logaddexp_dpo,
        quantity="dpo",
        beta=0.3,
        logp_chosen=lc,
        logp_rejected=lr,
        ref_logp_chosen=rc,
        ref_logp_rejected=rr,
        label_smoothing=np.array([0.0]),
    )


# --- the reference against mpmath over the margin sweep --------------------------------------

EPS64 = 2.0**-52


def _sweep():
    """(lc, lr, rc, rr, β): margins from −1e4 to 1e4 in β·m, tiny ones, nearly cancelling sums."""
    rng = np.random.default_rng(20261207)
    cases = []
    for beta in (1e-3, 0.1, 1.0, 10.0):
        for z in np.concatenate([-np.logspace(-300, 4, 120), np.logspace(-300, 4, 120)]):
            m = z / beta
            s = rng.uniform(0, 500, 2)
            lc, rc = -s[0] + min(m / 2, 0.0), -s[0] - max(m / 2, 0.0)
            lr, rr = -s[1] + min(-m / 2, 0.0), -s[1] - max(-m / 2, 0.0)
            cases.append((lc, lr, rc, rr, beta))
        for rel in np.logspace(-16, -4, 40):
            lc = -rng.uniform(500, 1500)
            lr = -rng.uniform(500, 1500)
            cases.append((lc, lr, lc * (1 + rel), lr * (1 - rel), beta))
    cases.append((-1234.5678, -1234.5677999, -1234.5677999, -1234.5678, 0.1))
    return cases


def worst_error() -> tuple[float, tuple]:
    """The largest relative error of dpo_loss against mpmath over :func:`_sweep`, in ε_64."""
    worst, where = 0.0, None
    for lc, lr, rc, rr, beta in _sweep():
        got = float(reference.dpo_loss(lc, lr, rc, rr, beta=beta))
        m = (Fraction(lc) - Fraction(rc)) - (Fraction(lr) - Fraction(rr))
        with mpmath.workdps(60):
            want = exact_loss(m, beta)
        if want < 2.0**-1022:  # below the normal range: one subnormal unit allowed
            assert abs(got - float(want)) <= 2.0**-1074
            continue
        error = float(abs(mpmath.mpf(got) - want) / want) / EPS64
        if error > worst:
            worst, where = error, (lc, lr, rc, rr, beta)
    return worst, where


def test_the_reference_is_within_its_bound_over_the_margin_sweep():
    worst, _ = worst_error()
    assert worst <= 4.0
    assert math.isfinite(worst)


if __name__ == "__main__":  # prints the worst case, for the report and the docs
    error, case = worst_error()
    print(
        f"worst relative error of dpo_loss over {len(_sweep())} pairs: {error:.3f} ε_64 at {case}"
    )
    sys.exit(0)
