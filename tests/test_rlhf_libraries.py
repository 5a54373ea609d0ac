"""The RLHF library re-implementations (conformance/rlhf_libraries.py) against their sources.

Each expected value is computed independently of the module: by hand formulas in
numpy float64 (expm1, logaddexp), by mpmath, or, for float32 rounding, from the
rounding argument written next to it. The defects the libraries have are pinned
as such (a negative k3, a NaN, a finite value where KL is +inf), so a record that
"fixes" its library fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from klspec.conformance.rlhf_libraries import (  # noqa: E402
    K1_CLAMP_RANGE,
    K2_CLAMP_RANGE,
    K3_CLAMP_RANGE,
    LIBRARIES,
    LibraryKL,
    by_name,
)

F32, F64 = torch.float32, torch.float64
U32 = 2.0**-24  # unit roundoff of float32
INF = float("inf")

#: Records whose function raises on every call (as the library did).
RAISES = {"verl.k3+@v0.7.1"}
ESTIMATORS = [r for r in LIBRARIES if r.quantity in ("k1", "k2", "k3") and r.name not in RAISES]
TOKEN_KL = [r for r in LIBRARIES if r.quantity == "token-kl"]
DPO = [r for r in LIBRARIES if r.quantity == "dpo"]


def value(name, logp, ref, dtype=F32):
    """The record's estimate at scalar (logp, ref_logp), as a Python float."""
    out = by_name(name).function(
        torch.tensor([logp], dtype=dtype), torch.tensor([ref], dtype=dtype)
    )
    return out.item()


def value_and_grad(name, logp, ref, dtype=F32):
    """(estimate, d estimate / d logp by autograd) at scalar inputs."""
    x = torch.tensor([logp], dtype=dtype, requires_grad=True)
    out = by_name(name).function(x, torch.tensor([ref], dtype=dtype))
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.item(), grad.item()


def exact(quantity, d):
    """k1, k2, k3 at log r = d in float64, without cancellation (expm1)."""
    d = np.asarray(d, dtype=np.float64)
    return {"k1": -d, "k2": d * d / 2, "k3": np.expm1(d) - d}[quantity]


def scale(quantity, d):
    """The size of the float32 rounding of each estimator (its terms)."""
    d = np.asarray(d, dtype=np.float64)
    a = np.abs(d)
    return {"k1": a, "k2": d * d, "k3": np.exp(d) * (1 + a) + 1 + a}[quantity]


def inputs_for(d):
    """float32 (logp, ref_logp) <= 0 with ref_logp − logp = d exactly, and that d."""
    d32 = np.asarray(d, dtype=np.float32)
    logp = np.where(d32 > 0, -d32, np.float32(0)).astype(np.float32)
    ref = np.where(d32 > 0, np.float32(0), d32).astype(np.float32)
    return torch.from_numpy(logp), torch.from_numpy(ref), d32.astype(np.float64)


def softmax64(logits):
    logits = np.asarray(logits, dtype=np.float64)
    return np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))


