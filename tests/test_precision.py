"""Checks in the target's dtype: rounding, tolerances, autograd, clamps, reductions, devices.

A float32 (or bfloat16) implementation is judged as float32 code: the textbook formula
evaluated in its dtype passes, a float16-quality one or a wrong formula does not, and the
exact clauses (non-negativity, masks) stay exact. Each tolerance introduced for a dtype
has a meta-test here showing that it still rejects something.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from klspec.conformance.runner import PROFILES, run
from klspec.conformance.signatures import SignatureError, wrap
from klspec.conformance.targets import resolve
from klspec.spec.checks.language_models import killer_tokens
from klspec.spec.precision import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, PRECISIONS

ESTIMATOR_CLAUSES = [
    "estimator.definitions",
    "estimator.unbiased",
    "estimator.k3_nonnegative",
    "estimator.gradients",
]
TOKEN_CLAUSES = ["token_kl.definition", "token_kl.masked", "token_kl.nonnegative"]


def _verdicts(impl, clauses, **options):
    report = run(impl, clauses, profile=options.pop("profile", "default"), seed=1, **options)
    return {c.clause.id: c.verdict for c in report.clauses}


# --- the formats -----------------------------------------------------------------------


def test_rounding_matches_numpy_casts():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 20000) * 10.0 ** rng.integers(-45, 40, 20000)
    x = np.concatenate([x, [1e39, -3.5e38, 65519.0, 65520.0, 2.9e-8, 3e-8, 1e-310, 0.0]])
    with np.errstate(all="ignore"):
        for fmt, dtype in ((FLOAT32, np.float32), (FLOAT16, np.float16)):
            np.testing.assert_array_equal(fmt.round(x), x.astype(dtype).astype(np.float64))
    np.testing.assert_array_equal(FLOAT64.round(x), x)


def test_bfloat16_rounding_matches_torch_on_float32_values():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (rng.normal(0, 1, 20000) * 10.0 ** rng.integers(-40, 38, 20000)).astype(np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).double().numpy()
    np.testing.assert_array_equal(BFLOAT16.round(x.astype(np.float64)), want)


@pytest.mark.parametrize("fmt", [FLOAT64, FLOAT32, FLOAT16], ids=str)
def test_ulps_are_nextafter_in_the_format(fmt):
    dtype = np.dtype(fmt.name).type
    x = fmt.round(np.random.default_rng(2).normal(0, 3, 500))
    for k, toward in ((1, np.inf), (-1, -np.inf)):
        want = np.nextafter(x.astype(dtype), dtype(toward)).astype(np.float64)
        np.testing.assert_array_equal(fmt.ulps(x, k), want)


def test_format_constants():
    assert FLOAT32.u == 2.0**-24
    assert FLOAT32.max == float(np.finfo(np.float32).max)
    assert FLOAT16.tiny == float(np.finfo(np.float16).tiny)
    assert FLOAT16.eta == float(np.finfo(np.float16).smallest_subnormal)
    assert BFLOAT16.u == 2.0**-8
    assert BFLOAT16.tiny == FLOAT32.tiny
    assert set(PRECISIONS) == {"float64", "float32", "float16", "bfloat16"}


# --- the killers of k3 --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(PRECISIONS.values()), ids=str)
def test_killers_catch_both_literal_k3_forms_in_every_format(fmt):
    """exp(d) − d − 1 and (exp(d) − 1) − d go negative on some killer; expm1(d) − d never."""
    torch = pytest.importorskip("torch")
    dtype = getattr(torch, fmt.name)
    forms = {
        "exp(d) - d - 1": lambda d: torch.exp(d) - d - 1,
        "(exp(d) - 1) - d": lambda d: (torch.exp(d) - 1) - d,
        "expm1(d) - d": lambda d: torch.expm1(d) - d,
    }
    negative = dict.fromkeys(forms, False)
    for case in killer_tokens(fmt):
        assert np.array_equal(fmt.round(case.logp), case.logp)
        assert np.array_equal(fmt.round(case.ref_logp), case.ref_logp)
        d = torch.tensor(case.ref_logp).to(dtype) - torch.tensor(case.logp).to(dtype)
        for name, form in forms.items():
            negative[name] |= bool((form(d) < 0).any())
    assert negative == {"exp(d) - d - 1": True, "(exp(d) - 1) - d": True, "expm1(d) - d": False}


# --- torch targets in float32 and bfloat16 -------------------------------------------------


def _k3(d, torch):
    return torch.clamp(torch.exp(d) - d - 1, min=0)


def _torch_functions():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    def k3(logp, ref):
        return _k3(ref - logp, torch)

    def k3_via_float16(logp, ref):
        return _k3((ref - logp).half(), torch).to(logp.dtype)

    def k3_swapped(logp, ref):
        return _k3(logp - ref, torch)

    def k3_straight_through(logp, ref):
        d = ref - logp
        k2 = 0.5 * d * d
        return k2 - k2.detach() + _k3(d, torch).detach()

    def k3_clamped(logp, ref):
        return torch.clamp(_k3(ref - logp, torch), max=10.0)

    def token_kl(a, b):
        # Masks read from the log-probabilities, not the probabilities: a P_v that underflows
        # where Q masks the token still makes the KL +inf (0·inf would be NaN).
        la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
        inf = torch.full_like(la, torch.inf)
        terms = torch.where(torch.isneginf(lb), inf, la.exp() * (la - lb))
        terms = torch.where(torch.isneginf(la), torch.zeros_like(la), terms)
        return terms.sum(-1).clamp(min=0)

    def token_kl_unmasked(a, b):
        la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
        return F.kl_div(lb, la, reduction="none", log_target=True).sum(-1).clamp(min=0)

    def token_kl_via_float16(a, b):
        return token_kl(a.half(), b.half()).to(a.dtype)

    def token_kl_mean(a, b):
        return token_kl(a, b).mean()

    return {f.__name__: f for f in (
        k3, k3_via_float16, k3_swapped, k3_straight_through, k3_clamped,
        token_kl, token_kl_unmasked, token_kl_via_float16, token_kl_mean,
    )}  # fmt: skip


def _torch(name, quantity, dtype="float32", **options):
    fn = _torch_functions()[name]
    return wrap(fn, name=name, quantity=quantity, array="torch", dtype=dtype, **options)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_correct_torch_k3_is_accepted_in_its_dtype(dtype):
    verdicts = _verdicts(_torch("k3", "k3", dtype), ESTIMATOR_CLAUSES)
    assert set(verdicts.values()) == {"pass"}, verdicts


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_correct_torch_token_kl_with_masks_is_accepted_in_its_dtype(dtype):
    verdicts = _verdicts(_torch("token_kl", "token-kl", dtype), [*TOKEN_CLAUSES])
    assert set(verdicts.values()) == {"pass"}, verdicts


@pytest.mark.parametrize(
    ("name", "clause"),
    [
        ("k3_via_float16", "estimator.definitions"),
        ("k3_via_float16", "estimator.gradients"),
        ("k3_swapped", "estimator.definitions"),
        ("k3_swapped", "estimator.gradients"),
    ],
)
def test_float32_tolerances_reject_float16_quality_or_wrong_k3(name, clause):
    assert _verdicts(_torch(name, "k3"), [clause])[clause] == "fail"


@pytest.mark.parametrize(
    ("name", "clause"),
    [
        ("token_kl_via_float16", "token_kl.definition"),
        ("token_kl_unmasked", "token_kl.masked"),
    ],
)
def test_float32_token_kl_rejects_float16_quality_or_unmasked(name, clause):
    assert _verdicts(_torch(name, "token-kl"), [clause])[clause] == "fail"


def test_straight_through_is_held_to_the_gradient_it_declares():
    declared = _torch("k3_straight_through", "k3", gradient_of="k2")
    assert _verdicts(declared, ESTIMATOR_CLAUSES) == dict.fromkeys(ESTIMATOR_CLAUSES, "pass")
    undeclared = _torch("k3_straight_through", "k3")
    verdicts = _verdicts(undeclared, ESTIMATOR_CLAUSES)
    assert verdicts["estimator.gradients"] == "fail"
    assert verdicts["estimator.definitions"] == "pass"


def test_autograd_gradient_matches_the_exact_slope():
    impl = _torch("k3", "k3")
    logp, ref = np.array([-0.5, -2.0]), np.array([-1.0, -0.25])
    slope = impl.derivatives["k3"](logp, ref)
    np.testing.assert_allclose(slope, -np.expm1(ref - logp), rtol=1e-6)


def test_log_ratio_range_checks_inside_and_reports_the_bias_outside():
    clauses = ["estimator.definitions", "estimator.gradients", "estimator.clamp_bias"]
    undeclared = _verdicts(_torch("k3_clamped", "k3"), clauses)
    assert undeclared["estimator.definitions"] == "fail"
    declared = _torch("k3_clamped", "k3", log_ratio_range=(-11.0, 2.6))
    verdicts = _verdicts(declared, clauses)
    assert verdicts == {
        "estimator.definitions": "pass",
        "estimator.gradients": "pass",
        "estimator.clamp_bias": "advisory",
    }
    report = run(declared, ["estimator.clamp_bias"], seed=1)
    message = report.clauses[0].failures[0].message
    assert "the clamp biases it by" in message
    assert "outside log r ∈ [-11, 2.6]" in message


def test_reduction_mean_is_checked_position_by_position():
    impl = _torch("token_kl_mean", "token-kl", reduction="mean")
    assert set(_verdicts(impl, TOKEN_CLAUSES).values()) == {"pass"}
    plain = _torch("token_kl_mean", "token-kl")
    assert _verdicts(plain, ["token_kl.definition"])["token_kl.definition"] == "fail"


def test_device_cpu_round_trips():
    impl = _torch("k3", "k3", device="cpu")
    assert _verdicts(impl, ["estimator.definitions"]) == {"estimator.definitions": "pass"}


# --- the RLHF libraries --------------------------------------------------------------------


@pytest.mark.parametrize("target", ["trl.grpo.k3", "nemo_rl.k3"])
def test_default_profile_rejects_negative_k3_on_every_seed(target):
    pytest.importorskip("torch")
    impl = resolve(target)
    for seed in range(10):
        report = run(impl, ["estimator.k3_nonnegative"], profile=PROFILES["default"], seed=seed)
        (result,) = report.clauses
        assert result.verdict == "fail", seed
        assert "but should be >= 0" in result.failures[0].message


def test_openrlhf_k3_in_its_range_fails_only_nonnegativity():
    pytest.importorskip("torch")
    from klspec.conformance.rlhf_libraries import by_name

    impl = wrap(
        by_name("openrlhf.k3").function,
        name="openrlhf k3",
        quantity="k3",
        array="torch",
        dtype="float32",
        log_ratio_range=(-10.0, 2.5),
    )
    report = run(impl, seed=3)
    failed = {c.clause.id for c in report.clauses if c.verdict == "fail"}
    assert failed == {"estimator.k3_nonnegative"}


# --- numpy targets and usage errors --------------------------------------------------------


def test_numpy_float32_target_uses_finite_differences_with_a_float32_step():
    def k3(logp, ref):
        d = ref - logp
        return np.maximum(np.expm1(d) - d, np.float32(0))

    impl = wrap(k3, name="numpy float32 k3", quantity="k3", dtype="float32")
    assert impl.derivatives == {}
    assert set(_verdicts(impl, ESTIMATOR_CLAUSES).values()) == {"pass"}


def test_bfloat16_numpy_without_ml_dtypes_is_a_usage_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ml_dtypes" else real(name)
    )
    with pytest.raises(SignatureError, match="numpy has no bfloat16: use --array torch"):
        wrap(lambda p, q: 0.0, name="f", quantity="kl", dtype="bfloat16")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gradient_of": "k2"}, "needs autograd"),
        ({"quantity": "kl", "gradient_of": "k2", "array": "torch"}, "straight-through"),
        ({"log_ratio_range": (2.0, 1.0)}, "LO < HI"),
        ({"quantity": "kl", "log_ratio_range": (-1.0, 1.0)}, "applies to k1, k2 and k3"),
        ({"device": "cuda"}, "numpy arrays live on the CPU"),
        ({"dtype": "float8"}, "unknown dtype"),
        ({"reduction": "batchmean"}, "unknown reduction"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    options = {"quantity": "k3", **options}
    with pytest.raises(SignatureError, match=message):
        wrap(lambda a, b: a, name="f", **options)


def test_float64_only_clauses_are_skipped_with_the_reason():
    impl = wrap(lambda p, q: 0.0, name="float32 kl", quantity="kl", dtype="float32")
    report = run(impl, ["kl.definition", "inputs.unmodified"], seed=1)
    reasons = {r.check.name: r.reason for c in report.clauses for r in c.results}
    want = "checked in float64 only (its tolerances are not derived for float32)"
    assert reasons["kl.definition[pairs]"] == want
    assert reasons["inputs.unmodified[kl]"] == ""  # bytes are judged in every format


def _klspec(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "klspec", "check", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )


def test_cli_suggests_array_for_a_torch_function_and_writes_no_hypothesis_dir(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "mine.py").write_text(
        "import torch\n"
        "def k3(logp, ref):\n"
        "    d = ref - logp\n"
        "    return torch.clamp(torch.exp(d) - d - 1, min=0)\n"
    )
    wrong = _klspec(tmp_path, "mine:k3", "--quantity", "k3")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "pass --array torch" in wrong.stderr
    right = _klspec(
        tmp_path, "mine:k3", "--quantity", "k3", "--array", "torch", "--dtype", "float32"
    )
    assert right.returncode == 0, right.stdout + right.stderr
    assert "SKIP" not in right.stdout  # clauses it cannot be checked against fold into lines
    assert "checked in float64 only" not in right.stdout  # every estimator clause adapts
    assert "clauses about what mine:k3 does not provide" in right.stdout
    assert not (tmp_path / ".hypothesis").exists()
    clamped = _klspec(
        tmp_path, "mine:k3", "--quantity", "k3", "--array", "torch", "--log-ratio-range", "-11:2.6"
    )
    assert clamped.returncode == 0, clamped.stdout
    assert "WARN   estimator.clamp_bias" not in clamped.stdout


#: The arrays a check hands over in the target's format (log-probabilities, logits).
_DRAWN_IN_FORMAT = (
    "logp",
    "ref_logp",
    "logits_p",
    "logits_q",
    "logp_chosen",
    "logp_rejected",
    "ref_logp_chosen",
    "ref_logp_rejected",
)


def _assert_representable(check, impl, fmt):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(check.search_strategy(impl))
    def drawn(case):
        for name, x in case.arrays.items():
            if name in _DRAWN_IN_FORMAT:
                assert np.array_equal(fmt.round(x), x, equal_nan=True), (check.name, name)
        if "log_ratio_range" in check.adapts and "logp" in case.arrays:
            d = case.ref_logp - case.logp
            assert ((d >= -3) & (d <= 1)).all(), (check.name, d)

    drawn()


@pytest.mark.parametrize("fmt", list(PRECISIONS.values()), ids=str)
def test_adapting_strategies_draw_values_the_format_holds(fmt):
    """Checks judge against the exact value of what they pass: it must be what arrives."""
    from klspec.spec import CHECKS, Implementation

    impl = Implementation("probe", k1=lambda *a: 0.0, dtype=fmt.name, log_ratio_range=(-3, 1))
    adapting = [c for c in CHECKS if "precision" in c.adapts and c.strategy is not None]
    assert len(adapting) >= 10
    for check in adapting:
        _assert_representable(check, impl, fmt)
        for case in check.explicit(impl):
            for name in _DRAWN_IN_FORMAT:
                if name in case.arrays:
                    x = case.arrays[name]
                    assert np.array_equal(fmt.round(x), x), (check.name, name)
