"""Root causes of a DPO loss's failures, named in words.

A dpo check's counterexample says what went wrong (``dpo(...)=inf, but should be
800``); :func:`diagnose` says why. It calls the target on a few probe pairs built
for β (margins with β·m from −800 to 800, log-probabilities of a few hundred) and
on the counterexample itself, and compares what it returns with the forms the
common bugs compute:

* −log σ(β·m) written literally: σ is rounded before the logarithm, so for β·m > 0
  the loss (about e^{−β·m}) keeps only an absolute accuracy of about 1e-16 (relative
  error about 1e-16·e^{β·m}: 1e-12 at β·m ≈ 9) and is 0 where σ rounds to 1
  (β·m > 37); +inf where σ underflows (β·m < −745);
* σ (or the loss) clipped: the loss saturates for large |β·m|;
* chosen and rejected swapped (the loss of −m); the reference model left out; β
  left out;
* the margin formed from float32 log-probabilities (accurate to float32 only);
* one number for the whole batch (a mean or a sum over pairs);
* label_smoothing accepted and ignored.

A diagnosis is one finding wherever it shows (the Cause's key is the bug's), so a
literal −log σ that breaks dpo.definition, dpo.limits and dpo.bradley_terry is one
root cause. When nothing matches, the generic analysis stands.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from klspec.spec.interface import Implementation

#: β·m of the probe pairs.
_PROBE_Z = np.array([-800.0, -40.0, -5.0, -1.0, 0.5, 3.0, 40.0, 800.0])

#: Bug key -> what the implementation does, in words.
WORDS: dict[str, str] = {
    "mean": "returns one number for the whole batch (a mean or sum over pairs), not one "
    "loss per pair",
    "literal": "computes −log σ(β·m) literally: σ is rounded before the logarithm, so where "
    "β·m > 0 the loss (about e^{{−β·m}}) is only accurate to about 1e-16 absolute (relative "
    "error about 1e-16·e^{{β·m}}, e.g. 1e-12 at β·m ≈ 9; 0 instead of e^{{−β·m}} where σ "
    "rounds to 1, β·m > 37), and σ underflows to 0 where β·m < −745 (+inf, not −β·m); "
    "use softplus(−β·m) (−F.logsigmoid, np.logaddexp(0, −β·m))",
    "saturates": "saturates for large |β·m| (σ or the loss clipped): the loss stops at "
    "{top:.4g} where it should grow like −β·m",
    "swapped": "swaps chosen and rejected: it returns the loss of −m",
    "no_reference": "leaves the reference model out: its margin is log π(y_w) − log π(y_l)",
    "no_beta": "leaves β out: it returns the loss of the margin m, not of β·m",
    "float32": "forms the margin from float32 log-probabilities (or in float32): "
    "accurate to float32 rounding of sums of size {size:.3g} (±{error:.2g} in β·m), "
    "judged as float64 (pass --dtype float32 if it computes in float32)",
    "smoothing_ignored": "accepts label_smoothing and ignores it",
}


def _softplus(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.logaddexp(0.0, x)


def _probes(beta: float) -> tuple[np.ndarray, ...]:
    """Four log-probabilities with β·m = :data:`_PROBE_Z`, every term present."""
    from klspec.spec.checks.preference import _from_margins
    from klspec.spec.precision import FLOAT64

    m = _PROBE_Z / beta
    shifts = np.array([np.full(m.size, 37.0), np.full(m.size, 211.0)])
    return _from_margins(m, shifts, FLOAT64)


def _call(impl: Implementation, arrays: tuple[np.ndarray, ...], beta: float, **kw: Any):
    from klspec.conformance.signatures import from_result
    from klspec.spec._assert import invoke

    try:  # as the checks call it: its warnings ignored, numpy's error state restored
        out = invoke("dpo(...)", impl.dpo, *arrays, beta=beta, **kw)
        return np.asarray(from_result(out), dtype=np.float64)
    except Exception:  # a target that raises here says nothing about the bug
        return None


def _matches(got: np.ndarray, want: np.ndarray, rel: float = 1e-9) -> bool:
    with np.errstate(invalid="ignore", over="ignore"):
        both_inf = np.isinf(got) & np.isinf(want) & (got == want)
        close = np.abs(got - want) <= rel * np.abs(want) + 1e-300
    return bool((both_inf | close).all())


def diagnose(impl: Implementation, case: Any) -> dict[str, str] | None:
    """The bug the target's values show, as Cause fields (``convention``, ``note``), or None."""
    if impl.dpo is None:
        return None
    beta = float(case.beta[0])
    arrays = _probes(beta)
    got = _call(impl, arrays, beta)
    if got is None:
        return None
    if got.shape != arrays[0].shape:
        return _found("mean")
    lc, lr, rc, rr = arrays
    m = (lc - rc) - (lr - rr)
    z = beta * m
    finite = np.isfinite(got)
    # Which form the values follow, where they are finite (exact forms first).
    for key, form in (
        ("swapped", _softplus(z)),
        ("no_beta", _softplus(-m)),
        ("no_reference", _softplus(-beta * (lc - lr))),
    ):
        if _matches(got[finite], form[finite], 1e-6) and finite.sum() >= 4:
            return _found(key)
    if np.isposinf(got[0]) and got[-2] == 0:  # inf at β·m = −800, 0 at β·m = 40
        return _found("literal")
    if finite[0] and got[0] < 0.5 * (-z[0]):
        return _found("saturates", top=float(got[0]))
    if "label_smoothing" in impl.capabilities:
        smoothed = _call(impl, arrays, beta, label_smoothing=0.25)
        if smoothed is not None and smoothed.shape == got.shape and np.array_equal(smoothed, got):
            return _found("smoothing_ignored")
    return _float32(impl, case, beta) or _rounding(impl, case, beta)