def kl64(logits_p, logits_q):
    """Per-row KL(softmax(p)‖softmax(q)) in float64, 0·log(0/q) = 0."""
    p, q = softmax64(logits_p), softmax64(logits_q)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def entropy64(logits):
    p = softmax64(logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def token_kl(name, logits_p, logits_q, dtype=F32):
    out = by_name(name).function(
        torch.tensor(logits_p, dtype=dtype), torch.tensor(logits_q, dtype=dtype)
    )
    return out


# --- the records ----------------------------------------------------------------------------


def test_every_record_is_well_formed():
    names = [r.name for r in LIBRARIES]
    assert len(names) == len(set(names)), "record names must be unique"
    assert {r.library for r in LIBRARIES} == {"verl", "OpenRLHF", "TRL", "torchtune", "NeMo-RL"}
    for r in LIBRARIES:
        assert isinstance(r, LibraryKL)
        assert r.quantity in ("k1", "k2", "k3", "token-kl", "dpo"), r.name
        assert (r.beta is not None) == (r.quantity == "dpo"), r.name
        assert r.dtype == "float32", r.name
        found = re.fullmatch(r"([\w.-]+/[\w.-]+)@([0-9a-f]{40}) (\S+\.py) (\S+)", r.source)
        assert found, f"{r.name}: source {r.source!r} is not 'owner/repo@<40 hex> path function'"
        assert found.group(2) in r.doc, f"{r.name}: the doc does not name its commit"
        assert r.reduction in (None, "mean", "sum"), r.name
        assert (r.reduction is None) == (r.quantity != "token-kl"), r.name
        assert r.gradient_of in (None, "k1", "k2", "k3"), r.name
        summary, _, rest = r.doc.partition("\n\n")
        assert summary, f"{r.name}: the doc needs a one-line summary"
        assert "\n" not in summary, f"{r.name}: the doc needs a one-line summary"
        assert rest.startswith("Conventions: "), r.name
        assert "Source: " in rest, r.name
        if r.log_ratio_range is not None:
            lo, hi = r.log_ratio_range
            assert lo < 0 < hi, r.name
    assert by_name("verl.low_var_kl").library == "verl"
    with pytest.raises(KeyError, match="known"):
        by_name("nothing")


def test_no_library_is_imported():
    """The module re-implements; it never imports verl, openrlhf, trl, torchtune or nemo_rl."""
    path = Path(__file__).resolve().parent.parent / "conformance" / "rlhf_libraries.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "inspect", "collections", "dataclasses", "typing", "torch"}


def test_the_clamp_ranges_are_the_roots_rounded_inward():
    with mpmath.workdps(30):
        k3_lo = mpmath.findroot(lambda d: mpmath.expm1(d) - d - 10, -11)
        k3_hi = mpmath.findroot(lambda d: mpmath.expm1(d) - d - 10, 2.6)
        k2_hi = mpmath.sqrt(20)
    assert float(k3_lo) < K3_CLAMP_RANGE[0] < float(k3_lo) + 1e-5
    assert float(k3_hi) - 1e-5 < K3_CLAMP_RANGE[1] < float(k3_hi)
    assert float(k2_hi) - 1e-5 < K2_CLAMP_RANGE[1] < float(k2_hi)
    assert K2_CLAMP_RANGE[0] == -K2_CLAMP_RANGE[1]
    assert K1_CLAMP_RANGE == (-10.0, 10.0)


@pytest.mark.parametrize("record", ESTIMATORS, ids=lambda r: r.name)
def test_inside_log_ratio_range_the_value_is_the_unclamped_formula(record):
    """On a grid inside log_ratio_range (or [−30, 30] without one): no clamp acts."""
    lo, hi = record.log_ratio_range or (-30.0, 30.0)
    grid = np.concatenate([np.linspace(lo, hi, 4001), [lo, hi, 0.0, 1e-3, -1e-3]])
    logp, ref, d = inputs_for(grid)
    inside = (d >= lo) & (d <= hi)
    got = record.function(logp, ref).double().numpy()
    want = exact(record.quantity, d)
    allowed = 8 * U32 * scale(record.quantity, d) + 1e-30
    bad = inside & ~(np.abs(got - want) <= allowed)
    assert not bad.any(), (record.name, d[bad][:5], got[bad][:5], want[bad][:5])


@pytest.mark.parametrize(
    "record", [r for r in ESTIMATORS if r.log_ratio_range], ids=lambda r: r.name
)
def test_just_outside_log_ratio_range_a_clamp_acts(record):
    """The range is the whole of where the clamps are inactive (to 1e-3), not a part of it."""
    lo, hi = record.log_ratio_range
    logp, ref, d = inputs_for([lo - 1e-3, hi + 1e-3])
    got = record.function(logp, ref).double().numpy()
    want = exact(record.quantity, d)
    assert np.all(np.abs(got - want) > 8 * U32 * scale(record.quantity, d))
    assert np.all(np.abs(got) == 10.0)


@pytest.mark.parametrize("record", ESTIMATORS, ids=lambda r: r.name)
def test_estimators_keep_shape_and_are_differentiable(record):
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-3.0, -0.1, -0.2]], requires_grad=True)
    ref = torch.tensor([[-0.7, -1.0, -1.5], [-2.0, -0.3, -0.1]])
    out = record.function(logp, ref)
    assert out.shape == logp.shape
    assert out.dtype == F32
    (grad,) = torch.autograd.grad(out.sum(), logp)
    assert torch.isfinite(grad).all()


# --- verl ------------------------------------------------------------------------------------


def test_verl_k1_and_k2_are_the_plain_formulas():
    assert value("verl.k1", -1.5, -1.0) == -0.5
    assert value("verl.k2", -1.5, -1.0) == 0.125
    assert value("verl.k1", -INF, -1.0) == -INF
    assert value("verl.k2", -INF, -1.0) == INF


def test_verl_low_var_kl_clamps_d_to_20_and_k3_to_10():
    # inactive: d = −5, k3 = e^-5 + 4
    got, grad = value_and_grad("verl.low_var_kl", 0.0, -5.0)
    assert got == pytest.approx(np.exp(-5.0) + 4.0, rel=4 * U32)
    assert grad == pytest.approx(1 - np.exp(-5.0), rel=4 * U32)  # d k3/d logp = 1 − e^d
    # k3 clamp: d = 5 gives e^5 − 6 = 142.4 -> 10, and no gradient
    assert value_and_grad("verl.low_var_kl", -5.0, 0.0) == (10.0, 0.0)
    # both clamps: d = −25 -> −20, k3 = e^-20 + 19 -> 10; d = +inf (logp = −inf) -> 10
    assert value_and_grad("verl.low_var_kl", 0.0, -25.0) == (10.0, 0.0)
    assert value("verl.low_var_kl", -INF, -1.0) == 10.0
    assert np.isnan(value("verl.low_var_kl", float("nan"), -1.0))


def test_verl_low_var_kl_rounds_negative_near_zero():
    # float32, d = 3e-8 (between 2^-25 and 2^-24): e^d -> 1, 1 − d -> 1 − 2^-24, − 1 -> −2^-24.
    d = float(np.float32(3e-8))
    assert value("verl.low_var_kl", -d, 0.0) == -(2.0**-24)
    assert exact("k3", d) == pytest.approx(d * d / 2, rel=1e-7)  # the truth: ≈ 4.5e-16 > 0
    # |d| < 2^-25: e^d and 1 − d both round to 1: exactly 0 (truth ≈ 2^-61).
    assert value("verl.low_var_kl", -(2.0**-30), 0.0) == 0.0
    # float64, d = 2^-53: e^d -> 1, 1 − 2^-53 exact, − 1 -> −2^-53.
    assert value("verl.low_var_kl", -(2.0**-53), 0.0, dtype=F64) == -(2.0**-53)


def test_verl_k3_plus_has_the_value_of_low_var_kl_and_the_gradient_of_k2():
    for logp, ref in [(-1.0, -0.5), (0.0, -5.0), (-5.0, 0.0), (0.0, -25.0), (-2.0, -2.0)]:
        want = value("verl.low_var_kl", logp, ref)
        got, grad = value_and_grad("verl.k3+", logp, ref)
        assert got == want  # bitwise: (b − b) + f
        assert grad == logp - ref  # d/dlogp ½(logp − ref)², exact for these inputs
    # the straight-through gradient survives the clamps: d = 5 is clamped to 10 ...
    assert value_and_grad("verl.k3+", -5.0, 0.0) == (10.0, -5.0)
    # ... where low_var_kl itself has none
    assert value_and_grad("verl.low_var_kl", -5.0, 0.0)[1] == 0.0


def test_verl_plus_modes_are_nan_at_minus_inf():
    """b = ½(−inf − ref)² = inf and b − b.detach() = nan: the '+' value is nan there."""
    assert value("verl.low_var_kl", -INF, -1.0) == 10.0
    assert np.isnan(value("verl.k3+", -INF, -1.0))
    assert value("verl.k1", -INF, -1.0) == -INF
    assert np.isnan(value("verl.k1+", -INF, -1.0))


def test_verl_k1_plus_has_the_value_of_k1_and_the_gradient_of_k2():
    assert value_and_grad("verl.k1+", -3.0, -1.0) == (-2.0, -2.0)
    assert value_and_grad("verl.k1", -3.0, -1.0) == (-2.0, 1.0)


def test_verl_k3_plus_up_to_v0_7_1_raises_not_implemented():
    record = by_name("verl.k3+@v0.7.1")
    with pytest.raises(NotImplementedError):
        record.function(torch.tensor([-1.0]), torch.tensor([-0.5]))