def _float32(impl: Implementation, case: Any, beta: float) -> dict[str, str] | None:
    """The counterexample's values are those of a float32 margin (within its rounding)."""
    if impl.dtype != "float64":
        return None
    names = ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected")
    arrays = tuple(case.arrays[k] for k in names)
    got = _call(impl, arrays, beta)
    if got is None or got.shape != arrays[0].shape:
        return None
    lc, lr, rc, rr = (a.astype(np.float32) for a in arrays)
    m32 = ((lc - rc) - (lr - rr)).astype(np.float64)
    m64 = (arrays[0] - arrays[2]) - (arrays[1] - arrays[3])
    form = _softplus(-beta * m32)
    exact = _softplus(-beta * m64)
    differs = np.abs(got - exact) > 1e-12 * np.maximum(np.abs(exact), 1e-300)
    if differs.any() and _matches(got[differs], form[differs], 1e-6):
        size = float(np.max(sum(np.abs(a) for a in arrays)))
        error = float(np.max(np.abs(beta * (m32 - m64))))
        return _found("float32", size=size, error=error)
    return None


def _found(key: str, **numbers: float) -> dict[str, str]:
    return {"convention": f"bug:dpo.{key}", "note": WORDS[key].format(**numbers)}


def _rounding(impl: Implementation, case: Any, beta: float) -> dict[str, str] | None:
    """Every value is within the error of a correct evaluation in the target's format."""
    from klspec.spec.checks.preference import _NAMES, expected

    arrays = tuple(case.arrays[k] for k in _NAMES)
    got = _call(impl, arrays, beta)
    if got is None or got.shape != arrays[0].shape:
        return None
    want, tolerance, _ = expected(case, 0.0, impl.precision)
    if not (np.abs(got - want) <= tolerance).all():
        return None
    return {
        "convention": "rounding",
        "dtype": impl.dtype,
        "note": f"each loss it returned is within the error a correct {impl.dtype} evaluation "
        f"can make (±{float(tolerance.max()):.1g}: the margin and β·m rounded), which the "
        "reference's exact margin avoids",
    }