# --- OpenRLHF -------------------------------------------------------------------------------


def test_openrlhf_clamps_every_estimator_to_10():
    assert value_and_grad("openrlhf.k1", -13.0, -1.0) == (-10.0, 0.0)  # k1 = −12
    assert value_and_grad("openrlhf.k1", -1.0, -13.0) == (10.0, 0.0)
    assert value_and_grad("openrlhf.k2", -6.0, -1.0) == (10.0, 0.0)  # k2 = 12.5
    assert value_and_grad("openrlhf.k3", -4.0, -1.0) == (10.0, 0.0)  # e^3 − 4 = 16.1
    assert value_and_grad("openrlhf.k3", 0.0, -12.0) == (10.0, 0.0)  # e^-12 + 11
    got, grad = value_and_grad("openrlhf.k3", -1.0, -3.0)  # d = −2, inactive
    assert got == pytest.approx(np.exp(-2.0) + 1.0, rel=4 * U32)
    assert grad == pytest.approx(1 - np.exp(-2.0), rel=4 * U32)


def test_openrlhf_k3_has_no_clamp_on_d_and_is_nan_at_minus_inf():
    # log_ratio = −inf: exp(+inf) − 1 + (−inf) = nan, and clamp keeps nan (verl gives 10)
    assert np.isnan(value("openrlhf.k3", -INF, -1.0))
    assert value("openrlhf.k3", -1.0, -INF) == 10.0  # exp(−inf) − 1 + inf = inf -> 10


def test_openrlhf_k3_rounds_negative_for_small_positive_d():
    # float32, 0 < d < 2^-24: e^d -> 1, (1 − 1) + (−d) = −d exactly (truth ≈ d²/2 > 0).
    for d in (2.0**-30, 2.0**-53, 1e-12):
        d = float(np.float32(d))
        assert value("openrlhf.k3", -d, 0.0) == -d
        with mpmath.workdps(50):
            assert mpmath.expm1(d) - d > 0  # the truth, ≈ d²/2


def test_openrlhf_casts_to_float32_before_subtracting():
    logp = torch.tensor([-1.0 - 1e-12, -1.0 - 1e-3], dtype=F64)
    ref = torch.tensor([-1.0, -1.0], dtype=F64)
    out = by_name("openrlhf.k1").function(logp, ref)
    assert out.dtype == F32
    # −1 − 1e-12 and −1 are the same float32: k1 = 0, though the float64 difference is −1e-12
    assert out[0].item() == 0.0
    assert out[1].item() == float(np.float32(-1.0 - 1e-3) - np.float32(-1.0))
    bf16 = by_name("openrlhf.k2").function(
        torch.tensor([-1.5], dtype=torch.bfloat16), torch.tensor([-1.0], dtype=torch.bfloat16)
    )
    assert bf16.dtype == F32
    assert bf16.item() == 0.125


def test_other_libraries_do_not_cast():
    logp, ref = torch.tensor([-1.5], dtype=F64), torch.tensor([-1.0], dtype=F64)
    for name in ("verl.low_var_kl", "trl.grpo.k3", "trl.ppo.k3", "nemo_rl.k3"):
        assert by_name(name).function(logp, ref).dtype == F64, name


# --- TRL --------------------------------------------------------------------------------------


def test_trl_grpo_k3_is_exp_minus_d_minus_one_without_clamp():
    got, grad = value_and_grad("trl.grpo.k3", -31.0, -1.0)  # d = 30: no clamp
    assert got == pytest.approx(np.expm1(30.0) - 30.0, rel=4 * U32)
    assert grad == pytest.approx(1 - np.exp(30.0), rel=4 * U32)
    got, grad = value_and_grad("trl.grpo.k3", -1.0, -2.0)  # d = −1
    assert got == pytest.approx(np.exp(-1.0), rel=4 * U32)
    assert grad == pytest.approx(1 - np.exp(-1.0), rel=4 * U32)
    assert value("trl.grpo.k3", -1.0, -100.0) == pytest.approx(98.0, rel=U32)  # d = −99
    assert value("trl.grpo.k3", -100.0, 0.0) == INF  # e^100 overflows float32
    assert np.isnan(value("trl.grpo.k3", -INF, -1.0))  # inf − inf


def test_trl_grpo_k3_rounds_negative_near_zero():
    d = float(np.float32(3e-8))
    assert value("trl.grpo.k3", -d, 0.0) == -(2.0**-24)  # as verl: (e^d − d) − 1
    assert value("trl.grpo.k3", -(2.0**-53), 0.0, dtype=F64) == -(2.0**-53)
    assert value("trl.grpo.k3", -(2.0**-53), 0.0) == 0.0  # float32: 1 − 2^-53 -> 1


def test_trl_grpo_bias_correction_has_the_value_of_k3_and_the_gradient_of_k2():
    for logp, ref in [(-1.0, -0.5), (0.0, -5.0), (-5.0, 0.0), (-2.0, -3.5)]:
        got, grad = value_and_grad("trl.grpo.k3.bias_correction", logp, ref)
        assert got == value("trl.grpo.k3", logp, ref)  # times exp(0) = 1, exactly
        # d/dlogp [k3·exp(logp − sg(logp))] = k3 + 1 − e^d = −d = logp − ref
        assert grad == pytest.approx(logp - ref, abs=64 * U32 * np.exp(ref - logp))
    # the cancellation k3 + (1 − e^d) at large d: the gradient is lost
    assert value_and_grad("trl.grpo.k3.bias_correction", -25.0, 0.0)[1] == 0.0


def test_trl_ppo_k1_and_k3():
    assert value("trl.ppo.k1", -1.5, -1.0) == -0.5
    got = value("trl.ppo.k3", -1.0, -3.0)  # d = −2: (e^-2 − 1) + 2
    assert got == pytest.approx(np.exp(-2.0) + 1.0, rel=4 * U32)
    assert value("trl.ppo.k3", -31.0, -1.0) == pytest.approx(np.expm1(30.0) - 30.0, rel=4 * U32)
    # (e^d − 1) − d: −d exactly for 0 < d < 2^-24 in float32, −2^-53 at 2^-53 in float64
    assert value("trl.ppo.k3", -(2.0**-30), 0.0) == -(2.0**-30)
    assert value("trl.ppo.k3", -(2.0**-53), 0.0, dtype=F64) == -(2.0**-53)


LOGITS_P = [[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 3.0, -2.0], [1.0, 1.0, 1.0, 1.0]]
LOGITS_Q = [[0.0, 1.0, 0.5, -3.0], [1.0, -1.0, 2.0, 0.0], [4.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("name", ["trl.gkd.forward", "trl.gkd.reverse", "torchtune.ReverseKLLoss"])
def test_token_kl_is_the_mean_of_kl_p_q_over_positions(name):
    got = token_kl(name, LOGITS_P, LOGITS_Q)
    want = kl64(LOGITS_P, LOGITS_Q)
    assert got.dim() == 0
    assert got.item() == pytest.approx(want.mean(), rel=16 * U32)
    # the direction: KL(P‖Q), not KL(Q‖P) (they differ here by far more than rounding)
    assert abs(kl64(LOGITS_Q, LOGITS_P).mean() - want.mean()) > 0.1


def test_torchtune_forward_kl_loss_is_the_cross_entropy():
    """−Σ t log s: KL(teacher‖student) + H(teacher), so it is H(P) > 0 when P = Q."""
    got = token_kl("torchtune.ForwardKLLoss", LOGITS_P, LOGITS_Q).item()
    want = (kl64(LOGITS_P, LOGITS_Q) + entropy64(LOGITS_P)).mean()
    assert got == pytest.approx(want, rel=16 * U32)
    assert got - kl64(LOGITS_P, LOGITS_Q).mean() > 0.5  # H(teacher) ≈ 0.889 here
    same = token_kl("torchtune.ForwardKLLoss", LOGITS_P, LOGITS_P).item()
    assert same == pytest.approx(entropy64(LOGITS_P).mean(), rel=16 * U32)


def test_token_kl_records_take_one_position_and_several():
    for record in TOKEN_KL:
        one = record.function(torch.tensor(LOGITS_P[0]), torch.tensor(LOGITS_Q[0]))
        rows = record.function(torch.tensor(LOGITS_P[:1]), torch.tensor(LOGITS_Q[:1]))
        assert one.item() == rows.item(), record.name


def test_trl_gkd_is_nan_where_p_has_a_minus_inf_logit():
    """exp(−inf)·(−inf − s) = 0·(−inf) = nan for the term whose true value is 0."""
    p, q = [[0.0, -INF, 1.0]], [[0.0, 0.0, 0.0]]
    assert np.isfinite(kl64(p, q)).all()
    assert np.isnan(token_kl("trl.gkd.forward", p, q).item())  # teacher −inf
    assert np.isnan(token_kl("trl.gkd.reverse", p, q).item())  # student −inf
    # a −inf logit in Q under P's mass is inf, correctly
    assert token_kl("trl.gkd.forward", q, p).item() == INF
    assert token_kl("trl.gkd.reverse", q, p).item() == INF


def test_trl_gkd_does_not_cast():
    assert token_kl("trl.gkd.forward", LOGITS_P, LOGITS_Q, dtype=F64).dtype == F64
    got = token_kl("trl.gkd.forward", LOGITS_P, LOGITS_Q, dtype=F64).item()
    assert got == pytest.approx(kl64(LOGITS_P, LOGITS_Q).mean(), rel=1e-13)


# --- torchtune ----------------------------------------------------------------------------


def test_torchtune_casts_to_float32():
    for name in ("torchtune.ForwardKLLoss", "torchtune.ReverseKLLoss"):
        assert token_kl(name, LOGITS_P, LOGITS_Q, dtype=F64).dtype == F32, name


def test_torchtune_reverse_kl_is_finite_and_negative_where_kl_is_inf():
    """The inf mask drops the term of a −inf teacher logit under student mass."""
    student, teacher = [[0.0, 0.0]], [[-INF, 0.0]]
    assert kl64(student, teacher)[0] == INF
    got = token_kl("torchtune.ReverseKLLoss", student, teacher).item()
    assert got == pytest.approx(0.5 * np.log(0.5), rel=4 * U32)  # −0.3466
    # a −inf student logit is handled right (its term is 0, not nan)
    got = token_kl("torchtune.ReverseKLLoss", [[0.0, -INF, 1.0]], [[0.0, 0.0, 0.0]]).item()
    assert got == pytest.approx(kl64([[0.0, -INF, 1.0]], [[0.0, 0.0, 0.0]])[0], rel=8 * U32)


def test_torchtune_forward_kl_is_finite_where_kl_is_inf():
    """A −inf student logit under teacher mass: the term is masked to 0."""
    teacher, student = [[0.0, 0.0]], [[-INF, 0.0]]
    assert kl64(teacher, student)[0] == INF
    # −(½·0 (masked) + ½·log 1) = −0
    assert token_kl("torchtune.ForwardKLLoss", teacher, student).item() == 0.0


# --- NeMo-RL ------------------------------------------------------------------------------


def test_nemo_rl_clamps_d_to_20_and_the_estimate_to_10():
    assert value_and_grad("nemo_rl.k3", -5.0, 0.0) == (10.0, 0.0)  # e^5 − 6 = 142
    assert value_and_grad("nemo_rl.k3", 0.0, -25.0) == (10.0, 0.0)
    assert value("nemo_rl.k3", -INF, -1.0) == 10.0  # d = inf -> 20
    assert value_and_grad("nemo_rl.k1", -13.0, -1.0) == (-10.0, 0.0)
    assert value_and_grad("nemo_rl.k2", -6.0, -1.0) == (10.0, 0.0)
    got, grad = value_and_grad("nemo_rl.k3", -1.0, -3.0)  # d = −2
    assert got == pytest.approx(np.exp(-2.0) + 1.0, rel=4 * U32)
    assert grad == pytest.approx(1 - np.exp(-2.0), rel=4 * U32)


def test_nemo_rl_k3_rounds_negative_for_small_positive_d():
    assert value("nemo_rl.k3", -(2.0**-30), 0.0) == -(2.0**-30)
    assert value("nemo_rl.k3", -(2.0**-53), 0.0, dtype=F64) == -(2.0**-53)


def test_nemo_rl_loss_k3_has_the_value_of_k3_and_the_gradient_of_k2():
    for logp, ref in [(-1.0, -0.5), (0.0, -5.0), (-2.0, -3.5), (-1.0, 0.0)]:
        got, grad = value_and_grad("nemo_rl.loss.k3", logp, ref)
        assert got == value("nemo_rl.k3", logp, ref)  # the weight is exp(0) = 1
        assert grad == pytest.approx(logp - ref, abs=64 * U32 * np.exp(ref - logp))
    # either clamp stops the gradient: the output clamp at d = 5, the input clamp at d = 25
    assert value_and_grad("nemo_rl.loss.k3", -5.0, 0.0) == (10.0, 0.0)
    assert value_and_grad("nemo_rl.loss.k3", 0.0, -25.0) == (10.0, 0.0)


def test_nemo_rl_loss_k3_is_zero_at_minus_inf():
    """logp − logp.detach() = nan at −inf; nan_to_num makes the weight 0, so the KL term is 0."""
    assert value("nemo_rl.loss.k3", -INF, -1.0) == 0.0
    assert value("nemo_rl.k3", -INF, -1.0) == 10.0


# --- TRL's DPO losses ----------------------------------------------------------------------


def dpo_args(lc, lr, rc, rr, dtype=F32):
    return [torch.tensor(x, dtype=dtype) for x in (lc, lr, rc, rr)]


def softplus64(x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


@pytest.mark.parametrize("record", DPO, ids=lambda r: r.name)
def test_trl_dpo_losses_are_softplus_of_minus_beta_margin_per_pair(record):
    lc, lr = [-120.5, -30.25, -7.0], [-118.0, -31.5, -900.0]
    rc, rr = [-121.0, -29.75, -8.0], [-117.5, -32.0, -20.0]
    m = (np.array(lc) - rc) - (np.array(lr) - rr)
    extra = [0.0] if record.signature else []
    got = record.function(*dpo_args(lc, lr, rc, rr), 0.1, *extra).numpy()
    assert got.shape == (3,)
    # The third loss, e^{-87.8}, is a float32 subnormal: absolute precision 2**-149.
    np.testing.assert_allclose(got, softplus64(-0.1 * m), rtol=8 * U32, atol=4 * 2.0**-149)


@pytest.mark.parametrize("record", DPO, ids=lambda r: r.name)
def test_trl_dpo_losses_are_finite_for_huge_margins(record):
    """F.logsigmoid is the stable form: β·m = ±1e4 gives 1e4 and 0, never inf."""
    extra = [0.0] if record.signature else []
    got = record.function(*dpo_args([-1e5, 0.0], [0.0, -1e5], [0.0, 0.0], [0.0, 0.0]), 0.1, *extra)
    np.testing.assert_allclose(got.numpy(), [1e4, 0.0], rtol=U32)


def test_trl_dpo_label_smoothing_is_the_conservative_mixture():
    record = by_name("trl.dpo.sigmoid.label_smoothing")
    lc, lr, rc, rr = [-50.0], [-60.0], [-52.0], [-55.0]
    z = 0.1 * ((lc[0] - rc[0]) - (lr[0] - rr[0]))
    got = record.function(*dpo_args(lc, lr, rc, rr), 0.1, 0.25).item()
    want = 0.75 * softplus64(-z) + 0.25 * softplus64(z)
    assert got == pytest.approx(float(want), rel=8 * U32)


def test_trl_dpo_before_the_refactor_forms_the_margin_as_logratios_minus_ref_logratios():
    """(lc − lr) − (rc − rr) in float32: the rounding of lc − lr is not the same as HEAD's."""
    lc, lr, rc, rr = [-1234.5678], [-1.0], [-1234.5677], [-1.0]
    old = by_name("trl.dpo.sigmoid.label_smoothing").function(*dpo_args(lc, lr, rc, rr), 1.0, 0.0)
    f32 = [np.float32(x[0]) for x in (lc, lr, rc, rr)]
    m = np.float32(np.float32(f32[0] - f32[1]) - np.float32(f32[2] - f32[3]))
    assert old.item() == pytest.approx(float(softplus64(-float(m))), rel=8 * U32)


def test_trl_dpo_records_check_at_trl_default_beta():
    assert {r.beta for r in DPO} == {0.1}
    assert by_name("trl.dpo.sigmoid.label_smoothing").source.startswith(
        "huggingface/trl@a68fb896f008f58a3d37abf11ae665357b7c679a "
    )
